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

    # What one backend would store and the other abort on is refused by line on both; the rest is stored.
    from PIL import Image

    Image.new("1", (9000, 9000)).save(tmp_path / "images" / "bomb.png")  # 81 Mpx: refused before decoding
    first = json.loads(lines[0])
    week2 = [{**json.loads(x), "id": json.loads(x)["id"] + ".w2"} for x in lines[:4]]
    week2 += [{**first, "id": "n" * 10_000}, {**first, "id": "long-model", "model": "m" * 10_000},
              {**first, "id": "nul", "diagnostic_text": "Erythema\u0000 here."},
              {**first, "id": "bomb", "case_id": "bomb-case", "image": "images/bomb.png"},
              {**first, "diagnostic_text": "Another text under a stored id."},  # line 9: reused id, other text
              {**json.loads(lines[1]), "model": "another-mllm"}]  # line 10: reused id, other MLLM
    batch2 = tmp_path / "batches" / "week_02.jsonl"
    batch2.write_text("".join(json.dumps(r) + "\n" for r in week2))
    import tracemalloc

    tracemalloc.start()
    r4 = monitor_batch(batch2, ev, "fake/v1", engine, P, image_root=tmp_path, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 300e6  # the 9000x9000 image was never decoded (it would take 2 GB as float pixels)
    # (this stand-in evaluator does not open images, so it scores the bomb row; the real one refuses it)
    assert r4.stored == 5 and r4.scored_now == 5
    errors = {b["line"]: b["error"] for b in r4.rejected}
    assert set(errors) == {5, 6, 7, 9, 10}, errors
    assert "id: 10,000 characters, over the store's 300" in errors[5]
    assert "model: 10,000 characters, over the store's 200" in errors[6]
    assert "NUL character" in errors[7]
    assert "id already stored (batch week_01) with another text" in errors[9]
    assert "with another MLLM" in errors[10]
    engine.dispose()


def _weeks(tiny_world, tmp_path):
    """``write(week, degrade)``: a weekly batch where, if ``degrade``, one MLLM stops referring; and that MLLM."""
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

    return write, model


def test_drift_alerts_on_a_degraded_model(store_url, tiny_world, tmp_path):
    """A stable second week raises nothing; a week where one MLLM stops referring raises alerts."""
    from dermeval.monitor.run import monitor_batch

    write, model = _weeks(tiny_world, tmp_path)

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


class BlindToSafety(FakeEvaluator):
    """A worse evaluator version: it never sees unsafe advice."""

    def score_batch(self, records, *args, **kwargs):
        out = super().score_batch(records, *args, **kwargs)
        for r in out:
            if "scores" in r:
                r["scores"]["safety"] = 4.0
        return out


def test_each_evaluator_version_keeps_its_own_drift_and_alerts_and_people_move_alerts_on(store_url, tiny_world,
                                                                                          tmp_path):
    from dermeval.monitor.run import monitor_batch

    write, model = _weeks(tiny_world, tmp_path)
    engine = open_store(store_url)
    batches = [write(1, False), write(2, False), write(3, True)]

    def run(evaluator, version, weeks=(1, 2, 3)):
        for path in [batches[w - 1] for w in weeks]:
            res = monitor_batch(path, evaluator, version, engine, P, image_root=tmp_path, progress=False)
        return res

    v1 = run(FakeEvaluator(), "fake/v1")
    assert any(a["kind"] == "unsafe_share" for a in v1.alerts)
    v2 = run(BlindToSafety(), "fake/v2")  # the next champion: it sees no unsafe share, raises no such alert
    assert not any(a["kind"] == "unsafe_share" for a in v2.alerts)
    # v2's run deleted nothing of v1's: alerts and drift rows of both versions are there, each its own
    kept_v1 = queries.open_alerts(engine, "fake/v1")
    assert len(kept_v1) == len(v1.alerts) and "unsafe_share" in set(kept_v1["kind"])
    assert len(queries.open_alerts(engine, "fake/v2")) == len(v2.alerts)
    assert len(queries.open_alerts(engine)) == len(v1.alerts) + len(v2.alerts)
    for version in ("fake/v1", "fake/v2"):
        assert list(queries.drift_by_batch(engine, version)["batch_id"]) == ["week_02", "week_03"]
    assert set(queries.drift_details(engine, "week_03", "fake/v1")["evaluator_version"]) == {"fake/v1"}
    # a rollback to v1: its rerun re-scores nothing (its scores are kept) and raises the same alerts again
    again = run(FakeEvaluator(), "fake/v1", weeks=(3,))
    assert again.scored_now == 0 and sorted(a["message"] for a in again.alerts) == sorted(kept_v1["message"])
    assert len(queries.open_alerts(engine, "fake/v1")) == len(v1.alerts)  # replaced, not doubled

    # the lifecycle, from the command line: acknowledge, resolve, with who and why
    current = queries.open_alerts(engine, "fake/v1")  # the rerun replaced the open ones: new ids
    unsafe = int(current[current["kind"] == "unsafe_share"]["id"].iloc[0])
    cli = CliRunner()
    out = cli.invoke(app, ["alerts", "ack", str(unsafe), "--reason", "checking with the vendor", "--by", "dr.a",
                           "--store", store_url, "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["by"] == "dr.a"
    assert cli.invoke(app, ["alerts", "ack", str(unsafe), "--reason", "x", "--store", store_url]).exit_code == 1
    listed = json.loads(cli.invoke(app, ["alerts", "list", "--status", "acknowledged", "--store", store_url,
                                         "--json"]).output)
    assert [(a["id"], a["acknowledged_by"], a["acknowledged_reason"]) for a in listed] == [
        (unsafe, "dr.a", "checking with the vendor")]
    # a rerun does not raise an alert someone is already handling
    run(FakeEvaluator(), "fake/v1", weeks=(3,))
    assert (queries.alerts(engine, evaluator_version="fake/v1")["kind"] == "unsafe_share").sum() == 1
    out = cli.invoke(app, ["alerts", "resolve", str(unsafe), "--reason", "vendor fixed the prompt", "--by", "dr.b",
                           "--store", store_url])
    assert out.exit_code == 0 and "resolved by dr.b" in out.output
    bad = cli.invoke(app, ["alerts", "resolve", str(unsafe), "--reason", "again", "--store", store_url])
    assert bad.exit_code == 1 and "already resolved (by dr.b)" in bad.output
    assert cli.invoke(app, ["alerts", "ack", "99999", "--reason", "x", "--store", store_url]).exit_code == 1
    row = queries.alerts(engine, status="resolved")
    assert len(row) == 1 and row["resolved_by"].iloc[0] == "dr.b" and row["acknowledged_by"].iloc[0] == "dr.a"
    assert "no open alerts" not in cli.invoke(app, ["alerts", "list", "--store", store_url]).output
    engine.dispose()


def test_first_time_monitors_racing_on_an_empty_postgres_database_make_the_schema_once(postgres_db):
    from dermeval.store.db import current_revision

    errors: list[str] = []

    def first_open():
        try:
            open_store(postgres_db).dispose()
        except Exception as exc:  # without the schema lock: DuplicateTable, alembic's own KeyError
            errors.append(repr(exc)[:200])

    threads = [threading.Thread(target=first_open) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = open_store(postgres_db)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_two_monitors_on_one_batch_report_only_what_each_stored(store_url, tiny_world, tmp_path):
    from dermeval.monitor.run import monitor_batch

    write, _ = _weeks(tiny_world, tmp_path)
    batch = write(1, False)
    n = len(batch.read_text().splitlines())
    engine = open_store(store_url)
    open_store(store_url).dispose()  # the schema exists before the race on rows
    results, barrier = [], threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(monitor_batch(batch, FakeEvaluator(), "fake/v1", engine, P, image_root=tmp_path,
                                     progress=False))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and _count(engine) == n
    assert sum(r.scored_now for r in results) == n  # not n each: a row the other stored first is not counted
    engine.dispose()
