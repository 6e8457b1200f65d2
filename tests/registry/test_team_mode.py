"""Team mode for real: `mlflow server` on 127.0.0.1 with PostgreSQL and a local artifact store.

Registration, gate, manual promotion and rollback go through the HTTP server; the model is
then loaded back from ``models:/dermeval@champion`` and scores a narrative.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dermeval.evaluation import evaluation_report, headline
from dermeval.schema import DIMENSIONS
from tests.conftest import free_port, stop_process, wait_for_http

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def mlflow_server(postgres_db, tmp_path):
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", postgres_db,
         "--artifacts-destination", (tmp_path / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_http(url + "/health", proc):
            pytest.fail("mlflow server did not come up: " + (tmp_path / "server.log").read_text()[-2000:])
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
        yield {"url": url, "db": postgres_db}
    finally:
        stop_process(proc)


def _project(tmp: Path, trained: dict) -> Path:
    """A project folder holding what the train, judge and evaluate stages would have written."""
    proj = tmp / "proj"
    shutil.copytree(trained["model_dir"], proj / "models/dermeval")
    ids = [trained["fs"].ids[i] for i in trained["idx"]["test"]]
    rows = {r["id"]: r for r in trained["rows"]}
    test_rows = [rows[i] for i in ids]
    pred = trained["evaluator"].predict(trained["fs"], list(trained["idx"]["test"]))
    predicted = {d: pred["scores"][:, j] for j, d in enumerate(DIMENSIONS)}
    train_rows = [r for r in trained["rows"] if trained["splits"][r["id"]] == "train"]
    report = evaluation_report(test_rows, predicted, train_rows, n_boot=50)
    (proj / "reports/eval").mkdir(parents=True)
    (proj / "reports/eval/agreement.json").write_text(json.dumps(report))
    (proj / "reports/metrics.json").write_text(json.dumps(headline(report)))
    (proj / "reports/train").mkdir()
    with (proj / "reports/train/history.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["step", "member", "epoch", "train_loss", "val_mae"])
        w.writeheader()
        w.writerows(trained["history"])
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["gate"].update(overall_max=1.0, slice_max=2.0, dimension_max=dict.fromkeys(DIMENSIONS, 2.0))
    # This project has no generalisation report: its bounds are switched off (null), not failed.
    params["gate"]["generalisation"] = dict.fromkeys(params["gate"]["generalisation"], None)
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    return proj


def _run(args: list[str], proj: Path, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=proj, env=env, capture_output=True, text=True, timeout=600)


def test_register_gate_rollback_through_mlflow_server_on_postgres(trained, mlflow_server, tmp_path):
    import psycopg2

    url = mlflow_server["url"]
    proj = _project(tmp_path, trained)
    stage = ["-m", "pipelines.register", "--params", "params.yaml", "--model", "models/dermeval",
             "--reports", "reports", "--out", "reports/gate"]
    first = _run(stage, proj, url)
    assert first.returncode == 0, first.stderr[-3000:]
    gate = json.loads((proj / "reports/gate/gate.json").read_text())
    assert gate["decision"]["passed"] and gate["champion_after"] == "1" and gate["tracking_uri"] == url

    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["gate"]["overall_max"] = 0.0
    (proj / "params.yaml").write_text(yaml.safe_dump(params))
    second = _run(stage, proj, url)
    assert second.returncode == 0 and "NOT promoted" in second.stderr
    gate = json.loads((proj / "reports/gate/gate.json").read_text())
    assert gate["version"] == "2" and gate["champion_after"] == "1"

    cli = ["-m", "dermeval", "registry"]
    promote = _run([*cli, "promote", "2", "--reason", "reviewed by hand", "--by", "dr.b", "--json"], proj, url)
    assert promote.returncode == 0, promote.stderr
    rollback = _run([*cli, "rollback", "--reason", "back to v1", "--json"], proj, url)
    assert json.loads(rollback.stdout) == {"champion": "1", "rolled_back": "2"}
    status = json.loads(_run([*cli, "status", "--json"], proj, url).stdout)
    assert status["champion"] == "1" and [v["gate"] for v in status["versions"]] == ["passed", "failed"]

    # It is all in PostgreSQL.
    with psycopg2.connect(mlflow_server["db"].replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM model_versions WHERE name = 'dermeval' ORDER BY version")
        assert [r[0] for r in cur.fetchall()] == [1, 2]
        cur.execute("SELECT alias, version FROM registered_model_aliases WHERE name = 'dermeval' ORDER BY alias")
        assert cur.fetchall() == [("challenger", 2), ("champion", 1)]
        cur.execute("SELECT count(*) FROM metrics WHERE key = 'overall_mae'")
        assert cur.fetchone()[0] == 2

    # The champion loads back through the server (artifacts proxied) and scores.
    load = _run(["-c", (
        "import json, dermeval; ev = dermeval.load_evaluator('models:/dermeval@champion'); "
        f"r = ev.score_batch([{{'id': 'x', 'image': {str(trained['root'] / trained['rows'][0]['image'])!r}, "
        f"'diagnostic_text': {trained['rows'][0]['diagnostic_text'][:400]!r}}}], image_root=None, progress=False); "
        "print(json.dumps(r[0]['scores']))")], proj, url)
    assert load.returncode == 0, load.stderr[-3000:]
    scores = json.loads(load.stdout.strip().splitlines()[-1])
    assert set(scores) == set(DIMENSIONS) and all(0 <= v <= 5 for v in scores.values())
