"""A registry that cannot be read stops the work with a message naming the URI; it never reads as "no champion"."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from dermeval.cli import app
from dermeval.params import GateParams
from registry.mlflow_registry import CHAMPION, Registry, TrackingUnavailable
from tests.conftest import REPO
from tests.registry.helpers import make_report, new_version


class _Unavailable(BaseHTTPRequestHandler):
    """An MLflow server that is up (health 200) but answers every API call with 503."""

    def _answer(self) -> None:
        ok = self.path.rstrip("/") == "/health"
        body = b"OK" if ok else b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "overloaded"}'
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "text/plain" if ok else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failing_server(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_alias_read_error_is_not_no_champion(failing_server, tmp_path):
    reg = Registry(failing_server, "dermeval", tmp_path / "audit.jsonl")
    with pytest.raises(TrackingUnavailable, match="cannot read alias 'champion'.*127.0.0.1"):
        reg.version_of(CHAMPION)
    with pytest.raises(TrackingUnavailable):
        reg.status()


def test_gate_refuses_to_promote_when_the_champion_cannot_be_read(tmp_path, monkeypatch):
    reg = Registry(f"sqlite:///{tmp_path}/mlflow.db", "dermeval", tmp_path / "audit.jsonl")
    good = make_report(overall=0.10)
    v1 = new_version(reg, tmp_path, good)
    assert reg.gate_and_promote(v1, good, GateParams(), by="pipeline")[0].passed
    bad = make_report(overall=0.19)
    v2 = new_version(reg, tmp_path, bad)

    def broken(*args, **kwargs):
        raise MlflowException("HTTP 503: service unavailable", error_code="TEMPORARILY_UNAVAILABLE")

    monkeypatch.setattr(reg.client, "get_model_version_by_alias", broken)
    with pytest.raises(TrackingUnavailable):
        reg.gate_and_promote(v2, bad, GateParams(), by="pipeline")
    monkeypatch.undo()
    assert str(reg.version_of(CHAMPION).version) == v1  # v1 stays champion; nothing was moved
    assert [e["event"] for e in reg.history()].count("promote") == 1


def test_registry_status_exits_non_zero_when_it_cannot_read(failing_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", failing_server)
    params = tmp_path / "params.yaml"
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["register"]["audit_log"] = f"{tmp_path}/audit.jsonl"
    params.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["registry", "status", "--params", str(params)])
    assert result.exit_code == 2, result.output
    assert "cannot read" in result.output and "127.0.0.1" in result.output
    assert "champion none" not in result.output and "Traceback" not in result.output
