"""A DermEval trained once per session on a small world (a few minutes on 2 cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dermeval.features import FeatureStore, Featurizer
from dermeval.model.data import featurize
from dermeval.model.fit import fit_evaluator
from dermeval.model.train import TrainConfig
from dermeval.splits import assign_splits
from dermeval.synth.world import WorldConfig, generate_world


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("trainworld")
    generate_world(root, WorldConfig(cases=400, seed=5, weeks=1, batch_cases=1), progress=False)
    rows = [json.loads(line) for line in (root / "ratings.jsonl").open()]
    featurizer = Featurizer(FeatureStore(root / "cache.sqlite"))
    fs, errors = featurize(rows, root, featurizer, progress=False)
    assert not errors
    splits = assign_splits(rows, val=0.1, calib=0.1, test=0.15, seed=0)
    evaluator, history, idx = fit_evaluator(fs, {r["id"]: r for r in rows}, splits, TrainConfig(epochs=60),
                                            review_threshold=0.6, progress=False)
    evaluator.featurizer = featurizer
    model_dir = evaluator.save(root / "model")
    return {"root": root, "rows": rows, "fs": fs, "splits": splits, "evaluator": evaluator,
            "history": history, "idx": idx, "model_dir": Path(model_dir)}
