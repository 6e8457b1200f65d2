"""The reference-based judge beside DermEval in the monitor, and the queue's disagreement value.

Runs on a real SQLite store with the stand-in evaluator; the judge is the real offline judge
(its calibration fitted here on the tiny world's simulated ratings, over hashed sentence vectors).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from dermeval.formats.common import read_rows
from dermeval.judge.local import LocalJudge, fit_calibration
from dermeval.monitor.judging import BatchJudge
from dermeval.monitor.run import monitor_batch
from dermeval.params import MonitorParams
from dermeval.review.queue import build_queue, candidates, value_parts
from dermeval.schema import DIMENSIONS
from dermeval.store.db import open_store
from tests.monitor.helpers import FakeEvaluator, HashFeaturizer

P = MonitorParams(reference_weeks=1, chunk=16, n_boot=30)


@pytest.fixture(scope="module")
def judge_files(tiny_world, tmp_path_factory):
    """A calibration and a references file holding every other batch case's reference."""
    out = tmp_path_factory.mktemp("judge")
    cases = {c["id"]: c for c in read_rows(tiny_world / "cases.jsonl")}
    rated = [r for r in read_rows(tiny_world / "ratings.jsonl") if r["case_id"] in cases][:300]
    judge = LocalJudge(HashFeaturizer())
    X, _, _ = judge.measure_pairs([r["diagnostic_text"] for r in rated],
                                  [cases[r["case_id"]]["reference_text"] for r in rated],
                                  [cases[r["case_id"]]["diagnosis"] for r in rated])
    fit_calibration(X, np.array([[r["scores"][d] for d in DIMENSIONS] for r in rated])).save(out / "judge.json")
    refs = read_rows(tiny_world / "batch_references.jsonl")
    assert refs and all(r["reference_text"] for r in refs)  # the world writes every batch case's reference
    kept = refs[::2]
    (out / "refs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept), "utf-8")
    return {"calibration": out / "judge.json", "references": out / "refs.jsonl", "with_ref": {r["id"] for r in kept}}


def test_judged_narratives_keep_the_judges_view_and_the_queue_values_the_gap(tmp_path, tiny_world, judge_files):
    bj = BatchJudge.load(judge_files["references"], judge_files["calibration"], HashFeaturizer())
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    batch = tiny_world / "batches/week_01.jsonl"
    monitor_batch(batch, FakeEvaluator(), "fake/v1", engine, P, image_root=tiny_world, progress=False, judge=bj)
    every = candidates(engine, "fake/v1", "week_01")
    has_ref = every["case_id"].isin(judge_files["with_ref"])
    assert has_ref.any() and (~has_ref).any()
    assert every.loc[has_ref, "judge_gap"].notna().all() and every.loc[~has_ref, "judge_gap"].isna().all()

    # The stored gap is the largest per-dimension difference between the two evaluators' scores.
    row = next(r for r in read_rows(batch) if r["case_id"] in judge_files["with_ref"])
    ref = bj.references[row["case_id"]]
    (theirs, _), = bj.judge.judge([row["diagnostic_text"]], [ref.text], [ref.diagnosis])
    mine = FakeEvaluator().score_batch([row], tiny_world)[0]["scores"]
    stored = every.set_index("narrative_id").loc[row["id"], "judge_gap"]
    assert stored == pytest.approx(max(abs(mine[d] - theirs[d]) for d in DIMENSIONS), abs=1e-3)

    parts = value_parts(every, 2.5)["disagreement"]
    assert parts.max() == 1.0 and (parts[~has_ref] == 0).all()  # no reference: no disagreement known
    only = {"weights": {"disagreement": 1.0}, "random_share": 0.0, "stratify": [], "reviewers_per_narrative": 2,
            "safety_floor": 2.5, "batch_id": "week_01"}
    picked = build_queue(engine, "fake/v1", budget=5, **only)
    assert all(q["why"]["disagreement"] > float(parts.mean()) for q in picked)


def test_a_store_scored_before_the_judge_was_set_up_is_filled_in_without_rescoring(tmp_path, tiny_world,
                                                                                    judge_files):
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    batch = tiny_world / "batches/week_02.jsonl"
    monitor_batch(batch, FakeEvaluator(), "fake/v1", engine, P, image_root=tiny_world, progress=False)
    assert candidates(engine, "fake/v1", "week_02")["judge_gap"].isna().all()
    again = FakeEvaluator()
    bj = BatchJudge.load(judge_files["references"], judge_files["calibration"], HashFeaturizer())
    result = monitor_batch(batch, again, "fake/v1", engine, P, image_root=tiny_world, progress=False, judge=bj)
    every = candidates(engine, "fake/v1", "week_02")
    has_ref = every["case_id"].isin(judge_files["with_ref"])
    assert again.calls == 0 and result.scored_now == 0  # nothing scored twice
    assert every.loc[has_ref, "judge_gap"].notna().all() and every.loc[~has_ref, "judge_gap"].isna().all()


def test_a_missing_reference_file_or_calibration_turns_judging_off_with_a_note(tmp_path, judge_files, capsys):
    assert BatchJudge.load(None, judge_files["calibration"], HashFeaturizer()) is None
    assert BatchJudge.load(tmp_path / "none.jsonl", judge_files["calibration"], HashFeaturizer()) is None
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n{"id": "y", "reference_text": "Erythematous plaques; psoriasis."}\nnot json\n',
                   "utf-8")
    bj = BatchJudge.load(bad, judge_files["calibration"], HashFeaturizer())
    assert bj is not None and set(bj.references) == {"y"}  # the good row is kept, the rest reported
    assert "2 reference row(s) rejected" in capsys.readouterr().err


def test_the_project_judge_is_off_unless_the_judge_backend_is_local(judge_files):
    from types import SimpleNamespace

    def project(backend: str) -> SimpleNamespace:
        return SimpleNamespace(judge=SimpleNamespace(backend=backend),
                               monitor=SimpleNamespace(references=str(judge_files["references"])),
                               data=SimpleNamespace(judge=str(judge_files["calibration"])))

    assert BatchJudge.for_project(project("openai"), HashFeaturizer()) is None
    local = BatchJudge.for_project(project("local"), HashFeaturizer())
    assert local is not None and {r.id for r in local.references.values()} == judge_files["with_ref"]
