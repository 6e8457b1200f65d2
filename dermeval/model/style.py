"""Whose writing a narrative resembles: the expert references' or the generated narratives'.

The score calibration is fitted per writing style (see :func:`dermeval.model.train.fit_calibration`):
a network trained on both kinds of text errs differently on each, and one monotone map fitted
on the mix pulls each away from its own truth. This logistic model, fitted on the training
split, gives the probability that a narrative is written like the expert references, from the
mean and spread of its sentence vectors and its length statistics; the two calibrations are
blended by it. Nothing here reads scores, so a narrative cannot talk it into a better map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def style_features(fs, idx: np.ndarray) -> np.ndarray:
    """Per record: the mean and the SD of its sentence vectors, then its length statistics."""
    d = fs.units.shape[1]
    out = np.zeros((len(idx), 2 * d + fs.stats.shape[1]), np.float32)
    for row, i in enumerate(idx):
        u = fs.units[fs.unit_index[fs.offsets[i]:fs.offsets[i + 1]]]
        if len(u):
            out[row, :d], out[row, d:2 * d] = u.mean(0), u.std(0)
        out[row, 2 * d:] = fs.stats[i]
    return out


@dataclass
class StyleModel:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, fs, idx: np.ndarray, expert: np.ndarray, seed: int = 0) -> StyleModel:
        """``expert``: 1 where the record at ``idx`` is (derived from) an expert reference."""
        from sklearn.linear_model import LogisticRegression

        x = style_features(fs, idx)
        mean, scale = x.mean(0), x.std(0) + 1e-6
        clf = LogisticRegression(C=0.1, max_iter=2000, random_state=seed).fit((x - mean) / scale, expert)
        return cls(mean, scale, clf.coef_[0].astype(np.float32), float(clf.intercept_[0]))

    def prob(self, fs, idx: np.ndarray) -> np.ndarray:
        z = ((style_features(fs, np.asarray(idx)) - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist(),
                "coef": self.coef.round(6).tolist(), "intercept": round(self.intercept, 6)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> StyleModel:
        return cls(np.asarray(obj["mean"], np.float32), np.asarray(obj["scale"], np.float32),
                   np.asarray(obj["coef"], np.float32), float(obj["intercept"]))
