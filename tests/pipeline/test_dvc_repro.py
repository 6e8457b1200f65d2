"""`dvc repro` on a tiny world in a temporary git repository; the second run does nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_dvc_repro_twice(tmp_path: Path):
    work = tmp_path / "proj"
    work.mkdir()
    for name in ("dvc.yaml", "pipelines", "dermeval"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, work / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"].update(cases=46, weeks=2, batch_cases=3)
    params["train"].update(epochs=4)
    params["evaluate"].update(n_boot=20)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
        assert _run(cmd, work).returncode == 0
    first = _run([dvc, "repro"], work)
    assert first.returncode == 0, first.stderr[-2000:]
    manifest = json.loads((work / "data/prepared/manifest.json").read_text())
    assert manifest["records"] == 46 * 6 and manifest["simulated_ratings"] is True
    assert (work / "models/dermeval/model.safetensors").is_file()
    metrics = json.loads((work / "reports/metrics.json").read_text())
    assert 0 <= metrics["overall_mae"] <= 5 and metrics["n_test"] > 0
    second = _run([dvc, "repro"], work)
    assert second.returncode == 0
    assert "didn't change, skipping" in second.stdout + second.stderr
    assert "Running stage" not in second.stdout + second.stderr
    shown = _run([dvc, "metrics", "show"], work)
    assert shown.returncode == 0 and "overall_mae" in shown.stdout
    plots = _run([dvc, "plots", "show", "--json"], work)
    assert plots.returncode == 0 and "Predicted vs expert" in plots.stdout and "Calibration" in plots.stdout
