"""REST: ``mlflow models serve`` on the champion answers a real request on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from dermeval.schema import DIMENSIONS
from tests.conftest import free_port, one_torch_thread, stop_process, wait_for_http

pytestmark = pytest.mark.slow


def test_mlflow_models_serve_answers_an_invocation(champion, tmp_path):
    root = champion["root"]
    rows = champion["rows"][:3]
    port = free_port()
    # mlflow execs uvicorn from PATH: the one next to this interpreter
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    # The server's own configuration names the one folder it reads image paths from.
    # One torch thread in the server and in the local reference below: the encoders' sums then run in
    # the same order and the two engines agree to 1e-5 (on two threads against one they need not).
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion["tracking_uri"], "PATH": path,
           "DERMEVAL_IMAGE_ROOT": str(root), "DERMEVAL_TORCH_THREADS": "1"}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", champion["model_uri"],
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for_http(f"http://127.0.0.1:{port}/ping", proc, seconds=120), (tmp_path / "serve.log").read_text()
        records = [{"id": r["id"], "diagnostic_text": r["diagnostic_text"],
                    "image_b64": base64.b64encode((root / r["image"]).read_bytes()).decode()} for r in rows[:2]]
        records.append({"id": "by-path", "diagnostic_text": rows[2]["diagnostic_text"], "image": rows[2]["image"]})
        records.append({"id": "bad", "diagnostic_text": "Plaques.", "image_b64": "not base64!"})
        body = json.dumps({"dataframe_records": records, "params": {"image_root": str(root)}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
            predictions = json.loads(response.read())["predictions"]
        # A client cannot widen what the server reads: another root, or a path out of the configured one.
        (tmp_path / "secret.png").write_bytes((root / rows[2]["image"]).read_bytes())
        probes = [{"id": "escape", "diagnostic_text": "Plaques.", "image": str(tmp_path / "secret.png")},
                  {"id": "up", "diagnostic_text": "Plaques.", "image": "../secret.png"}]
        refused = []
        for params in ({"image_root": str(root)}, {"image_root": "/"}, {}):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", headers={"Content-Type": "application/json"},
                data=json.dumps({"dataframe_records": probes, "params": params}).encode())
            with urllib.request.urlopen(request, timeout=120) as response:
                refused += json.loads(response.read())["predictions"]
    finally:
        stop_process(proc, 30)
        log.close()
    with one_torch_thread():
        want = champion["evaluator"].score_batch([{"id": r["id"], "image": r["image"],
                                                   "diagnostic_text": r["diagnostic_text"]} for r in rows],
                                                  root, progress=False, decimals=None)
    assert [p["id"] for p in predictions] == [rows[0]["id"], rows[1]["id"], "by-path", "bad"]
    for p, w in zip(predictions, want, strict=False):
        assert p.get("error") is None
        assert [p[d] for d in DIMENSIONS] == pytest.approx([w["scores"][d] for d in DIMENSIONS], abs=1e-5)
        assert p["overall"] == pytest.approx(w["overall"], abs=1e-5)
        assert p["critique"].splitlines()[-1].startswith("Overall Score:")
    assert "not valid base64" in predictions[3]["error"]
    assert len(refused) == 6 and all(p["error"] and p.get("overall") is None for p in refused), refused
    assert "outside the folder this server reads images from" in refused[2]["error"]  # image_root "/" asked for


def test_the_logged_model_carries_its_code_and_pinned_installable_requirements(champion, tmp_path):
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=champion["model_uri"],
                                                     tracking_uri=champion["tracking_uri"], dst_path=str(tmp_path)))
    reqs = [line for line in (local / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert reqs and all("==" in r for r in reqs), reqs  # pinned
    assert not any(r.startswith("dermeval-ops") for r in reqs)  # the project's code travels with the model
    assert (local / "code" / "dermeval" / "serving" / "pyfunc_model.py").is_file()
    # every requirement exists in the package index this machine installs from
    dry = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet",
                          "-r", str(local / "requirements.txt")], capture_output=True, text=True, timeout=600)
    assert dry.returncode == 0, dry.stderr[-2000:]
