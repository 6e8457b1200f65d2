"""The training loop: length-grouped batches, and a loss that survives rows without raters."""

from __future__ import annotations

import numpy as np
import torch

from dermeval.model.data import FeatureSet
from dermeval.model.network import DermEvalNet, NetConfig
from dermeval.model.train import (
    MEMBER_SEED_STRIDE,
    Targets,
    _loss,
    by_width,
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


def score_targets(consensus: np.ndarray) -> Targets:
    """Targets of scores alone: one rater who gives the consensus, no problem labels, no known category."""
    n = len(consensus)
    return Targets(consensus=consensus, raters=consensus[:, None, :].copy(), defects=np.zeros((n, 1), np.float32),
                   has_defects=np.zeros(n, bool), defect_names=["x"], category=np.full(n, -1, np.int64),
                   conclusion_ok=np.zeros(n, bool), image_ok=np.zeros(n, bool), categories=["a", "b"])


def _toy_problem(n: int = 96) -> tuple[FeatureSet, Targets]:
    """Rows whose six scores follow their first text feature: learnable, so validation MAE moves."""
    fs = _feature_set([3] * n)
    signal = fs.units[fs.offsets[:-1], 0]
    consensus = np.clip(2.5 + np.repeat(signal[:, None], 6, 1), 0, 5).astype(np.float32)
    return fs, score_targets(consensus)


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
    train_idx, val_idx = np.arange(0, 72), np.arange(72, 96)  # batches of 16: one short batch an epoch
    # No dropout: the members, trained side by side, then learn exactly what each would learn alone
    # (with dropout only the draws differ). Every member's short batch falls at another step, so
    # this also checks that padding rows teach nothing.
    small = dict(epochs=3, batch_size=16, hidden=16, vocab_category=False, context_category=False, early_stopping=False,
                 image_verdict=False, defects_read_match=False, category_weight=0.0, defect_weight=0.0, dropout=0.0)
    whole, history = train_members(fs, t, train_idx, val_idx, train_config(members=3, **small), progress=False)
    assert [(h["member"], h["epoch"]) for h in history] == [(m, e) for m in range(3) for e in range(1, 4)]
    assert [h["step"] for h in history] == list(range(1, 10))
    # member m is the single network of seed + m MEMBER_SEED_STRIDE, its batches in the ensemble's order
    for m in (0, 1):
        single, curve = train_network(fs, t, train_idx, val_idx,
                                      train_config(seed=m * MEMBER_SEED_STRIDE, members=1, **small), progress=False,
                                      align_seed=0)
        assert np.allclose([c["val_mae"] for c in curve], [h["val_mae"] for h in history if h["member"] == m],
                           atol=1e-5)
        assert np.allclose([c["train_loss"] for c in curve],
                           [h["train_loss"] for h in history if h["member"] == m], atol=1e-5)
        # (Adam scales each step by the gradient's size, so float-rounding differences in near-zero
        # gradients move a weight by up to ~1e-4; another seed's weights differ by ~0.1)
        for a, b in zip(single.state_dict().values(), whole.members[m].state_dict().values(), strict=True):
            assert torch.allclose(a, b, atol=1e-3)
    raw = predict_raw(whole, fs, val_idx)
    parts = [predict_raw(m, fs, val_idx) for m in whole.members]
    assert np.allclose(raw["mean"], np.mean([p["mean"] for p in parts], 0), atol=1e-5)
    assert not np.allclose(parts[0]["mean"], parts[1]["mean"])  # different seeds, different members
    # early stopping: each member keeps its own best epoch and its curve ends where it alone would stop
    stop = {**small, "early_stopping": True, "patience": 1, "epochs": 8, "lr": 0.02}
    whole, history = train_members(fs, t, train_idx, val_idx, train_config(members=2, **stop), progress=False)
    stops = [max(h["epoch"] for h in history if h["member"] == m) for m in (0, 1)]
    assert stops[0] != stops[1] and max(stops) < 8  # (the toy problem: members stop at different epochs)
    for m in (0, 1):
        single, curve = train_network(fs, t, train_idx, val_idx,
                                      train_config(seed=m * MEMBER_SEED_STRIDE, members=1, **stop), progress=False,
                                      align_seed=0)
        assert [c["epoch"] for c in curve] == [h["epoch"] for h in history if h["member"] == m]
        kept = _val_mae(whole.members[m], fs, t, val_idx)
        assert abs(kept - min(h["val_mae"] for h in history if h["member"] == m)) < 1e-6  # its own best epoch
        assert abs(kept - min(c["val_mae"] for c in curve)) < 1e-4  # = the network's alone, to float rounding
    # one network at members=1, exactly as before ensembles
    single, _ = train_members(fs, t, train_idx, val_idx, train_config(members=1, **small), progress=False)
    assert not hasattr(single, "members")


def test_predictions_batch_rows_by_length_and_come_back_in_the_order_asked():
    lengths = [2, 30, 5, 30, 1, 12, 7]
    fs = _feature_set(lengths)
    cfg = train_config(hidden=16, vocab_category=False, context_category=False, image_verdict=False,
                       defects_read_match=False, members=1)
    torch.manual_seed(0)
    net = DermEvalNet(NetConfig.from_train(cfg, 1, 2))
    idx = np.array([5, 0, 3, 6, 1])
    together = predict_raw(net, fs, idx, batch_size=2, with_attention=True)
    for k, i in enumerate(idx):
        alone = predict_raw(net, fs, np.array([i]), with_attention=True)
        assert np.allclose(together["mean"][k], alone["mean"][0], atol=1e-5)
        assert together["attention"][k].shape == (6, lengths[i])
        assert np.allclose(together["attention"][k], alone["attention"][0], atol=1e-5)
    assert predict_raw(net, fs, [])["mean"].shape[0] == 0


def test_members_batches_line_up_by_width_and_each_member_keeps_all_its_own():
    rng = np.random.default_rng(3)
    lengths = list(rng.choice([4, 9, 12, 30, 45], size=640))
    fs = _feature_set(lengths)
    width = np.diff(fs.offsets)
    plans = [length_batches(fs, r.permutation(640), 32, r) for r in map(np.random.default_rng, (0, 1))]
    steps = np.random.default_rng(9).permutation(len(plans[0]))
    lined = [by_width(fs, plan, steps) for plan in plans]
    for plan, ordered in zip(plans, lined, strict=True):  # the member's own batches, each once
        assert sorted(map(tuple, plan)) == sorted(map(tuple, ordered))
    stacked = [max(int(width[a].max()), int(width[b].max())) for a, b in zip(*lined, strict=True)]
    unlined = [max(int(width[a].max()), int(width[b].max())) for a, b in zip(*plans, strict=True)]
    own = [int(width[b].max()) for b in plans[0]]
    # a stacked step pads to the wider member's batch: lined up, hardly wider than a member's own
    assert np.mean(stacked) < 1.05 * np.mean(own) < np.mean(unlined)
    assert [int(width[b].max()) for b in lined[0]] != sorted(int(width[b].max()) for b in lined[0])  # not sorted
