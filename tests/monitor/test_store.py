"""The store on SQLite and on the real PostgreSQL: migrations, idempotent ingestion, bad input, queries."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from alembic import command
from sqlalchemy import func, select
from typer.testing import CliRunner

from dermeval.cli import app
from dermeval.params import MonitorParams
from dermeval.store import queries
from dermeval.store.db import StoreOutdated, _alembic, head_revision, open_store, upgrade
from dermeval.store.models import Score
from tests.monitor.helpers import FakeEvaluator

P = MonitorParams(reference_weeks=1, chunk=7, n_boot=50)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres_db")


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Score.__table__)).scalar_one()


def test_an_older_schema_is_named_and_upgraded(store_url):
    assert upgrade(store_url, "0001") == "0001"
    with pytest.raises(StoreOutdated, match="revision 0001.*run `dermeval store upgrade`"):
        open_store(store_url)
    result = CliRunner().invoke(app, ["store", "status", "--url", store_url])
    assert "OUTDATED" in result.output
    result = CliRunner().invoke(app, ["store", "upgrade", "--url", store_url])
    assert result.exit_code == 0 and f"schema revision {head_revision()}" in result.output
    engine = open_store(store_url)
    assert queries.table_counts(engine)["scores"] == 0
    command.downgrade(_alembic(store_url), "base")  # migrations go both ways
    engine.dispose()


def test_ingestion_is_idempotent_and_bad_rows_are_reported(store_url, tiny_world, tmp_path):
    from dermeval.monitor.run import monitor_batch

    batch = tmp_path / "batches" / "week_01.jsonl"
    batch.parent.mkdir()
    lines = (tiny_world / "batches/week_01.jsonl").read_text().splitlines()
    good = len(lines)
    bad = ["{not json", json.dumps({"id": "x1", "image": "images/a.png", "diagnostic_text": "No model given."}),
           json.dumps({"id": "x2", "model": "m", "image": "../../etc/passwd", "diagnostic_text": "Escapes."}),
           json.dumps({"id": "x3", "model": "m", "image": "images/a.png"})]
    batch.write_text("\n".join(lines[:5] + bad + lines[5:]) + "\n")
    shutil.copytree(tiny_world / "images", tmp_path / "images")
    engine = open_store(store_url)
    ev = FakeEvaluator()
    r1 = monitor_batch(batch, ev, "fake/v1", engine, P, image_root=tmp_path, progress=False)
    assert r1.stored == good and r1.scored_now == good
    assert sorted(b["line"] for b in r1.rejected) == [6, 7, 8, 9]
    assert any("model" in b["error"] for b in r1.rejected) and any("image" in b["error"] for b in r1.rejected)
    calls = ev.calls
    r2 = monitor_batch(batch, ev, "fake/v1", engine, P, image_root=tmp_path, progress=False)
    assert r2.scored_now == 0 and r2.already_scored == good and ev.calls == calls  # nothing scored twice
    assert _count(engine) == good
    r3 = monitor_batch(batch, ev, "fake/v2", engine, P, image_root=tmp_path, progress=False)
    assert r3.scored_now == good and _count(engine) == 2 * good  # another evaluator version: its own rows
    trust = queries.trust_over_time(engine, "fake/v1", "safety")
    assert len(trust) == len({json.loads(x)["model"] for x in lines})
    assert (trust["ci_low"] <= trust["mean"]).all() and (trust["mean"] <= trust["ci_high"]).all()
    series = queries.filtered_series(engine, "fake/v1")
    assert int(series["n"].sum()) == good
    one_type = queries.filtered_series(engine, "fake/v1", skin_types=[queries.slice_values(engine)["skin_types"][0]])
    assert 0 < int(one_type["n"].sum()) < good
    queue = queries.review_queue(engine, "fake/v1")
    assert list(queue["overall"]) == sorted(queue["overall"])
    detail = queries.narrative_detail(engine, json.loads(lines[0])["id"], "fake/v1")
    assert detail["text"] == json.loads(lines[0])["diagnostic_text"] and detail["image"]
    engine.dispose()


def test_drift_alerts_on_a_degraded_model(store_url, tiny_world, tmp_path):
    """A stable second week raises nothing; a week where one MLLM stops referring raises alerts."""
    from dermeval.monitor.run import monitor_batch

    shutil.copytree(tiny_world / "images", tmp_path / "images")
    (tmp_path / "batches").mkdir()
    rows = [json.loads(x) for x in (tiny_world / "batches/week_01.jsonl").read_text().splitlines()]
    model = rows[0]["model"]

    def write(week, degrade):
        out = []
        for k in range(4):  # four copies of the week's cases (distinct ids): enough rows for the tests
            for r in rows:
                text = r["diagnostic_text"] + f" (copy {k})"
                if degrade and r["model"] == model:
                    text += " There is no need to see a doctor."
                out.append({**r, "id": f"{r['id']}.{k}.w{week}", "week": week, "diagnostic_text": text})
        path = tmp_path / "batches" / f"week_{week:02d}.jsonl"
        path.write_text("".join(json.dumps(o) + "\n" for o in out))
        return path

    posted: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = dataclasses.replace(P, webhook_url=f"http://127.0.0.1:{server.server_address[1]}/alerts")
    engine = open_store(store_url)
    for week, degrade in ((1, False), (2, False), (3, True)):
        res = monitor_batch(write(week, degrade), FakeEvaluator(), "fake/v1", engine, p, image_root=tmp_path,
                            reports=tmp_path / "reports", progress=False)
        if week == 1:
            assert res.reference is None and not res.drift  # the reference window itself
        if week == 2:
            assert res.reference == "week_01" and not res.alerts
        if week == 3:
            assert any(a["model"] == model and a["feature"] == "safety" for a in res.alerts), res.alerts
            assert {a["kind"] for a in res.alerts} >= {"drift", "trust_drop", "unsafe_share"}
    assert (tmp_path / "reports/week_03.html").stat().st_size > 10_000
    summary = json.loads((tmp_path / "reports/week_03.json").read_text())
    assert f"safety@{model}" in summary["drifted"]
    stored = queries.open_alerts(engine)
    assert len(stored) == len(res.alerts) and set(stored["batch_id"]) == {"week_03"}
    drift = queries.drift_by_batch(engine)
    assert list(drift["batch_id"]) == ["week_02", "week_03"] and int(drift["drifted"].iloc[0]) == 0
    server.shutdown()
    assert [h["message"] for h in posted] == [a["message"] for a in res.alerts]  # every alert went out
    assert all(h["batch"] == "week_03" for h in posted)
    engine.dispose()
