"""Featurised datasets: cached encoder outputs for a list of records, saved without pickles."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dermeval.features import N_STATS, Featurizer, narrative_units
from dermeval.formats.common import RowError
from dermeval.images import ImageError, check_image_file, resolve_under


@dataclass
class FeatureSet:
    """Features of n records: unique image and sentence vectors plus per-record indices."""

    ids: list[str]
    image: np.ndarray  # (n_images, 1280)
    image_index: np.ndarray  # (n,)
    units: np.ndarray  # (n_units, 384)
    offsets: np.ndarray  # (n + 1,) record i's units are unit_index[offsets[i]:offsets[i+1]]
    unit_index: np.ndarray
    stats: np.ndarray  # (n, N_STATS)
    conclusion: np.ndarray  # (n,) position of the conclusion among the record's units, -1 if none
    warnings: dict[str, str] = field(default_factory=dict)
    # The conclusion sentence of each record as written ("" if none), for the diagnosis
    # vocabulary; a feature set saved before it existed loads with "" everywhere.
    conclusion_text: np.ndarray | None = None
    # Per record, the vocabulary's category distribution and weight (set by attach_vocabulary).
    vocab: np.ndarray | None = None
    # The vocabulary ``vocab`` was looked up in: another evaluator scoring the same feature set
    # (the gate's champion beside its challenger) looks the conclusions up in its own again.
    vocab_source: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: Path | str) -> None:
        """Write an ``.npz`` whose bytes depend on the contents only (no write times), so DVC sees
        an unchanged feature set as unchanged and does not retrain."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"ids": np.array(self.ids, dtype=str), "image": self.image, "image_index": self.image_index,
                  "units": self.units, "offsets": self.offsets, "unit_index": self.unit_index, "stats": self.stats,
                  "conclusion": self.conclusion, "warn_ids": np.array(list(self.warnings), dtype=str),
                  "warn_msgs": np.array(list(self.warnings.values()), dtype=str),
                  "conclusion_text": self.conclusions()}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)

    @classmethod
    def load(cls, path: Path | str) -> FeatureSet:
        z = np.load(path, allow_pickle=False)
        return cls(ids=[str(x) for x in z["ids"]], image=z["image"], image_index=z["image_index"],
                   units=z["units"], offsets=z["offsets"], unit_index=z["unit_index"], stats=z["stats"],
                   conclusion=z["conclusion"],
                   warnings=dict(zip(map(str, z["warn_ids"]), map(str, z["warn_msgs"]), strict=True)),
                   conclusion_text=z["conclusion_text"] if "conclusion_text" in z.files else None)

    def conclusions(self) -> np.ndarray:
        """Each record's conclusion sentence ("" where none is known)."""
        if self.conclusion_text is None:
            return np.array([""] * len(self.ids), dtype=str)
        return np.asarray(self.conclusion_text, dtype=str)

    def attach_vocabulary(self, vocab: Any, categories: list[str]) -> FeatureSet:
        """Look every conclusion up in a :class:`~dermeval.diagnosis.DiagnosisVocabulary` (None: none)."""
        from dermeval.diagnosis import category_features

        self.vocab = category_features(list(self.conclusions()), vocab, categories)
        self.vocab_source = (vocab, tuple(categories))
        return self

    def batch(self, idx: Sequence[int]) -> dict[str, torch.Tensor]:
        """Padded tensors for the records at positions ``idx``."""
        lengths = [int(self.offsets[i + 1] - self.offsets[i]) for i in idx]
        width = max(max(lengths, default=0), 1)
        units = np.zeros((len(idx), width, self.units.shape[1]), np.float32)
        mask = np.zeros((len(idx), width), bool)
        for row, (i, n) in enumerate(zip(idx, lengths, strict=True)):
            units[row, :n] = self.units[self.unit_index[self.offsets[i]:self.offsets[i + 1]]]
            mask[row, :n] = True
        return {"image": torch.from_numpy(self.image[self.image_index[list(idx)]]),
                "units": torch.from_numpy(units), "mask": torch.from_numpy(mask),
                "stats": torch.from_numpy(self.stats[list(idx)]),
                "conclusion": torch.from_numpy(self.conclusion[list(idx)]),
                **({"vocab": torch.from_numpy(self.vocab[list(idx)])} if self.vocab is not None else {})}


def featurize(
    rows: Sequence[dict[str, Any]], root: Path, featurizer: Featurizer, *, chunk: int = 256,
    progress: bool = True, source: str = "<records>",
) -> tuple[FeatureSet, list[RowError]]:
    """Encode ``rows`` (``id``, ``image`` relative to ``root``, ``diagnostic_text``).

    A row whose image is unusable becomes a RowError and is left out; every other row
    is featurised, in input order.
    """
    ids, img_paths, unit_lists, stats, errors, warnings, concl, concl_text = [], [], [], [], [], {}, [], []
    for line, row in enumerate(rows, start=1):
        try:
            path = resolve_under(root, row["image"])
            check_image_file(path)
        except ImageError as exc:
            errors.append(RowError(source, line, "image", str(exc), row.get("id")))
            continue
        u = narrative_units(row.get("diagnostic_text", ""))
        if u.truncated_from:
            warnings[row["id"]] = f"narrative has {u.truncated_from} sentence units; the first {len(u.units)} were used"
        ids.append(row["id"])
        img_paths.append(path)
        unit_lists.append(u.units)
        stats.append(u.stats)
        concl.append(u.conclusion)
        concl_text.append(u.conclusion_sentence)
    uniq_img = list(dict.fromkeys(img_paths))
    img_pos = {p: i for i, p in enumerate(uniq_img)}
    uniq_units = list(dict.fromkeys(u for units in unit_lists for u in units))
    unit_pos = {u: i for i, u in enumerate(uniq_units)}
    bar = tqdm(total=len(uniq_img) + len(uniq_units), desc="featurize", unit="item", disable=not progress)
    image_vecs, unit_vecs = [], []
    for start in range(0, len(uniq_img), chunk):
        image_vecs.append(featurizer.image_vectors(uniq_img[start:start + chunk]))
        bar.update(len(image_vecs[-1]))
    for start in range(0, len(uniq_units), chunk * 4):
        unit_vecs.append(featurizer.sentence_vectors(uniq_units[start:start + chunk * 4]))
        bar.update(len(unit_vecs[-1]))
    bar.close()
    offsets = np.cumsum([0] + [len(u) for u in unit_lists]).astype(np.int64)
    fs = FeatureSet(
        ids=ids,
        image=np.concatenate(image_vecs) if image_vecs else np.zeros((0, 1280), np.float32),
        image_index=np.array([img_pos[p] for p in img_paths], np.int64),
        units=np.concatenate(unit_vecs) if unit_vecs else np.zeros((0, 384), np.float32),
        offsets=offsets,
        unit_index=np.array([unit_pos[u] for units in unit_lists for u in units], np.int64),
        stats=np.stack(stats) if stats else np.zeros((0, N_STATS), np.float32),
        conclusion=np.array(concl, np.int64), warnings=warnings, conclusion_text=np.array(concl_text, dtype=str))
    return fs, errors
