"""Out of its depth: how far a narrative and its image lie from what the evaluator was trained on.

Per modality (the narrative as the mean of its sentence vectors, the image vector) the
training split is standardised, projected on its leading principal components and kept
as a bank of reference points. A new input's score is its mean distance to the nearest
``k`` bank points, divided by the distance that the ``quantile`` of the calibration split
reaches: a score above 1 is farther out than all but ``1 - quantile`` of held-out
in-distribution inputs. Nothing here is learned from labels, so it cannot be talked into
confidence by a narrative that scores well.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

OOD_FILE = "ood.safetensors"
MODALITIES = ("text", "image")


def text_vectors(units: np.ndarray, unit_index: np.ndarray, offsets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean sentence vector of each record in ``idx`` (zeros for an empty narrative)."""
    out = np.zeros((len(idx), units.shape[1]), np.float32)
    for row, i in enumerate(idx):
        sel = unit_index[offsets[i]:offsets[i + 1]]
        if len(sel):
            out[row] = units[sel].mean(0)
    return out


def modality_vectors(fs, idx: np.ndarray) -> dict[str, np.ndarray]:
    """The two things novelty is measured on, for the records of a FeatureSet at ``idx``."""
    idx = np.asarray(idx)
    return {"text": text_vectors(fs.units, fs.unit_index, fs.offsets, idx), "image": fs.image[fs.image_index[idx]]}


@dataclass
class Space:
    """One modality: standardisation, projection, reference bank and the calibrated scale."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  # (dims, d)
    bank: np.ndarray  # (m, d)
    radius: float = 1.0

    @classmethod
    def fit(cls, x: np.ndarray, dims: int, bank_size: int, rng: np.random.Generator) -> Space:
        mean = x.mean(0)
        scale = x.std(0) + 1e-6
        z = (x - mean) / scale
        _, _, vt = np.linalg.svd(z[rng.permutation(len(z))[:4000]], full_matrices=False)
        comps = vt[:dims].astype(np.float32)
        proj = z @ comps.T
        keep = rng.permutation(len(proj))[:bank_size]
        return cls(mean.astype(np.float32), scale.astype(np.float32), comps, proj[keep].astype(np.float32))

    def distance(self, x: np.ndarray, k: int, exclude_self: bool = False) -> np.ndarray:
        proj = ((x - self.mean) / self.scale) @ self.components.T
        out = np.empty(len(proj), np.float32)
        bank_sq = (self.bank**2).sum(1)
        for start in range(0, len(proj), 1024):
            p = proj[start:start + 1024]
            d2 = (p**2).sum(1)[:, None] + bank_sq[None] - 2 * p @ self.bank.T
            d = np.sqrt(np.clip(d2, 0, None))
            kk = min(k + int(exclude_self), d.shape[1])
            near = np.partition(d, kk - 1, axis=1)[:, :kk]
            near.sort(1)
            out[start:start + 1024] = near[:, int(exclude_self):].mean(1)
        return out


class Novelty:
    """Novelty scores (1 = the calibration quantile) of narratives and images."""

    def __init__(self, spaces: dict[str, Space], k: int = 10) -> None:
        self.spaces = spaces
        self.k = k

    @classmethod
    def fit(cls, train: dict[str, np.ndarray], calib: dict[str, np.ndarray], *, quantile: float = 0.99,
            dims: int = 32, bank_size: int = 3000, k: int = 10, seed: int = 0) -> Novelty:
        rng = np.random.default_rng(seed)
        spaces = {}
        for m in MODALITIES:
            space = Space.fit(train[m], dims, bank_size, rng)
            space.radius = float(max(np.quantile(space.distance(calib[m], k), quantile), 1e-6))
            spaces[m] = space
        return cls(spaces, k)

    def score(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        """``(n, 2)``: text and image novelty, each divided by its calibrated radius."""
        return np.stack([self.spaces[m].distance(vectors[m], self.k) / self.spaces[m].radius
                         for m in MODALITIES], 1)

    def save(self, folder: Path | str) -> dict[str, float]:
        arrays = {f"{m}.{f}": getattr(self.spaces[m], f) for m in MODALITIES
                  for f in ("mean", "scale", "components", "bank")}
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(Path(folder) / OOD_FILE))
        return {"k": self.k, **{f"{m}_radius": self.spaces[m].radius for m in MODALITIES}}

    @classmethod
    def load(cls, folder: Path | str, meta: dict | None) -> Novelty | None:
        path = Path(folder) / OOD_FILE
        if not path.is_file() or not meta:
            return None
        a = load_file(str(path))
        spaces = {m: Space(a[f"{m}.mean"], a[f"{m}.scale"], a[f"{m}.components"], a[f"{m}.bank"],
                           float(meta[f"{m}_radius"])) for m in MODALITIES}
        return cls(spaces, int(meta["k"]))
