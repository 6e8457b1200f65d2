"""From a featurised dataset and its splits to a calibrated, saved-ready Evaluator."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from dermeval.model.data import FeatureSet
from dermeval.model.evaluator import Evaluator
from dermeval.model.train import Targets, TrainConfig, fit_calibration, predict_raw, train_network
from dermeval.synth.defects import OPERATORS


def split_indices(fs: FeatureSet, splits: dict[str, str]) -> dict[str, np.ndarray]:
    names = ("train", "val", "calib", "test")
    return {n: np.array([i for i, rid in enumerate(fs.ids) if splits.get(rid) == n], np.int64) for n in names}


def fit_evaluator(fs: FeatureSet, rows_by_id: dict[str, dict[str, Any]], splits: dict[str, str],
                  cfg: TrainConfig, *, review_threshold: float, progress: bool = True
                  ) -> tuple[Evaluator, list[dict[str, float]], dict[str, np.ndarray]]:
    """Train on ``train``, stop early on ``val``, calibrate on ``calib``; ``test`` is untouched."""
    idx = split_indices(fs, splits)
    for name in ("train", "val", "calib"):
        if len(idx[name]) == 0:
            raise ValueError(f"the {name} split is empty; use more data or other split fractions")
    rows = [rows_by_id[i] for i in fs.ids]
    categories = sorted({str(r["category"]) for r in rows if r.get("category")})
    targets = Targets.from_rows(rows, list(OPERATORS), categories)
    net, history = train_network(fs, targets, idx["train"], idx["val"], cfg, progress=progress)
    calibration = fit_calibration(predict_raw(net, fs, idx["calib"]), targets.consensus[idx["calib"]])
    meta = {"name": "dermeval", "version": "local", "calibration": calibration,
            "defect_names": targets.defect_names, "categories": categories,
            "review_threshold": review_threshold, "train": asdict(cfg),
            "split_sizes": {k: int(len(v)) for k, v in idx.items()}}
    return Evaluator(net, meta), history, idx
