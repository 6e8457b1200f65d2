"""Registry against a real MLflow store (SQLite in a temp folder): promote, refuse, rollback, race."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dermeval.cli import app
from dermeval.params import DimensionThresholds, GateParams
from dermeval.schema import DIMENSIONS
from registry.mlflow_registry import CHAMPION, Registry, RegistryError, TrackingUnavailable, check_reachable
from tests.conftest import free_port
from tests.registry.helpers import compare_with, make_report, new_version

P = GateParams()
REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture
def reg(tmp_path):
    return Registry(f"sqlite:///{tmp_path}/mlflow.db", "dermeval", tmp_path / "audit.jsonl")


def champion(reg) -> str | None:
    v = reg.version_of(CHAMPION)
    return str(v.version) if v else None


def test_pass_promotes_impossible_gate_refuses_and_rollback_restores(reg, tmp_path):
    r1 = make_report(overall=0.15)
    v1 = new_version(reg, tmp_path, r1)
    d, note = reg.gate_and_promote(v1, r1, P, seen_champion=None, by="pipeline")
    assert d.passed and note is None and champion(reg) == v1 == "1"
    r2 = make_report(overall=0.13)
    v2 = new_version(reg, tmp_path, r2)
    assert reg.version_of("challenger").version in (2, "2")
    # with a champion, the gate needs the paired comparison: without one it fails closed
    assert not reg.gate_and_promote(v2, r2, P, seen_champion="1")[0].passed and champion(reg) == "1"
    assert reg.gate_and_promote(v2, r2, P, seen_champion="1", compare=compare_with(0.0))[0].passed
    assert champion(reg) == "2"
    # impossible thresholds: champion untouched, reasons recorded on the version and in the log
    impossible = dataclasses.replace(P, overall_max=0.0, dimension_max=DimensionThresholds(*[0.0] * 6))
    r3 = make_report(overall=0.12)
    v3 = new_version(reg, tmp_path, r3)
    d3, _ = reg.gate_and_promote(v3, r3, impossible, seen_champion="2")
    assert not d3.passed and champion(reg) == "2"
    tags = reg.version(v3).tags
    assert tags["gate.decision"] == "failed" and "overall mae = 0.1200, needs <= 0.0000" in tags["gate.reasons"]
    # a regression against the champion is refused too
    r4 = make_report(overall=0.19)
    v4 = new_version(reg, tmp_path, r4)
    d4, _ = reg.gate_and_promote(v4, r4, P, seen_champion="2", compare=compare_with(0.08))
    assert not d4.passed and any(r.startswith("overall vs champion v2") for r in d4.reasons)
    recorded = reg.version(v4).tags["gate.reasons"]
    assert all(f"{k} vs champion v2: error difference" in recorded for k in ("overall", *DIMENSIONS))
    # rollback gives the alias back to v1, then there is nothing earlier
    assert reg.rollback("v2 misbehaves on dark skin", by="dr.reviewer") == ("2", "1")
    assert champion(reg) == "1"
    with pytest.raises(RegistryError, match="no earlier champion"):
        reg.rollback("again")
    events = [(e["event"], e["version"]) for e in reg.history()]
    assert events == [("register", "1"), ("gate", "1"), ("promote", "1"), ("register", "2"), ("gate", "2"),
                      ("gate", "2"), ("promote", "2"), ("register", "3"), ("gate", "3"), ("register", "4"),
                      ("gate", "4"), ("rollback", "1")]
    rb = reg.history()[-1]
    assert rb["by"] == "dr.reviewer" and rb["reason"] == "v2 misbehaves on dark skin" and rb["previous_champion"] == "2"
    with pytest.raises(RegistryError, match="no version 99"):
        reg.promote(99, "typo")


def test_two_pipelines_promoting_at_once_lose_no_update(reg, tmp_path):
    r1 = make_report(overall=0.15)
    v1 = new_version(reg, tmp_path, r1)
    reg.gate_and_promote(v1, r1, P)
    reports = {}
    for overall in (0.14, 0.145):
        r = make_report(overall=overall)
        reports[new_version(reg, tmp_path, r)] = r
    results, barrier = {}, threading.Barrier(2)

    def finish(version):
        other = Registry(reg.tracking_uri, reg.model_name, reg.audit_log)  # a second process's view
        barrier.wait()
        results[version] = other.gate_and_promote(version, reports[version], P, seen_champion="1",
                                                  compare=compare_with(0.0))

    threads = [threading.Thread(target=finish, args=(v,)) for v in reports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    notes = [note for _, note in results.values() if note]
    assert len(notes) == 1 and "champion moved from v1 to v" in notes[0]  # the second one is told
    promotes = [e for e in reg.history() if e["event"] == "promote"]
    assert len(promotes) == 3
    # each promotion saw the champion the one before it made: a chain, no lost update
    assert [p["previous_champion"] for p in promotes[1:]] == [promotes[0]["version"], promotes[1]["version"]]
    assert champion(reg) == promotes[-1]["version"]


def test_unreachable_tracking_server_is_a_clear_error(tmp_path, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingUnavailable, match=f"MLflow tracking server {uri} is unreachable"):
        check_reachable(uri, timeout=2)
    with pytest.raises(TrackingUnavailable, match=r"postgresql://u:\*\*\*@127.0.0.1"):
        check_reachable(f"postgresql://u:secret@127.0.0.1:{free_port()}/x", timeout=2)
    # the register stage stops before anything is written
    from pipelines.register import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert main(["--params", "params.yaml", "--model", "m", "--reports", "r", "--out", "g"]) == 2
    assert not (tmp_path / "g").exists() and not (tmp_path / "data").exists()
    result = CliRunner().invoke(app, ["registry", "status", "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2 and uri in result.output


def test_reviewer_cli(reg, tmp_path, monkeypatch):
    for overall in (0.15, 0.14):
        r = make_report(overall=overall)
        reg.gate_and_promote(new_version(reg, tmp_path, r), r, P, compare=compare_with(0.0))
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    raw["register"].update(tracking_uri=reg.tracking_uri, audit_log=str(reg.audit_log))
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(raw))
    run = CliRunner().invoke
    st = json.loads(run(app, ["registry", "status", "--json", "--params", str(params)]).output)
    assert st["champion"] == "2" and [v["version"] for v in st["versions"]] == ["1", "2"]
    assert st["versions"][1]["aliases"] == ["champion", "challenger"]
    out = run(app, ["registry", "promote", "1", "--reason", "v2 over-scores padding", "--by", "dr.a",
                    "--params", str(params), "--json"])
    assert out.exit_code == 0 and json.loads(out.output) == {"champion": "1", "previous_champion": "2"}
    assert run(app, ["registry", "promote", "1", "--reason", "x", "--params", str(params)]).exit_code == 1
    out = run(app, ["registry", "rollback", "--reason", "false alarm", "--params", str(params), "--json"])
    assert json.loads(out.output) == {"champion": "2", "rolled_back": "1"}
    hist = json.loads(run(app, ["registry", "history", "--json", "--params", str(params)]).output)
    assert [h["event"] for h in hist][-2:] == ["promote_manual", "rollback"] and hist[-2]["by"] == "dr.a"
    text = run(app, ["registry", "history", "--params", str(params)]).output
    assert "promote_manual" in text and "false alarm" in text
    # the MLflow side carries the same story as tags
    tags = reg.version("1").tags
    assert tags["champion.rolled_back_reason"] == "false alarm" and tags["champion.by"] == "dr.a"


def test_a_moved_project_uses_its_own_mlflow_artifacts(tmp_path, monkeypatch):
    import shutil

    import mlflow

    from dermeval.portable import relocate_tracking

    first = tmp_path / "first"
    first.mkdir()
    monkeypatch.chdir(first)
    uri = f"sqlite:///{first}/mlflow.db"  # what the relative default resolves to in each folder
    exp = mlflow.MlflowClient(uri).create_experiment("dermeval", artifact_location=(first / "mlartifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_text("the champion's weights", "model/weights.txt")
    reg = Registry(uri, "dermeval", first / "audit.jsonl")
    reg.register(f"{run.info.artifact_uri}/model", run.info.run_id)
    assert relocate_tracking(uri, "mlartifacts") is None  # in place: nothing to do
    moved = tmp_path / "moved"
    shutil.move(first, moved)  # `mv first moved`: the old folder is gone
    monkeypatch.chdir(moved)
    uri = f"sqlite:///{moved}/mlflow.db"
    assert relocate_tracking("sqlite:///mlflow.db", "mlartifacts") == str(first)
    assert relocate_tracking(uri, "mlartifacts") is None  # once
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment(exp).artifact_location == (moved / "mlartifacts").as_uri()
    mv = client.get_model_version("dermeval", "1")
    assert mv.source.startswith((moved / "mlartifacts").as_uri())
    local = mlflow.artifacts.download_artifacts(artifact_uri="models:/dermeval/1", tracking_uri=uri,
                                                dst_path=str(tmp_path / "dl"))
    assert (Path(local) / "weights.txt").read_text() == "the champion's weights"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=exp) as run2:  # new runs write into the moved folder
        assert run2.info.artifact_uri.startswith((moved / "mlartifacts").as_uri())
    mlflow.set_tracking_uri(None)


def test_registry_uris_resolve_in_the_tracking_server_whatever_registry_the_process_was_given(tmp_path, monkeypatch):
    """A registry URI left in the environment (MLflow's ``set_registry_uri`` exports one) must not redirect
    the monitor's champion lookup or download: the project keeps its registry on the tracking server."""
    import mlflow

    from dermeval.model.evaluator import EvaluatorNotFound, load_evaluator
    from dermeval.monitor.run import evaluator_version

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    reg = Registry(uri, "dermeval", tmp_path / "audit.jsonl")
    version = new_version(reg, tmp_path, make_report())
    reg.promote(version, "first champion", by="test")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{tmp_path}/elsewhere.db")  # an empty registry
    mlflow.set_tracking_uri(uri)
    try:
        assert evaluator_version("models:/dermeval@champion") == f"dermeval/v{version}"
        assert evaluator_version(f"models:/dermeval/{version}") == f"dermeval/v{version}"
        # found and fetched (the test version holds an MLmodel file, not an evaluator)
        with pytest.raises(EvaluatorNotFound, match="holds no DermEval evaluator"):
            load_evaluator("models:/dermeval@champion")
    finally:
        mlflow.set_tracking_uri(None)
