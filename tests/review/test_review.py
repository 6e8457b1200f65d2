"""The expert loop on a real store (SQLite and PostgreSQL): queue, ratings, agreement, export, prepare, gate.

Simulated reviewers stand in for experts here: their ratings are the world's simulated panel
plus noise, or fixed numbers where a test needs an exact figure.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel
from typer.testing import CliRunner

from dermeval.cli import app
from dermeval.formats.records import load_records
from dermeval.params import GateParams, MonitorParams, PrepareParams
from dermeval.review.auth import AuthError, add_user, verify
from dermeval.review.export import export_records
from dermeval.review.queue import build_queue
from dermeval.review.ratings import Rating, ReviewError, agreement, icc_2_1, latest, submit
from dermeval.schema import DIMENSIONS
from dermeval.splits import assign_splits
from dermeval.store.db import open_store
from tests.conftest import REPO
from tests.monitor.helpers import FakeEvaluator

P = MonitorParams(reference_weeks=1, chunk=16, n_boot=30)
Q = {"random_share": 0.25, "weights": {"uncertainty": 1.0, "needs_review": 0.5, "low_safety": 1.0},
     "stratify": ["model", "category"], "reviewers_per_narrative": 2, "safety_floor": 2.5}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path, tiny_world):
    from dermeval.monitor.run import monitor_batch

    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_db")
    engine = open_store(url)
    for week in (1, 2):
        monitor_batch(tiny_world / f"batches/week_{week:02d}.jsonl", FakeEvaluator(), "fake/v1", engine, P,
                      image_root=tiny_world, progress=False)
    return {"url": url, "engine": engine, "world": tiny_world, "tmp": tmp_path}


def _six(v: float) -> dict[str, float]:
    return dict.fromkeys(DIMENSIONS, v)


def test_the_schema_the_migrations_build_is_the_models(store):
    with store["engine"].connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert [d for d in diff if "expert_ratings" in repr(d)] == []


def test_the_queue_ranks_by_value_spreads_over_strata_and_keeps_a_random_share(store):
    queue = build_queue(store["engine"], "fake/v1", budget=12, **Q)
    assert len(queue) == 12 and {q["batch_id"] for q in queue} == {"week_02"}  # the latest batch
    by = [q["selected_by"] for q in queue]
    assert by.count("random") == 3 and by[:9] == ["value"] * 9
    valued = [q for q in queue if q["selected_by"] == "value"]
    assert len({q["model"] for q in valued}) >= 4  # the budget is spread, not spent on one MLLM
    from dermeval.review.queue import candidates, value_parts

    every = candidates(store["engine"], "fake/v1")
    parts = value_parts(every, 2.5)
    value = parts["uncertainty"] + 0.5 * parts["needs_review"] + parts["low_safety"]
    assert [q["value"] for q in valued] == sorted((q["value"] for q in valued), reverse=True)  # best first
    assert np.mean([q["value"] for q in valued]) > float(value.mean())  # value picks beat the batch's average
    again = build_queue(store["engine"], "fake/v1", budget=12, **Q)
    assert again == queue  # seeded by the batch: the same queue for everyone asking


def test_the_queue_values_what_the_evaluator_has_least_seen(store):
    from dermeval.review.queue import candidates, value_parts

    every = candidates(store["engine"], "fake/v1")
    assert every["novelty_text"].notna().all() and (every["novelty_image"] == 0.4).all()  # stored with each score
    novelty = value_parts(every, 2.5)["novelty"]
    expect = np.maximum(every["novelty_text"], 0.4)
    assert novelty.max() == 1.0 and np.allclose(novelty, expect / expect.max())
    old = every.assign(novelty_text=np.nan, novelty_image=np.nan)  # rows scored before the store kept novelty
    assert (value_parts(old, 2.5)["novelty"] == 0).all()
    only = {**Q, "weights": {"novelty": 1.0}, "random_share": 0.0, "stratify": []}
    picked = build_queue(store["engine"], "fake/v1", budget=6, **only)
    assert np.mean([q["why"]["novelty"] for q in picked]) > float(novelty.mean()) + 0.1


def test_typical_narratives_are_those_worded_like_the_rest_of_the_batch():
    from dermeval.review.queue import typicality

    common = ["Erythematous scaly plaques on the elbows, most consistent with psoriasis; refer to dermatology.",
              "Scaly erythematous plaques on both elbows, consistent with plaque psoriasis; dermatology referral.",
              "Well-demarcated scaly plaques on the elbows and knees, most consistent with psoriasis.",
              "Silvery scaly plaques over the elbows, typical of psoriasis; refer to a dermatologist."]
    odd = "Buy now: limited offer on garden furniture, free delivery this weekend only."
    t = typicality([*common, odd], k=2)
    assert t[-1] == t.min() and t[-1] < 0.5 * t[:-1].min()
    assert np.isfinite(typicality(["one", "two"])).all() and len(typicality([])) == 0  # tiny batches do not fail


def test_the_wording_stratum_spreads_the_picks_over_how_the_batch_is_written():
    import pandas as pd

    from dermeval.review.queue import select_rows, wording_groups

    groups = [[f"Erythematous scaly plaques on the elbows, case {k}, consistent with psoriasis." for k in range(8)],
              [f"Umbilicated pearly papules on the trunk of child {k}; molluscum likely." for k in range(8)],
              [f"Annular ring with central clearing on forearm {k}: tinea, confirm by KOH." for k in range(8)]]
    texts = [t for g in groups for t in g]
    assert len({tuple(wording_groups(texts, 3)[k * 8:(k + 1) * 8]) for k in range(3)}) == 3  # one group each
    assert all(len(set(wording_groups(texts, 3)[k * 8:(k + 1) * 8])) == 1 for k in range(3))
    assert list(wording_groups(texts[:2], 5)) == [0, 1] and len(wording_groups([], 3)) == 0  # tiny batches
    u = np.r_[np.ones(8), np.zeros(16)]  # all the value is in the psoriasis wording
    df = pd.DataFrame({"text": texts, "model": "m", "category": "c", "needs_review": False, "safety": 4.5,
                       **{f"u_{d}": u for d in DIMENSIONS}})
    kw = {"budget": 3, "random_share": 0.0, "weights": {"uncertainty": 1.0}, "safety_floor": 2.5, "seed": 1}
    by_value = {i // 8 for i, _ in select_rows(df.copy(), strata=["model"], **kw)}
    spread = {i // 8 for i, _ in select_rows(df.copy(), strata=["model", "wording"], **kw)}
    assert by_value == {0} and spread == {0, 1, 2}


def test_near_disagreement_favours_errors_shared_by_many_similar_narratives_over_one_outlier():
    import pandas as pd

    from dermeval.review.queue import near_disagreement, select_rows

    groups = [[f"Erythematous scaly plaques on the elbows, case {k}, consistent with psoriasis." for k in range(12)],
              [f"Umbilicated pearly papules on the trunk of child {k}; molluscum likely." for k in range(12)],
              [f"Annular ring with central clearing on forearm {k}: tinea, confirm by KOH." for k in range(12)]]
    texts = [t for g in groups for t in g]
    gap = np.r_[3.0, np.zeros(11), np.ones(12), np.zeros(12)]  # one large psoriasis gap; moderate in all molluscum
    near = near_disagreement(texts, gap, k=5)
    assert near[0] == pytest.approx(0.5) and np.allclose(near[12:24], 1.0) and np.allclose(near[24:], 0.0)
    assert np.allclose(near_disagreement(texts, np.r_[np.nan, gap[1:]], k=5)[1:12], 0.0)  # unknown gaps do not count
    assert (near_disagreement(texts, np.full(36, np.nan), k=5) == 0).all()
    assert list(near_disagreement(["only one"], np.array([np.nan]))) == [0.0]  # tiny batches do not fail
    df = pd.DataFrame({"text": texts, "model": "m", "category": "c", "needs_review": False, "safety": 4.5,
                       "judge_gap": gap, **{f"u_{d}": 0.1 for d in DIMENSIONS}})
    picks = select_rows(df, budget=6, random_share=0.0, weights={"near_disagreement": 1.0}, strata=[],
                        safety_floor=2.5, seed=3)
    assert sum(12 <= i < 24 for i, _ in picks) >= 4  # most ratings go where many narratives are misjudged
    assert not any(i >= 24 for i, _ in picks)


def test_rated_narratives_leave_the_queue(store):
    eng = store["engine"]
    first = build_queue(eng, "fake/v1", budget=5, **Q)[0]["narrative_id"]
    submit(eng, [Rating(first, "ana", _six(3.0))])
    assert first not in {q["narrative_id"] for q in build_queue(eng, "fake/v1", budget=100, reviewer="ana", **Q)}
    assert first in {q["narrative_id"] for q in build_queue(eng, "fake/v1", budget=100, reviewer="ben", **Q)}
    submit(eng, [Rating(first, "ben", _six(3.5))])  # two reviewers: done for everyone
    assert first not in {q["narrative_id"] for q in build_queue(eng, "fake/v1", budget=100, reviewer="cy", **Q)}
    skipped = build_queue(eng, "fake/v1", budget=5, reviewer="cy", **Q)[0]["narrative_id"]
    submit(eng, [Rating(skipped, "cy", None)])
    assert skipped not in {q["narrative_id"] for q in build_queue(eng, "fake/v1", budget=100, reviewer="cy", **Q)}


def test_ratings_are_append_only_checked_and_need_a_reviewer(store):
    eng = store["engine"]
    nid = build_queue(eng, "fake/v1", budget=1, **Q)[0]["narrative_id"]
    with pytest.raises(ReviewError, match="signed-in reviewer"):
        submit(eng, [Rating(nid, "  ", _six(3.0))])
    with pytest.raises(ReviewError, match="safety"):
        submit(eng, [Rating(nid, "ana", {**_six(3.0), "safety": 7})])
    with pytest.raises(ReviewError, match="not in the store"):
        submit(eng, [Rating("no-such-narrative", "ana", _six(3.0))])
    submit(eng, [Rating(nid, "ana", _six(2.0), "first look")])
    submit(eng, [Rating(nid, "ana", _six(2.5), "changed my mind")])
    everything = latest(eng, include_skips=True)
    assert len(everything) == 1 and everything["accuracy"].iloc[0] == 2.5  # the latest row is the rating
    from sqlalchemy import func, select

    from dermeval.store.models import ExpertRating

    with eng.connect() as conn:  # both rows kept, with who and when
        assert conn.execute(select(func.count()).select_from(ExpertRating.__table__)).scalar_one() == 2


def test_agreement_per_dimension_and_per_reviewer(store):
    eng = store["engine"]
    ids = [q["narrative_id"] for q in build_queue(eng, "fake/v1", budget=12, **Q)]
    rng = np.random.default_rng(0)
    truth = rng.uniform(1, 5, len(ids))
    for who, noise in (("ana", 0.1), ("ben", 0.1), ("cy", 1.5)):
        submit(eng, [Rating(n, who, _six(float(np.clip(round((t + rng.normal(0, noise)) * 2) / 2, 0, 5))))
                     for n, t in zip(ids, truth, strict=True)])
    out = agreement(latest(eng))
    assert out["n_reviewers"] == 3 and out["n_multi_rated"] == len(ids)
    assert all(a["icc"] is not None and a["pairwise_mae"] > 0 for a in out["dimensions"].values())
    worst = max(out["reviewers"], key=lambda r: out["reviewers"][r]["mae_vs_consensus"]["safety"])
    assert worst == "cy"  # the noisy reviewer stands out against the others' consensus
    perfect = np.array([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]])
    assert icc_2_1(perfect) == pytest.approx(1.0) and np.isnan(icc_2_1(perfect[:1]))


def test_submit_from_a_file_stores_good_rows_and_names_bad_ones(store, tmp_path):
    nid = build_queue(store["engine"], "fake/v1", budget=1, **Q)[0]["narrative_id"]
    f = tmp_path / "ratings.jsonl"
    f.write_text("\n".join([
        json.dumps({"narrative_id": nid, "scores": _six(4.0), "comment": "fine"}),
        "{broken",
        json.dumps({"narrative_id": nid, "scores": {**_six(4.0), "accuracy": "4"}}),
        json.dumps({"narrative_id": "missing-id", "scores": _six(4.0)}),
        json.dumps({"narrative_id": nid, "reviewer": "ben", "scores": None}),
    ]) + "\n")
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())
    res = CliRunner().invoke(app, ["review", "submit", str(f), "--reviewer", "ana", "--store", store["url"],
                                   "--params", str(params)])
    assert res.exit_code == 0, res.output
    assert "2 stored, 3 rejected" in res.output and ":2:" in res.output and "missing-id" in res.output
    rows = latest(store["engine"], include_skips=True)
    assert sorted(zip(rows["reviewer"], rows["decision"], strict=True)) == [("ana", "rated"), ("ben", "skipped")]


def test_export_is_byte_stable_and_prepare_merges_it_keeping_cases_whole(store, tmp_path):
    eng = store["engine"]
    ids = [q["narrative_id"] for q in build_queue(eng, "fake/v1", budget=10, **Q)]
    submit(eng, [Rating(n, "ana", _six(3.0)) for n in ids] + [Rating(n, "ben", _six(4.0)) for n in ids[:4]])
    out = tmp_path / "feedback" / "records.jsonl"
    first = export_records(eng, out, project=store["world"])
    bytes_one = out.read_bytes()
    export_records(eng, out, project=store["world"])
    assert out.read_bytes() == bytes_one  # the same ratings: the same file, so dvc repro retrains nothing
    assert first["records"] == 10 and first["ratings"] == 14 and first["reviewers"] == ["ana", "ben"]
    loaded = load_records(out, image_root=out.parent)
    assert not loaded.errors and len(loaded.records) == 10
    both = next(r for r in loaded.records if r.id == ids[0])
    assert both.scores["accuracy"] == 3.5 and set(both.raters) == {"ana", "ben"}
    assert both.image and (out.parent / both.image).is_file()  # the dataset carries its images
    submit(eng, [Rating(ids[5], "ben", _six(1.0))])
    export_records(eng, out, project=store["world"])
    assert out.read_bytes() != bytes_one  # a new rating changes the dataset

    from pipelines.prepare import _feedback_rows

    prepared = tmp_path / "prepared"
    rows, rejected = _feedback_rows(PrepareParams(source="dermsynth", feedback_records=str(out)), prepared)
    assert len(rows) == 10 and not rejected and {r["source"] for r in rows} == {"feedback"}
    assert all((prepared / r["image"]).is_file() for r in rows if r.get("image"))
    splits = assign_splits(rows, val=0.1, calib=0.1, test=0.15, seed=0)
    per_case: dict[str, set[str]] = {}
    for r in rows:
        per_case.setdefault(r["case_id"], set()).add(splits[r["id"]])
    assert all(len(s) == 1 for s in per_case.values())  # the six MLLMs' narratives of a case stay together


def _report(n_expert: int, expert_mae: float) -> dict:
    from tests.registry.helpers import make_report

    report = make_report()
    table = {d: {"mae": {"value": expert_mae, "ci_low": expert_mae, "ci_high": expert_mae}}
             for d in [*DIMENSIONS, "overall"]}
    report["expert"] = {"n": n_expert, "n_cases": n_expert, "evaluator": table}
    return report


def test_the_gate_switches_to_the_expert_slice_at_expert_min_n():
    from registry.gate import decide

    p = GateParams(expert_min_n=30, expert_overall_max=0.30, expert_dimension_max=0.45)
    below = decide(_report(29, 0.9), p)
    assert not any("expert-rated" in c.name for c in below.checks) and below.passed
    at = decide(_report(30, 0.9), p)
    assert at.checks[0].name.startswith("expert-rated (n=30)")  # reported first
    assert not at.passed and any("expert-rated" in r for r in at.reasons)
    assert decide(_report(30, 0.2), p).passed


def test_reviewers_sign_in_with_a_hashed_password(tmp_path):
    users = tmp_path / "users.json"
    add_user(users, "ana", "correct horse battery")
    assert verify(users, "ana", "correct horse battery")
    assert not verify(users, "ana", "wrong password") and not verify(users, "bob", "correct horse battery")
    text = users.read_text()
    assert "correct horse" not in text and "scrypt" in text
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    with pytest.raises(AuthError, match="at least"):
        add_user(users, "ben", "short")
    with pytest.raises(AuthError, match="user name"):
        add_user(users, "bad name!", "long enough password")


def test_params_name_every_review_key():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(raw["review"]) == {"budget_per_week", "random_share", "reviewers_per_narrative", "stratify",
                                  "weights", "users_file", "export", "min_reviewers"}
