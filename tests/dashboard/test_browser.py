"""A real browser: headless Chromium loads every page of the served app and saves a screenshot.

Each page's rendered DOM must show its own content and no exception; screenshots are kept as
test artefacts in ``$DERMEVAL_TEST_ARTIFACTS`` (default ``reports/tmp/screenshots``). Skips
with the reason when Chromium is not installed (`apt-get install chromium`), except under
``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import free_port, skip_unless_ci, stop_process, wait_for_http
from tests.dashboard.conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# Every page and a text its rendered DOM must show once it has run.
PAGES = {"overview": "Latest gate decision", "mllm-trustworthiness": "MLLM trustworthiness", "drift": "Drift",
         "registry": "Gate decisions and alias history", "promotion-review": "Promotion review",
         "case-explorer": "Case explorer", "evaluator-quality": "Evaluator quality"}
ERROR_MARKS = ('data-testid="stException"', "Traceback (most recent call last)")


def _chromium() -> str:
    found = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        skip_unless_ci("no Chromium on this machine (apt-get install chromium)")
    return found


def _serve(app: Path, project: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DERMEVAL_PROJECT": str(project), "PYTHONPATH": str(REPO)}
    env.pop("DERMEVAL_STORE_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app),
                               "--server.port", str(port), "--server.address", "127.0.0.1",
                               "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    if not wait_for_http(base + "/_stcore/health", server):
        stop_process(server)
        pytest.fail("streamlit did not start")
    return server, base


def _dom(browser: str, url: str, profile: Path) -> str:
    """The page's DOM once its scripts have run (what a reader sees, as HTML)."""
    done = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           "--window-size=1400,1000", "--virtual-time-budget=30000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    return done.stdout


def page_state(browser: str, url: str, expected: str, profile: Path, looks: int = 10) -> str:
    """``ok`` when the page shows ``expected`` and no error, ``error: ...`` when it shows an exception,
    ``blank`` when after ``looks`` tries it still shows neither (a page still running shows a blank body;
    on a loaded 2-core machine the Overview, which reads the MLflow registry, once needed six looks)."""
    for _ in range(looks):
        dom = _dom(browser, url, profile)
        mark = next((m for m in ERROR_MARKS if m in dom), None)
        if mark:
            return f"error: the page shows an exception ({mark})"
        if expected in dom:
            return "ok"
        time.sleep(2)
    return "blank"


def test_chromium_renders_every_page(populated_project, tmp_path):
    browser = _chromium()
    out = Path(os.environ.get("DERMEVAL_TEST_ARTIFACTS", REPO / "reports" / "tmp" / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    server, base = _serve(REPO / "dashboards/app.py", populated_project)
    try:
        for slug in PAGES:  # the first sessions pay for the imports and fill the caches
            _dom(browser, f"{base}/?page={slug}", tmp_path / "profile")
        for slug, expected in PAGES.items():
            state = page_state(browser, f"{base}/?page={slug}", expected, tmp_path / "profile")
            assert state == "ok", f"{slug}: {state}"
            shot = out / f"{slug}.png"
            subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000",
                            "--virtual-time-budget=30000", f"--screenshot={shot}", f"{base}/?page={slug}"],
                           capture_output=True, timeout=120)
            with Image.open(shot) as im:  # kept as an artefact; a rendered page is not one flat colour
                assert len(set(im.convert("RGB").resize((200, 140)).getdata())) > 50, slug
    finally:
        stop_process(server)


def test_the_browser_check_fails_on_an_error_page(tmp_path):
    """The check above must be able to fail: a page that raises is reported as an error, not as rendered."""
    browser = _chromium()
    app = tmp_path / "broken.py"
    app.write_text("import streamlit as st\nst.header('Latest gate decision')\nraise RuntimeError('page broke')\n")
    server, base = _serve(app, tmp_path)
    try:
        state = page_state(browser, base, "Latest gate decision", tmp_path / "profile", looks=3)
        assert state.startswith("error: the page shows an exception"), state
    finally:
        stop_process(server)
