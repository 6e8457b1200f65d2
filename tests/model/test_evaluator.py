"""The trained evaluator: quality on held-out data, persistence, critique, bad input, MLflow."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dermeval.cli import app
from dermeval.features import MAX_UNITS
from dermeval.metrics import dimension_table, mean_baseline
from dermeval.model.evaluator import Evaluator, EvaluatorNotFound, load_evaluator
from dermeval.model.network import build_network
from dermeval.model.train import predict_raw
from dermeval.schema import DIMENSIONS, TITLES

pytestmark = pytest.mark.slow


def _test_table(trained):
    fs, idx, rows = trained["fs"], trained["idx"], {r["id"]: r for r in trained["rows"]}
    pred = trained["evaluator"].predict(fs, idx["test"])
    expert = {d: np.array([rows[fs.ids[i]]["scores"][d] for i in idx["test"]]) for d in DIMENSIONS}
    train = {d: np.array([rows[fs.ids[i]]["scores"][d] for i in idx["train"]]) for d in DIMENSIONS}
    predicted = {d: pred["scores"][:, j] for j, d in enumerate(DIMENSIONS)}
    return dimension_table(expert, predicted, n_boot=0), mean_baseline(train, expert, n_boot=0)


def test_beats_the_mean_baseline_on_held_out_cases(trained):
    model, base = _test_table(trained)
    for d in [*DIMENSIONS, "overall"]:
        assert model[d]["mae"]["value"] < 0.8 * base[d]["mae"]["value"], d
    assert model["overall"]["spearman"]["value"] > 0.6


def test_save_load_round_trip(trained):
    again = load_evaluator(trained["model_dir"])
    fs = trained["fs"]
    a = trained["evaluator"].predict(fs, np.arange(20))["scores"]
    b = again.predict(fs, np.arange(20))["scores"]
    assert np.allclose(a, b, atol=1e-6)
    assert not list(Path(trained["model_dir"]).glob("*.pkl"))


def test_an_ensemble_saves_loads_and_scores_as_its_members_mean(trained, tmp_path):
    """The session's evaluator is an ensemble: its folder loads back as the same ensemble, an
    ensemble of two copies of one member scores exactly as that member alone, and a second member
    that differs moves the scores and raises the uncertainty."""
    ev = trained["evaluator"]
    assert ev.net.cfg.members == len(ev.net.members) > 1
    fs, rows = trained["fs"], np.arange(20)
    again = load_evaluator(trained["model_dir"])
    assert again.net.cfg.members == ev.net.cfg.members
    assert np.allclose(again.predict(fs, rows)["scores"], ev.predict(fs, rows)["scores"], atol=1e-6)
    one_net = build_network(dataclasses.replace(ev.net.cfg, members=1))
    one_net.load_state_dict(ev.net.members[0].state_dict())
    twins = build_network(dataclasses.replace(ev.net.cfg, members=2))
    for m in twins.members:
        m.load_state_dict(ev.net.members[0].state_dict())
    one, same = (Evaluator(net, ev.meta, ev.featurizer, ev.vocabulary, ev.novelty).predict(fs, rows)
                 for net in (one_net, twins))
    assert np.allclose(one["scores"], same["scores"], atol=1e-5)
    assert np.allclose(one["sigma"], same["sigma"], atol=1e-5)
    twins.members[1].load_state_dict(ev.net.members[1].state_dict())
    pair = Evaluator(twins, ev.meta, ev.featurizer, ev.vocabulary, ev.novelty)
    moved = pair.predict(fs, rows)
    assert not np.allclose(moved["scores"], one["scores"], atol=1e-3)
    raw = [predict_raw(m, fs, rows)["logvar"] for m in twins.members]
    assert (predict_raw(twins, fs, rows)["logvar"] >= np.log(np.mean(np.exp(raw), 0)) - 1e-5).all()
    saved = load_evaluator(pair.save(tmp_path / "pair"))
    assert len(saved.net.members) == 2
    assert np.allclose(saved.predict(fs, rows)["scores"], moved["scores"], atol=1e-6)


def test_feature_set_saves_the_same_bytes_for_the_same_contents(trained, tmp_path):
    import hashlib

    from dermeval.model.data import FeatureSet

    fs = trained["fs"]
    fs.save(tmp_path / "a.npz")
    time.sleep(2.1)  # a zip entry's time has 2 s resolution: a write time would show
    fs.save(tmp_path / "b.npz")
    digest = [hashlib.md5((tmp_path / n).read_bytes()).hexdigest() for n in ("a.npz", "b.npz")]
    assert digest[0] == digest[1]
    back = FeatureSet.load(tmp_path / "a.npz")
    assert back.ids == fs.ids and np.array_equal(back.units, fs.units) and back.warnings == fs.warnings


def test_bf16_encoding_is_cached_apart_and_stays_close(trained, tmp_path):
    from dermeval.features import FeatureStore, Featurizer

    store = FeatureStore(tmp_path / "cache.sqlite")
    row = trained["rows"][0]
    units = [row["diagnostic_text"][:200], "Erythematous scaly plaques on the extensor surfaces."]
    image = [trained["root"] / row["image"]]
    fp32, bf16 = Featurizer(store), Featurizer(store, precision="bf16")
    a_txt, a_img = fp32.sentence_vectors(units), fp32.image_vectors(image)
    b_txt, b_img = bf16.sentence_vectors(units), bf16.image_vectors(image)
    # Each precision encoded its own vectors: nothing was served from the other's entries.
    assert bf16.encoded == {"image": 1, "sentence": 2} and store.count("sentence") == 4
    assert not np.array_equal(a_txt, b_txt)
    cos = (a_txt * b_txt).sum(1) / np.linalg.norm(a_txt, axis=1) / np.linalg.norm(b_txt, axis=1)
    assert cos.min() > 0.999
    img_cos = float(a_img[0] @ b_img[0] / np.linalg.norm(a_img[0]) / np.linalg.norm(b_img[0]))
    assert img_cos > 0.99
    # Served from the cache the second time, unchanged.
    assert np.array_equal(Featurizer(store, precision="bf16").sentence_vectors(units), b_txt)
    with pytest.raises(ValueError, match="unknown encoder precision"):
        Featurizer(store, precision="fp16")
    # A whole narrative scored both ways: the scores move by a few hundredths at most.
    text = row["diagnostic_text"]
    s32 = trained["evaluator"].score(image[0], text)["scores"]
    s16 = load_evaluator(trained["model_dir"], precision="bf16").score(image[0], text)["scores"]
    assert max(abs(s32[d] - s16[d]) for d in DIMENSIONS) < 0.05


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(EvaluatorNotFound, match="does not exist"):
        load_evaluator(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluatorNotFound, match="expected config.json"):
        load_evaluator(tmp_path / "empty")


def _img(trained) -> Path:
    return trained["root"] / trained["rows"][0]["image"]


def test_empty_narrative_scored_at_the_floor(trained):
    out = trained["evaluator"].score(_img(trained), "")
    assert all(v == 0.0 for v in out["scores"].values()) and out["overall"] == 0.0
    assert "empty" in out["critique"]


def test_critique_lines_parse(trained):
    out = trained["evaluator"].score(_img(trained), trained["rows"][0]["diagnostic_text"])
    lines = out["critique"].splitlines()
    for d in DIMENSIONS:
        line = next(ln for ln in lines if ln.startswith(TITLES[d]))
        m = re.match(rf"^{TITLES[d]}: (\d\.\d) - .+ Suggestion: .+", line)
        assert m and abs(float(m.group(1)) - out["scores"][d]) <= 0.051
    assert re.fullmatch(r"Overall Score: \d\.\d", lines[-1])
    assert set(out["uncertainty"]) == set(DIMENSIONS) and isinstance(out["needs_review"], bool)


def test_very_long_narrative_is_seen_or_warned(trained):
    long = " ".join(f"Sentence number {i} describes erythematous scaly plaques." for i in range(MAX_UNITS + 40))
    out = trained["evaluator"].score(_img(trained), long)
    assert "warning" in out and str(MAX_UNITS) in out["warning"]


def test_score_batch_bad_rows_in_order(trained, tmp_path):
    root = trained["root"]
    (root / "zero.png").write_bytes(b"")
    (root / "junk.png").write_bytes(b"not an image")
    Image.new("1", (9000, 9000)).save(root / "bomb.png")
    good = trained["rows"][0]
    rows = [
        {"id": "a", "image": good["image"], "diagnostic_text": good["diagnostic_text"]},
        {"id": "b", "image": "zero.png", "diagnostic_text": "text"},
        {"id": "c", "image": "junk.png", "diagnostic_text": "text"},
        {"id": "d", "image": "bomb.png", "diagnostic_text": "text"},
        {"id": "e", "image": "../outside.png", "diagnostic_text": "text"},
        {"id": "f", "image": good["image"]},
        {"id": "g", "image": good["image"], "diagnostic_text": ""},
    ]
    out = trained["evaluator"].score_batch(rows, root, progress=False)
    assert [r["id"] for r in out] == list("abcdefg")
    assert ["error" in r for r in out] == [False, True, True, True, True, True, False]
    assert "0 bytes" in out[1]["error"] and "decoded" in out[2]["error"] and "bomb" in out[3]["error"]
    assert "escapes" in out[4]["error"] and "diagnostic_text" in out[5]["error"]
    assert out[6]["overall"] == 0.0


def test_duplicate_ids_in_one_chunk_keep_their_own_scores(trained):
    """Rows sharing an id are scored as themselves (the pyfunc, REST and Spark paths score through here)."""
    ev, root = trained["evaluator"], trained["root"]
    a, b = trained["rows"][0], trained["rows"][11]
    rows = [{"id": "same", "image": r["image"], "diagnostic_text": r["diagnostic_text"]} for r in (a, b)]
    together = ev.score_batch(rows, root, progress=False)
    alone = [ev.score_batch([r], root, progress=False)[0] for r in rows]
    assert [r["id"] for r in together] == ["same", "same"]
    assert [r["scores"] for r in together] == [r["scores"] for r in alone]
    assert together[0]["scores"] != together[1]["scores"]


def test_cli_score_batch(trained, tmp_path):
    root = trained["root"]
    src = tmp_path / "in.jsonl"
    rows = [{"id": r["id"], "image": r["image"], "diagnostic_text": r["diagnostic_text"]} for r in trained["rows"][:5]]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["score-batch", "--input", str(src), "--output", str(out), "--image-root",
                                      str(root), "--model", str(trained["model_dir"]), "-q"])
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in out.open()]
    assert len(written) == 6 and "error" in written[-1] and ":6:" in written[-1]["error"]
    assert set(written[0]) >= {"id", "scores", "overall", "uncertainty", "needs_review", "critique", "evaluator"}
    missing = CliRunner().invoke(app, ["score-batch", "--input", str(src), "--output", str(out),
                                       "--model", str(tmp_path / "no-model")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_mlflow_pyfunc_from_code(trained, tmp_path, monkeypatch):
    import mlflow

    from dermeval.serving.mlflow_model import input_example, log_evaluator

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("test")
    with mlflow.start_run():
        info = log_evaluator(trained["model_dir"])
    assert info.signature is not None
    model = mlflow.pyfunc.load_model(info.model_uri)
    frame = model.predict(input_example())
    assert frame.loc[0, "error"] is None or frame.loc[0, "error"] != frame.loc[0, "error"] or not frame.loc[0, "error"]
    assert 0 <= frame.loc[0, "overall"] <= 5
    again = load_evaluator(info.model_uri)
    assert again.meta["calibration"] == trained["evaluator"].meta["calibration"]
