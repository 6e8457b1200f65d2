"""A real browser: headless Chromium loads every page of the served app and saves a screenshot.

Chromium is driven over its DevTools protocol: once Streamlit's script run has ended, each page
must show its own content and no exception. Screenshots are kept as
test artefacts in ``$DERMEVAL_TEST_ARTIFACTS`` (default ``reports/tmp/screenshots``). Skips
with the reason when Chromium is not installed (`apt-get install chromium`), except under
``CI=true``, where that is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, skip_unless_ci, stop_process, wait_for_http
from tests.dashboard.conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# Every page and a text its rendered DOM must show once it has run.
PAGES = {"overview": "Latest gate decision", "mllm-trustworthiness": "MLLM trustworthiness", "drift": "Drift",
         "registry": "Gate decisions and alias history", "promotion-review": "Promotion review",
         "expert-review": "Sign in to rate narratives",
         "case-explorer": "Case explorer", "evaluator-quality": "Evaluator quality"}


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


# Read in the page itself: an exception element, the state of Streamlit's script run (the app root
# carries it as ``data-test-script-state``: ``initial`` before the first run, ``running``, then
# ``notRunning`` once the run has ended), the visible text.
STATE_JS = """(() => {const app = document.querySelector('[data-testid="stApp"]');
  return {error: !!document.querySelector('[data-testid="stException"]'),
          script: app ? app.getAttribute('data-test-script-state') : 'absent',
          text: document.body ? document.body.innerText : ""};})()"""


class Chromium:
    """Headless Chromium driven over the DevTools protocol: navigate, wait for the script run to end, read."""

    def __init__(self, binary: str, profile: Path) -> None:
        port = free_port()
        self.proc = subprocess.Popen([binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                                      f"--remote-debugging-port={port}", "--remote-allow-origins=*",
                                      f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        if not wait_for_http(f"http://127.0.0.1:{port}/json/version", self.proc):
            stop_process(self.proc)
            pytest.fail("chromium's DevTools endpoint did not come up")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            self.ws_url = next(t["webSocketDebuggerUrl"] for t in json.loads(resp.read()) if t["type"] == "page")
        self._id = 0

    def close(self) -> None:
        stop_process(self.proc)

    async def _call(self, ws, method: str, params: dict | None = None) -> dict:
        self._id += 1
        await ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        while True:  # events arrive in between; the answer carries our id
            msg = json.loads(await ws.recv())
            if msg.get("id") == self._id:
                return msg

    async def _state(self, url: str, expected: str, seconds: float, shot: Path | None) -> str:
        import websockets

        async with websockets.connect(self.ws_url, max_size=None) as ws:
            await self._call(ws, "Page.navigate", {"url": url})
            deadline, last = time.monotonic() + seconds, "blank"
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                answer = await self._call(ws, "Runtime.evaluate", {"expression": STATE_JS, "returnByValue": True})
                page = answer.get("result", {}).get("result", {}).get("value") or {}
                if page.get("error"):
                    last = "error: the page shows an exception"
                    break
                if page.get("script") != "notRunning":  # the run has not ended: content may still come
                    last = f"script run {page.get('script')}"
                    continue
                if expected not in page.get("text", ""):
                    last = "blank"
                    continue
                last = "ok"
                break
            if shot is not None:  # an artefact for the reader; the state above is the assertion
                png = await self._call(ws, "Page.captureScreenshot", {"format": "png"})
                shot.write_bytes(base64.b64decode(png["result"]["data"]))
            return last

    def page_state(self, url: str, expected: str, seconds: float = 90, shot: Path | None = None) -> str:
        """``ok`` once the script run has ended showing ``expected`` and no exception; ``error: ...`` when it
        shows an exception; else what it still showed after ``seconds`` (a loaded 2-core machine is slow)."""
        return asyncio.run(self._state(url, expected, seconds, shot))


def test_chromium_renders_every_page(populated_project, tmp_path):
    binary = _chromium()
    out = Path(os.environ.get("DERMEVAL_TEST_ARTIFACTS", REPO / "reports" / "tmp" / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    server, base = _serve(REPO / "dashboards/app.py", populated_project)
    browser = Chromium(binary, tmp_path / "profile")
    try:
        for slug, expected in PAGES.items():
            state = browser.page_state(f"{base}/?page={slug}", expected, shot=out / f"{slug}.png")
            assert state == "ok", f"{slug}: {state}"
    finally:
        browser.close()
        stop_process(server)


def test_the_browser_check_fails_on_an_error_page(tmp_path):
    """The check above must be able to fail: a page that raises is reported as an error, not as rendered."""
    binary = _chromium()
    app = tmp_path / "broken.py"
    app.write_text("import streamlit as st\nst.header('Latest gate decision')\nraise RuntimeError('page broke')\n")
    server, base = _serve(app, tmp_path)
    browser = Chromium(binary, tmp_path / "profile")
    try:
        assert browser.page_state(base, "Latest gate decision", seconds=60) == "error: the page shows an exception"
    finally:
        browser.close()
        stop_process(server)
