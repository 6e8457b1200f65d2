"""Score calibration per writing style: two maps blended by the style model's probability."""

from __future__ import annotations

import numpy as np
import pytest

from dermeval.model.train import apply_calibration, fit_calibration, fit_style_calibration
from dermeval.schema import DIMENSIONS


def _raw_and_truth(seed: int = 0, n: int = 400):
    """The network reads expert-written narratives 0.8 too high and generated ones 0.3 too low."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(0.5, 4.5, (n, len(DIMENSIONS)))
    expert = np.arange(n) % 2 == 0
    bias = np.where(expert, 0.8, -0.3)[:, None]
    raw = {"mean": y + bias + rng.normal(0, 0.1, y.shape), "logvar": np.full(y.shape, np.log(0.04))}
    return raw, y, expert


def _mae(pred, y, mask):
    return float(np.abs(pred[mask] - y[mask]).mean())


def test_each_style_gets_its_own_map_and_the_mix_beats_one_map_on_both():
    raw, y, expert = _raw_and_truth()
    test_raw, test_y, test_expert = _raw_and_truth(seed=1)
    one = apply_calibration(fit_calibration(raw, y), test_raw)[0]
    cal = fit_style_calibration(raw, y, expert, style={"unused": True})
    two = apply_calibration(cal, test_raw, test_expert.astype(float))[0]  # a style model that is always right
    for mask in (test_expert, ~test_expert):
        assert _mae(two, test_y, mask) < 0.15 < _mae(one, test_y, mask)
    half = apply_calibration(cal, test_raw, np.full(len(test_y), 0.5))
    a = apply_calibration(cal, test_raw, np.ones(len(test_y)))
    b = apply_calibration(cal, test_raw, np.zeros(len(test_y)))
    assert np.allclose(half[0], (a[0] + b[0]) / 2)
    assert (half[1] >= np.minimum(a[1], b[1]) - 1e-9).all()  # unsure of the style: no narrower than either map


def test_a_style_calibration_needs_the_style_probabilities():
    raw, y, expert = _raw_and_truth()
    with pytest.raises(ValueError, match="per writing style"):
        apply_calibration(fit_style_calibration(raw, y, expert, style={}), raw)


def _features(n: int = 300, seed: int = 0):
    """Sentence vectors where the expert-written rows (every other one) lean one way."""
    from dermeval.model.data import FeatureSet

    rng = np.random.default_rng(seed)
    expert = np.arange(n) % 2 == 0
    per = 4
    units = rng.normal(0, 1, (n * per, 16)).astype(np.float32)
    units[np.repeat(expert, per), :3] += 1.0
    return FeatureSet(ids=[f"r{i}" for i in range(n)], image=np.zeros((1, 8), np.float32),
                      image_index=np.zeros(n, np.int64), units=units, offsets=np.arange(0, n * per + 1, per),
                      unit_index=np.arange(n * per), stats=rng.normal(0, 1, (n, 3)).astype(np.float32),
                      conclusion=np.full(n, -1)), expert


def test_the_style_model_tells_expert_writing_apart_and_survives_a_json_round_trip():
    import json

    from dermeval.model.style import StyleModel

    fs, expert = _features()
    train, held = np.arange(0, 200), np.arange(200, 300)
    style = StyleModel.fit(fs, train, expert[train].astype(int))
    p = style.prob(fs, held)
    assert ((p > 0.5) == expert[held]).mean() > 0.9
    again = StyleModel.from_json(json.loads(json.dumps(style.to_json())))
    assert np.allclose(again.prob(fs, held), p, atol=1e-4)


def test_an_evaluator_with_a_style_calibration_saves_and_loads_it(trained, tmp_path):
    """The trained test model gets a style calibration (its rows split in two by a style model)
    and scores the same after a save and a load."""
    from dermeval.model.evaluator import Evaluator
    from dermeval.model.style import StyleModel
    from dermeval.model.train import predict_raw

    ev, fs, idx = trained["evaluator"], trained["fs"], trained["idx"]
    rows = {r["id"]: r for r in trained["rows"]}
    label = np.array([rows[fs.ids[i]]["model"] < "m" for i in range(len(fs))])  # some split of the rows
    style = StyleModel.fit(fs, idx["train"], label[idx["train"]].astype(int))
    raw = predict_raw(ev.net, fs, idx["calib"])
    y = np.array([[rows[fs.ids[i]]["scores"][d] for d in DIMENSIONS] for i in idx["calib"]])
    cal = fit_style_calibration(raw, y, label[idx["calib"]], style.to_json())
    mine = Evaluator(ev.net, {**ev.meta, "calibration": cal}, ev.featurizer, ev.vocabulary, ev.novelty)
    loaded = Evaluator.load(mine.save(tmp_path / "model"), ev.featurizer)
    assert loaded.style is not None
    a, b = mine.predict(fs, idx["test"]), loaded.predict(fs, idx["test"])
    assert np.allclose(a["scores"], b["scores"], atol=1e-5) and np.allclose(a["sigma"], b["sigma"], atol=1e-5)
    assert not np.allclose(a["scores"], ev.predict(fs, idx["test"])["scores"])  # the calibration is in use
