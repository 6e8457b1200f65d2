"""The canary set: stored and scored by every evaluator version, never analysed for drift; its scores move
only when the evaluator does."""

from __future__ import annotations

from sqlalchemy import func, select

from dermeval.monitor.canary import CANARY_BATCH, canary_ratings, canary_report
from dermeval.monitor.run import monitor_batch
from dermeval.params import MonitorParams
from dermeval.store.db import open_store
from dermeval.store.models import Alert, DriftResult
from tests.monitor.helpers import FakeEvaluator

P = MonitorParams(reference_weeks=1, chunk=16, n_boot=30)


class ShiftedEvaluator(FakeEvaluator):
    """Another evaluator version: every score half a point lower."""

    def score_batch(self, records, *args, **kwargs):
        out = super().score_batch(records, *args, **kwargs)
        for r in out:
            if "scores" in r:
                r["scores"] = {d: max(0.0, v - 0.5) for d, v in r["scores"].items()}
                r["overall"] = round(r["overall"] - 0.5, 3)
        return out


def test_every_version_scores_the_canary_and_a_changed_evaluator_shows(tiny_world, tmp_path):
    canary = tiny_world / "canary.jsonl"
    truth = canary_ratings(canary)
    assert len(truth) == 60  # 10 cases x 6 MLLMs, each with the panel's ratings
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    monitor_batch(tiny_world / "batches/week_01.jsonl", FakeEvaluator(), "fake/v1", engine, P,
                  image_root=tiny_world, progress=False)
    for evaluator, version in ((FakeEvaluator(), "fake/v1"), (FakeEvaluator(), "fake/v2"),
                               (ShiftedEvaluator(), "fake/v3")):
        r = monitor_batch(canary, evaluator, version, engine, P, batch_id=CANARY_BATCH, analyse=False,
                          progress=False)
        assert r.stored == 60 and not r.alerts and not r.drift
    with engine.connect() as conn:  # the canary is never part of drift or alerts
        for table in (DriftResult, Alert):
            t = table.__table__
            assert conn.execute(select(func.count()).select_from(t).where(t.c.batch_id == CANARY_BATCH)
                                ).scalar_one() == 0
    rows = canary_report(engine, canary)
    assert [r["evaluator_version"] for r in rows] == ["fake/v1", "fake/v2", "fake/v3"]
    assert rows[0]["moved_vs_previous"] is None and rows[1]["moved_vs_previous"] == 0.0  # same evaluator
    assert rows[2]["moved_vs_previous"] == 0.5  # the evaluator changed: the canary says so
    assert all(r["n_rated"] == 60 and r["mae_overall"] is not None for r in rows)
    assert canary_report(engine, tmp_path / "missing.jsonl") == []
