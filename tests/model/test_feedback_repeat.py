"""Expert-rated rows (source ``feedback``) weigh ``train.feedback_repeat`` times in training."""

from __future__ import annotations

import numpy as np
import pytest

from dermeval.model import fit
from dermeval.model.fit import repeat_feedback
from dermeval.model.train import predict_raw, train_network
from dermeval.schema import FEEDBACK_SOURCE
from tests.conftest import train_config
from tests.model.test_training_loop import _feature_set, score_targets


def test_each_rated_training_row_is_drawn_repeat_times_and_nothing_else_changes():
    sources = np.array(["dermsynth", FEEDBACK_SOURCE, "dermbench", FEEDBACK_SOURCE, FEEDBACK_SOURCE, "dermsynth"])
    train_idx = np.array([0, 1, 2, 3, 5])  # row 4 (rated) lies in another split
    assert repeat_feedback(train_idx, sources, 1) is train_idx
    seen = repeat_feedback(train_idx, sources, 3)
    assert sorted(seen.tolist()) == [0, 1, 1, 1, 2, 3, 3, 3, 5]
    assert 4 not in seen  # a rated row of the test split never reaches training
    assert repeat_feedback(train_idx, np.array(["dermsynth"] * 6), 5).tolist() == train_idx.tolist()


def test_the_setting_is_checked_like_every_training_key():
    from dermeval.model.config import TrainConfigError

    with pytest.raises(TrainConfigError, match="train.feedback_repeat"):
        train_config(feedback_repeat=0)


def test_repeated_rated_rows_pull_the_model_toward_the_reviewers_scores():
    """The reviewers rate 24 narratives far lower than the 168 other rows that look alike: a
    network that sees each rated row 8 times an epoch comes closer to the reviewers' scores there."""
    n, rated = 192, np.arange(0, 192, 8)
    fs = _feature_set([3] * n)
    consensus = np.full((n, 6), 4.0, np.float32)
    consensus[rated] = 1.5
    t = score_targets(consensus)
    sources = np.full(n, "dermsynth")
    sources[rated] = FEEDBACK_SOURCE
    small = dict(epochs=4, batch_size=32, hidden=16, vocab_category=False, context_category=False,
                 early_stopping=False, image_verdict=False, defects_read_match=False, category_weight=0.0,
                 defect_weight=0.0, members=1)
    train_idx = np.arange(n)
    error = {}
    for repeat in (1, 8):
        net, _ = train_network(fs, t, repeat_feedback(train_idx, sources, repeat), train_idx[:8],
                               train_config(feedback_repeat=repeat, **small), progress=False)
        error[repeat] = float(np.abs(predict_raw(net, fs, rated)["mean"] - 1.5).mean())
    assert error[8] < error[1] - 0.3, error


def test_fit_evaluator_trains_on_the_repeated_rows(train_world, monkeypatch):
    """The wiring: fit_evaluator hands the networks the training split with the rated rows repeated;
    the rest of the fit (style model, novelty reference, vocabulary) still reads each row once."""
    w = train_world
    rows = {r["id"]: r for r in w["rows"]}
    train_ids = [rid for rid in w["fs"].ids if w["splits"].get(rid) == "train"]
    rated = set(train_ids[:10])
    rows = {rid: {**r, "source": FEEDBACK_SOURCE} if rid in rated else r for rid, r in rows.items()}
    seen: dict[str, np.ndarray] = {}

    class Stop(Exception):
        pass

    def capture(fs, t, train_idx, val_idx, cfg, progress=True):
        seen["train"] = train_idx
        raise Stop

    monkeypatch.setattr(fit, "train_members", capture)
    with pytest.raises(Stop):
        fit.fit_evaluator(w["fs"], rows, w["splits"], train_config(feedback_repeat=4), progress=False)
    ids = [w["fs"].ids[i] for i in seen["train"]]
    assert len(ids) == len(train_ids) + 3 * len(rated)
    assert all(ids.count(rid) == 4 for rid in rated)
    assert all(ids.count(rid) == 1 for rid in train_ids[10:])
