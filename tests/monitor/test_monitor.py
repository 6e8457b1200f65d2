"""`dermeval monitor` with a real evaluator: the world's planned shifts, kill -9, an unregistered evaluator."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dermeval.cli import app
from dermeval.monitor.run import monitor_batch
from dermeval.params import MonitorParams
from dermeval.store import queries
from dermeval.store.db import open_store
from dermeval.synth.world import WorldConfig, generate_world

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_planned_shifts_are_found_in_the_week_they_start_and_stable_weeks_stay_quiet(trained, tmp_path):
    world = tmp_path / "world"
    generate_world(world, WorldConfig(cases=1, seed=21, weeks=8, batch_cases=40), progress=False)
    shifts = {s["name"]: s for s in json.loads((world / "shifts.json").read_text())}
    p = MonitorParams()
    engine = open_store(f"sqlite:///{tmp_path}/store.db")
    alerts = {}
    for week in range(1, 9):
        res = monitor_batch(world / f"batches/week_{week:02d}.jsonl", trained["evaluator"], "dermeval/test",
                            engine, p, image_root=world, progress=False)
        alerts[week] = res.alerts
    safety, skin = shifts["safety_degradation"], shifts["darker_skin_mix"]
    first_shift = min(safety["start_week"], skin["start_week"])

    def truth_mean(weeks, model, dim):  # the simulated panel's consensus, from the world's truth files
        rows = [json.loads(x) for w in weeks for x in (world / f"batches/week_{w:02d}.truth.jsonl").open()]
        vals = [r["scores"][dim] if dim != "overall" else sum(r["scores"].values()) / 6 for r in rows
                if r["model"] == model]
        return sum(vals) / len(vals)

    reference = range(1, p.reference_weeks + 1)
    for week in range(p.reference_weeks + 1, first_shift):
        # Stable weeks: no drift of the case mix, and no alert about an MLLM unless the recorded truth
        # shows that MLLM really fell on that dimension in that week (chance does move a 40-case week).
        for a in alerts[week]:
            assert a["model"] is not None, (week, a["message"])
            drop = truth_mean(reference, a["model"], a["feature"]) - truth_mean([week], a["model"], a["feature"])
            assert drop >= 0.75 * p.trust_drop, (week, a["message"], drop)

    def about_safety(a):
        return a["model"] == safety["model"] and a["feature"] in safety["dimensions"]

    assert any(about_safety(a) for a in alerts[safety["start_week"]])
    assert not any(a["feature"] == "skin_lightness" for a in alerts[safety["start_week"]])
    assert any(a["feature"] == "skin_lightness" for a in alerts[skin["start_week"]])
    trust = queries.trust_over_time(engine, "dermeval/test", "safety", [safety["model"]])
    before = trust[trust["week"] < safety["start_week"]]["mean"].mean()
    after = trust[trust["week"] >= safety["start_week"]]["mean"].mean()
    assert after < before - 0.3
    ranks = queries.trust_over_time(engine, "dermeval/test", "overall")
    assert ranks["rank_stability"].between(0, 1).all() and set(ranks["rank"]) <= set(range(1, 7))


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM scores").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_9_midway_then_rerun_leaves_one_row_per_narrative(trained, tiny_world, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["monitor"].update(chunk=4)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    batch = tiny_world / "batches/week_02.jsonl"
    total = len(batch.read_text().splitlines())
    db = tmp_path / "store.db"
    cmd = [sys.executable, "-m", "dermeval", "monitor", "--batch", str(batch), "--image-root", str(tiny_world),
           "--model", str(trained["model_dir"]),
           "--store", f"sqlite:///{db}", "--params", str(tmp_path / "params.yaml"), "--reports",
           str(tmp_path / "reports"), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _count(db) < 8:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(db)
    assert 0 < partial < total
    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{total} stored ({total - partial} scored now, {partial} already)" in rerun.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT narrative_id, count(*) FROM scores GROUP BY narrative_id").fetchall()
    assert len(rows) == total and all(n == 1 for _, n in rows)


def test_an_unregistered_evaluator_is_refused_before_anything_is_written(tmp_path, tiny_world, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    db = tmp_path / "store.db"
    result = CliRunner().invoke(app, ["monitor", "--batch", str(tiny_world / "batches/week_01.jsonl"),
                                      "--model", "models:/dermeval/99", "--store", f"sqlite:///{db}",
                                      "--params", str(REPO / "params.yaml"), "--reports", str(tmp_path / "r")])
    assert result.exit_code == 2 and "models:/dermeval/99 is not registered" in result.output
    assert not db.exists() and not (tmp_path / "r").exists()
