"""Every dashboard page renders on an empty project and on a populated one, showing the store's numbers."""

from __future__ import annotations

import html
import json

import pytest

from dermeval.store import queries
from dermeval.store.db import open_store
from tests.dashboard.conftest import frames, page_run, texts

PAGES = ["Overview", "MLLM trustworthiness", "Drift", "Registry", "Promotion review", "Case explorer", "Expert review",
         "Evaluator quality"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_project(page, tmp_path, monkeypatch):
    at = page_run(monkeypatch, tmp_path, page)
    assert not at.exception, at.exception
    shown = texts(at)
    assert "run `" in shown or "run `dvc repro`" in shown, shown  # the empty state says what to run


def test_overview_and_registry_show_the_champion_and_alerts(populated_project, monkeypatch):
    at = page_run(monkeypatch, populated_project, "Overview")
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Champion"] == "v1"
    gate = json.loads((populated_project / "reports/gate/gate.json").read_text())
    after = f"champion after: v{gate['champion_after']}" if gate["champion_after"] else "champion after: none"
    assert after in texts(at) and "vNone" not in texts(at)
    # the figures are the champion's own (its MLflow run), not whatever the last pipeline trained
    assert "per dimension (champion v1)" in texts(at)
    assert metrics["In-distribution deviation (MAE)"] == "0.140"
    engine = open_store(f"sqlite:///{populated_project}/data/store/dermeval.db")
    assert metrics["Open alerts"] == str(len(queries.open_alerts(engine)))
    at = page_run(monkeypatch, populated_project, "Registry")
    assert not at.exception and "champion **v1**" in texts(at)
    history = frames(at)[1]
    assert list(history["event"])[::-1] == ["register", "gate", "promote"]


def test_trust_drift_and_cases_show_the_stored_numbers(populated_project, monkeypatch):
    engine = open_store(f"sqlite:///{populated_project}/data/store/dermeval.db")
    at = page_run(monkeypatch, populated_project, "MLLM trustworthiness")
    assert not at.exception, at.exception
    ranking = frames(at)[0]
    trust = queries.trust_over_time(engine, "fake/v1", "safety")
    latest = trust[trust["week"] == trust["week"].max()]
    assert sorted(ranking["model"]) == sorted(latest["model"])
    shown = dict(zip(ranking["model"], ranking["mean"], strict=True))
    assert shown == dict(zip(latest["model"], latest["mean"], strict=True))
    at = page_run(monkeypatch, populated_project, "Drift")
    assert not at.exception, at.exception
    assert list(frames(at)[0]["batch_id"]) == list(queries.drift_by_batch(engine)["batch_id"])
    at = page_run(monkeypatch, populated_project, "Case explorer")
    assert not at.exception, at.exception
    queue = queries.review_queue(engine, "fake/v1", None, 200)
    assert list(frames(at)[0]["narrative_id"]) == list(queue["narrative_id"])
    detail = queries.narrative_detail(engine, queue["narrative_id"].iloc[0], "fake/v1")
    assert any(html.escape(detail["text"][:40]) in m.value for m in at.markdown)
    assert "expert (simulated panel)" in frames(at)[1].columns  # the world's truth file is next to the batch
    at = page_run(monkeypatch, populated_project, "Evaluator quality")
    assert not at.exception, at.exception
    gen = json.loads((populated_project / "reports/generalisation/report.json").read_text())
    sets, stress = frames(at)[:2]
    assert sets["set"].iloc[0] == "Transfer" or not gen["real_text"]  # figures outside the training data lead
    want = {k: round(v["accuracy"]["value"], 3) for k, v in gen["stress"]["evaluator"].items() if k != "overall"}
    assert dict(zip(stress["variant"], stress["DermEval"], strict=True)) == want


def test_the_promotion_review_shows_the_paired_comparison_and_its_margins(tmp_path, monkeypatch):
    from dermeval.params import GateParams
    from registry.gate import decide
    from tests.registry.helpers import make_report, paired_report

    decision = decide(make_report(), GateParams(), paired_report(worse_by=0.05), "3")
    decision.paired = paired_report(worse_by=0.05)
    gate = {"model": "dermeval", "version": "4", "run_id": "abc", "tracking_uri": "sqlite:///x", "time": "t",
            "decision": decision.to_dict(), "note": None, "simulated": True, "champion_after": "3",
            "experiment": "lr-small", "metrics": {}}
    (tmp_path / "reports" / "gate").mkdir(parents=True)
    (tmp_path / "reports" / "gate" / "gate.json").write_text(json.dumps(gate))
    at = page_run(monkeypatch, tmp_path, "Promotion review")
    assert not at.exception, at.exception
    assert "**v4** against champion **v3**: gate **failed** (experiment `lr-small`" in texts(at)
    paired, slices, others = frames(at)
    overall = paired[paired["figure"] == "overall MAE"].iloc[0]
    assert overall["difference"] == pytest.approx(0.05) and overall["margin"] == 0.02 and overall["result"] == "FAIL"
    assert set(paired["figure"]) >= {"safety MAE", "overall MAE"} and len(paired) >= 7
    assert "Acne" in set(slices["value"])
    assert "overall mae" in set(others["check"]) and "headroom" in others.columns


def test_a_corrupt_report_and_a_password_in_a_url_are_messages_not_tracebacks_or_leaks(tmp_path, monkeypatch):
    import yaml

    from tests.dashboard.conftest import REPO

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["monitor"]["store_url"] = "postgresql+psycopg2://dermeval:s3cret-pw@127.0.0.1:1/store"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "reports" / "gate").mkdir(parents=True)
    (tmp_path / "reports" / "metrics.json").write_text('{"overall_mae": 0.1')  # cut short mid-write
    (tmp_path / "reports" / "gate" / "gate.json").write_text("not json")
    for page in ("Overview", "Drift", "Promotion review"):
        at = page_run(monkeypatch, tmp_path, page)
        assert not at.exception, (page, at.exception)
        shown = texts(at) + " ".join(str(x.value) for x in [*at.info, *at.warning, *at.error])
        assert "s3cret-pw" not in shown, page
    shown = " ".join(str(x.value) for x in page_run(monkeypatch, tmp_path, "Overview").info)
    assert "reports/metrics.json cannot be read" in shown and "dermeval:***@127.0.0.1" in shown


@pytest.mark.slow
def test_the_dashboard_command_stops_its_server_on_sigterm(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.conftest import free_port, wait_for_http

    port = free_port()
    cli = subprocess.Popen([sys.executable, "-m", "dermeval", "dashboard", "--port", str(port), "--project",
                            str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    health = f"http://127.0.0.1:{port}/_stcore/health"
    try:
        assert wait_for_http(health, cli)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(timeout=30) is not None
        for _ in range(30):  # the server goes with it
            try:
                urllib.request.urlopen(health, timeout=1)
            except OSError:
                break
            import time

            time.sleep(0.5)
        else:
            raise AssertionError("the streamlit server outlived `dermeval dashboard`")
    finally:
        if cli.poll() is None:
            os.kill(cli.pid, signal.SIGKILL)
