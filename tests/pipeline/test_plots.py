"""`dvc plots`: every plot draws what its title says, and `dermeval plots` renders offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_unless_ci

REPO = Path(__file__).resolve().parents[2]


def _dvc(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_plot_definitions_draw_every_series():
    shown = _dvc("plots", "show", "--json")
    assert shown.returncode == 0, shown.stderr[-1000:]
    plots = json.loads(shown.stdout)["data"]
    files = {title: {v.get("filename") for v in spec[0]["content"]["data"]["values"]} for title, spec in plots.items()}
    calibration = next(t for t in plots if t.startswith("Calibration"))
    # one curve per dimension and the diagonal, told apart by file
    assert len(files[calibration]) == 7 and any(f and "identity" in f for f in files[calibration])
    judge = next(t for t in plots if t.startswith("Judge vs DermEval"))
    assert {Path(f).name for f in files[judge]} == {"mae_dermeval.csv", "mae_judge.csv"}  # both, not DermEval alone
    spec = plots[judge][0]["content"]
    assert spec["encoding"]["column"]["field"] == "filename"  # a panel each
    for title, values in plots.items():
        assert values[0]["content"]["data"]["values"], f"{title}: no data"


@pytest.mark.slow
def test_the_plots_page_renders_without_a_network(tmp_path):
    if shutil.which("npm") is None:
        skip_unless_ci("npm is needed to fetch Vega for the offline plots page (apt-get install npm)")
    browser = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p), None)
    if browser is None:
        skip_unless_ci("no Chromium on this machine (apt-get install chromium)")
    out = tmp_path / "plots"
    made = subprocess.run([str(Path(sys.executable).parent / "dermeval"), "plots", "--out", str(out), "--cache",
                           str(tmp_path / "js")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    page = (out / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and "<script src=" not in page
    # Every host name resolves to nothing: only what is in the page can draw.
    dom = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                          "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=20000", "--dump-dom", (out / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    n_plots = len(json.loads(_dvc("plots", "show", "--json").stdout)["data"])
    assert dom.count("<canvas") == n_plots, dom[:2000]
