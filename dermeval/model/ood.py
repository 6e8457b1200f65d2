"""Out of its depth: how far a narrative and its image lie from what the evaluator was trained on.

The narrative: the median, over its sentences, of the cosine distance to the nearest of up
to 8,000 training sentences. The image: its vector, standardised and projected on the
training images' leading principal components, and its mean distance to the nearest ``k``
of 3,000 training images. Each is divided by the distance that the ``quantile`` of the
calibration split reaches, so a score above 1 is farther out than all but ``1 - quantile``
of held-out in-distribution inputs. Nothing here is learned from labels, so a narrative
cannot talk it into confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

OOD_FILE = "ood.safetensors"
MODALITIES = ("text", "image")


@dataclass
class SentenceBank:
    """The narrative side: how far its sentences lie from every sentence seen in training.

    A narrative's distance is the median, over its sentences, of one minus the cosine similarity
    to the nearest bank sentence. (A narrative's mean sentence vector hides novelty: real expert
    narratives average out to the same point as simulated ones.)
    """

    bank: np.ndarray  # (m, d) unit-length sentence vectors, float16 on disk
    radius: float = 1.0

    @classmethod
    def fit(cls, fs, idx: np.ndarray, size: int, rng: np.random.Generator) -> SentenceBank:
        units = np.unique(np.concatenate([fs.unit_index[fs.offsets[i]:fs.offsets[i + 1]] for i in idx] or [[]])
                          ).astype(np.int64)
        keep = rng.permutation(units)[:size]
        vecs = fs.units[keep]
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)
        return cls(vecs.astype(np.float16))

    def __post_init__(self) -> None:
        self._bank32 = self.bank.astype(np.float32)  # converted once, not on every scoring call

    def distance(self, fs, idx: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Per record at ``idx``; 0 for a record without sentences. The sentences of many records
        go through one matrix product per ``chunk`` sentences (one product per record was most of
        the scoring time outside the encoders)."""
        idx = np.asarray(idx, np.int64)
        counts = np.array([fs.offsets[i + 1] - fs.offsets[i] for i in idx], np.int64)
        out = np.zeros(len(idx), np.float32)
        if not counts.sum():
            return out
        units = np.concatenate([fs.unit_index[fs.offsets[i]:fs.offsets[i + 1]] for i in idx])
        nearest = np.empty(len(units), np.float32)
        for start in range(0, len(units), chunk):
            u = fs.units[units[start:start + chunk]]
            u = u / np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-9)
            nearest[start:start + chunk] = (u @ self._bank32.T).max(1)
        ends = np.cumsum(counts)
        for row, (end, n) in enumerate(zip(ends, counts, strict=True)):
            if n:
                out[row] = float(np.median(1.0 - nearest[end - n:end]))
        return out


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

    def __init__(self, text: SentenceBank, image: Space, k: int = 10) -> None:
        self.text, self.image, self.k = text, image, k

    @classmethod
    def fit(cls, fs, train_idx: np.ndarray, calib_idx: np.ndarray, *, quantile: float = 0.99, dims: int = 32,
            bank_size: int = 3000, sentence_bank: int = 8000, k: int = 10, seed: int = 0) -> Novelty:
        rng = np.random.default_rng(seed)
        text = SentenceBank.fit(fs, train_idx, sentence_bank, rng)
        text.radius = float(max(np.quantile(text.distance(fs, calib_idx), quantile), 1e-6))
        image = Space.fit(fs.image[fs.image_index[train_idx]], dims, bank_size, rng)
        image.radius = float(max(np.quantile(image.distance(fs.image[fs.image_index[calib_idx]], k), quantile), 1e-6))
        return cls(text, image, k)

    def score(self, fs, idx: np.ndarray) -> np.ndarray:
        """``(n, 2)``: text and image novelty of the records at ``idx``, each over its calibrated radius."""
        idx = np.asarray(idx)
        return np.stack([self.text.distance(fs, idx) / self.text.radius,
                         self.image.distance(fs.image[fs.image_index[idx]], self.k) / self.image.radius], 1)

    def save(self, folder: Path | str) -> dict[str, float]:
        arrays = {"text.bank": self.text.bank, **{f"image.{f}": getattr(self.image, f)
                                                  for f in ("mean", "scale", "components", "bank")}}
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(Path(folder) / OOD_FILE))
        return {"k": self.k, "text_radius": self.text.radius, "image_radius": self.image.radius}

    @classmethod
    def load(cls, folder: Path | str, meta: dict | None) -> Novelty | None:
        path = Path(folder) / OOD_FILE
        if not path.is_file() or not meta:
            return None
        a = load_file(str(path))
        text = SentenceBank(a["text.bank"], float(meta["text_radius"]))
        image = Space(a["image.mean"], a["image.scale"], a["image.components"], a["image.bank"],
                      float(meta["image_radius"]))
        return cls(text, image, int(meta["k"]))
