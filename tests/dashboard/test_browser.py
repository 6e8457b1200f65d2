"""A real browser: headless Chromium loads every page of the served app and saves a screenshot.

Screenshots are kept as test artefacts in ``$DERMEVAL_TEST_ARTIFACTS`` (default
``reports/tmp/screenshots``). Skips with the reason when Chromium is not installed
(`apt-get install chromium`).
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

from tests.conftest import free_port, stop_process, wait_for_http
from tests.dashboard.conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SLUGS = ["overview", "mllm-trustworthiness", "drift", "registry", "case-explorer", "evaluator-quality"]


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def test_chromium_renders_every_page(populated_project, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    out = Path(os.environ.get("DERMEVAL_TEST_ARTIFACTS", REPO / "reports" / "tmp" / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "DERMEVAL_PROJECT": str(populated_project), "PYTHONPATH": str(REPO)}
    env.pop("DERMEVAL_STORE_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "dashboards/app.py"),
                               "--server.port", str(port), "--server.address", "127.0.0.1",
                               "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        if not wait_for_http(base + "/_stcore/health", server):
            pytest.fail("streamlit did not start")
        def shoot(slug: str, shot: Path) -> int:
            shot.unlink(missing_ok=True)
            subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000",
                            "--virtual-time-budget=30000", f"--screenshot={shot}", f"{base}/?page={slug}"],
                           capture_output=True, timeout=120)
            if not shot.is_file():
                return 0
            with Image.open(shot) as im:
                return len(set(im.convert("RGB").resize((200, 140)).getdata()))

        for slug in SLUGS:  # the first sessions pay for the imports and fill the caches
            shoot(slug, tmp_path / "warm-up.png")
        for slug in SLUGS:
            shot = out / f"{slug}.png"
            colours = 0
            # A page still running shows a blank body; give it time and look again (on a loaded 2-core CI
            # machine the Overview, which reads the MLflow registry, once needed more than six looks).
            for _ in range(10):
                colours = shoot(slug, shot)
                if colours > 50:
                    break
                time.sleep(2)
            assert colours > 50, f"{slug}: the page looks blank ({colours} colours)"
    finally:
        stop_process(server)
