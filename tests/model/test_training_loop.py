"""The training loop: length-grouped batches, and a loss that survives rows without raters."""

from __future__ import annotations

import numpy as np
import torch

from dermeval.model.data import FeatureSet
from dermeval.model.train import (
    MEMBER_SEED_STRIDE,
    Targets,
    _loss,
    length_batches,
    predict_raw,
    train_members,
    train_network,
)
from tests.conftest import train_config


def _feature_set(lengths: list[int]) -> FeatureSet:
    n = len(lengths)
    offsets = np.cumsum([0, *lengths]).astype(np.int64)
    rng = np.random.default_rng(0)
    return FeatureSet(ids=[f"r{i}" for i in range(n)], image=rng.normal(size=(1, 1280)).astype(np.float32),
                      image_index=np.zeros(n, np.int64), units=rng.normal(size=(int(offsets[-1]), 384)).astype(
                          np.float32), offsets=offsets, unit_index=np.arange(offsets[-1], dtype=np.int64),
                      stats=np.zeros((n, 4), np.float32), conclusion=np.full(n, -1, np.int64))


def _padding(fs: FeatureSet, batches: list[np.ndarray]) -> int:
    lengths = np.diff(fs.offsets)
    return int(sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches))


def test_length_batches_cover_every_row_once_and_pad_far_less_than_random_batches():
    rng = np.random.default_rng(1)
    lengths = list(rng.choice([4, 9, 12, 30, 45], size=1000))  # short simulated and long real narratives
    fs = _feature_set(lengths)
    order = rng.permutation(len(lengths))
    batches = length_batches(fs, order, 32, np.random.default_rng(2), pool_batches=10)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert max(len(b) for b in batches) == 32
    random_batches = [order[k:k + 32] for k in range(0, len(order), 32)]
    assert _padding(fs, batches) < 0.2 * _padding(fs, random_batches)
    # the batch order is shuffled: long and short batches are interleaved, not sorted by length
    means = [float(np.diff(fs.offsets)[b].mean()) for b in batches]
    assert means != sorted(means)


def test_rows_without_a_rater_breakdown_train_without_nan():
    """Records rated by consensus alone (a team's own) carry no per-rater scores: the variance term
    has nothing to learn from, and the loss must stay finite rather than turn the batch into NaN."""
    n = 2
    t = Targets(consensus=np.full((n, 6), 4.0, np.float32), raters=np.full((n, 1, 6), np.nan, np.float32),
                defects=np.zeros((n, 1), np.float32), has_defects=np.zeros(n, bool), defect_names=[],
                category=np.full(n, -1, np.int64), conclusion_ok=np.zeros(n, bool), image_ok=np.zeros(n, bool),
                categories=[])
    out = {"mean": torch.tensor([[3.0] * 6, [4.0] * 6]), "logvar": torch.zeros(2, 6)}
    loss = float(_loss(out, np.arange(n), t, train_config(overall_weight=0.0)))
    assert abs(loss - 0.5) < 1e-6  # the L1 term alone: row 0 off by 1 everywhere, row 1 exact


def _toy_problem(n: int = 96) -> tuple[FeatureSet, Targets]:
    """Rows whose six scores follow their first text feature: learnable, so validation MAE moves."""
    fs = _feature_set([3] * n)
    signal = fs.units[fs.offsets[:-1], 0]
    consensus = np.clip(2.5 + np.repeat(signal[:, None], 6, 1), 0, 5).astype(np.float32)
    t = Targets(consensus=consensus, raters=consensus[:, None, :].copy(), defects=np.zeros((n, 1), np.float32),
                has_defects=np.zeros(n, bool), defect_names=["x"], category=np.full(n, -1, np.int64),
                conclusion_ok=np.zeros(n, bool), image_ok=np.zeros(n, bool), categories=["a", "b"])
    return fs, t


def _val_mae(net, fs: FeatureSet, t: Targets, idx: np.ndarray) -> float:
    return float(np.abs(predict_raw(net, fs, idx)["mean"] - t.consensus[idx]).mean())


def test_fixed_schedule_trains_every_epoch_and_keeps_the_last_early_stopping_keeps_the_best():
    fs, t = _toy_problem()
    train_idx, val_idx = np.arange(0, 72), np.arange(72, 96)
    small = dict(epochs=6, patience=1, batch_size=16, hidden=16, vocab_category=False, context_category=False,
                 image_verdict=False, defects_read_match=False, category_weight=0.0, defect_weight=0.0)
    net, history = train_network(fs, t, train_idx, val_idx, train_config(early_stopping=False, **small),
                                 progress=False)
    assert [h["epoch"] for h in history] == list(range(1, 7))  # patience 1 stops nothing
    assert abs(_val_mae(net, fs, t, val_idx) - history[-1]["val_mae"]) < 1e-5
    net, history = train_network(fs, t, train_idx, val_idx, train_config(early_stopping=True, **small),
                                 progress=False)
    best = min(h["val_mae"] for h in history)
    assert abs(_val_mae(net, fs, t, val_idx) - best) < 1e-5
    if len(history) == 6:  # stopped at no point: then the curve fell every epoch, else it stopped early
        assert [h["val_mae"] for h in history] == sorted((h["val_mae"] for h in history), reverse=True)


def test_an_ensemble_trains_each_member_from_its_own_seed_and_scores_their_mean():
    fs, t = _toy_problem()
    train_idx, val_idx = np.arange(0, 72), np.arange(72, 96)
    small = dict(epochs=3, batch_size=16, hidden=16, vocab_category=False, context_category=False, early_stopping=False,
                 image_verdict=False, defects_read_match=False, category_weight=0.0, defect_weight=0.0)
    whole, history = train_members(fs, t, train_idx, val_idx, train_config(members=3, **small), progress=False)
    assert [(h["member"], h["epoch"]) for h in history] == [(m, e) for m in range(3) for e in range(1, 4)]
    assert [h["step"] for h in history] == list(range(1, 10))
    # member 0 is the single network of the same seed; member 1 that of seed + MEMBER_SEED_STRIDE
    for m in (0, 1):
        single, curve = train_network(fs, t, train_idx, val_idx,
                                      train_config(seed=m * MEMBER_SEED_STRIDE, members=1, **small), progress=False)
        assert [c["val_mae"] for c in curve] == [h["val_mae"] for h in history if h["member"] == m]
        for a, b in zip(single.state_dict().values(), whole.members[m].state_dict().values(), strict=True):
            assert torch.equal(a, b)
    raw = predict_raw(whole, fs, val_idx)
    parts = [predict_raw(m, fs, val_idx) for m in whole.members]
    assert np.allclose(raw["mean"], np.mean([p["mean"] for p in parts], 0), atol=1e-5)
    assert not np.allclose(parts[0]["mean"], parts[1]["mean"])  # different seeds, different members
    # one network at members=1, exactly as before ensembles
    single, _ = train_members(fs, t, train_idx, val_idx, train_config(members=1, **small), progress=False)
    assert not hasattr(single, "members")
