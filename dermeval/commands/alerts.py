"""``dermeval alerts``: list the monitor's alerts and move them on (open -> acknowledged -> resolved).

Every step records who and why, so the store shows who is looking at an alert and how it
was closed. Alerts are kept per evaluator version: a new champion's alerts sit beside the
previous champion's, nothing is deleted.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer

from dermeval.commands.common import STORE_OPT, open_engine

alerts_app = typer.Typer(help="The monitor's alerts: list, acknowledge, resolve.", no_args_is_help=True)

PARAMS_OPT = typer.Option(Path("params.yaml"), "--params", help="params.yaml (section monitor).")
REASON_OPT = typer.Option(..., "--reason", help="Why (kept with the alert).")
BY_OPT = typer.Option(None, "--by", help="Who (default: your user name).")


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return f"user:{getpass.getuser()}"
    except OSError:
        return "user:unknown"


@alerts_app.command("list")
def alerts_list(status: str | None = typer.Option("open", "--status", help="open, acknowledged, resolved or all."),
                evaluator: str | None = typer.Option(None, "--evaluator", help="Only this evaluator version "
                                                     "(e.g. dermeval/v3)."),
                limit: int = typer.Option(100, "--limit"), store: str | None = STORE_OPT,
                params: Path = PARAMS_OPT, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Alerts, newest first."""
    from dermeval.store.models import ALERT_STATUSES
    from dermeval.store.queries import alerts

    if status not in (*ALERT_STATUSES, "all"):
        raise _fail(f"--status must be one of {', '.join(ALERT_STATUSES)} or all, got {status!r}")
    engine = open_engine(store, params)
    try:
        df = alerts(engine, status=None if status == "all" else status, evaluator_version=evaluator, limit=limit)
    finally:
        engine.dispose()
    rows = json.loads(df.to_json(orient="records", date_format="iso")) if len(df) else []
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for a in rows:
        who = a.get("resolved_by") or a.get("acknowledged_by")
        typer.echo(f"#{a['id']:<5} {a['status']:<12} {a['evaluator_version'] or '-':<14} {a['batch_id']:<12} "
                   f"{a['message']}" + (f"  [{who}]" if who else ""))
    if not rows:
        typer.echo(f"no {'' if status == 'all' else status + ' '}alerts")


def _move(alert_id: int, status: str, reason: str, by: str | None, store: str | None, params: Path,
          as_json: bool) -> None:
    from dermeval.store.ingest import AlertError, set_alert_status

    engine = open_engine(store, params)
    try:
        with engine.begin() as conn:
            row = set_alert_status(conn, alert_id, status, _who(by), reason)
    except AlertError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        engine.dispose()
    out = {"id": alert_id, "status": status, "by": row[f"{status}_by"], "message": row["message"]}
    typer.echo(json.dumps(out) if as_json else f"alert #{alert_id} {status} by {out['by']}: {row['message']}")


@alerts_app.command("ack")
def alerts_ack(alert_id: int = typer.Argument(..., help="The alert's id (see `dermeval alerts list`)."),
               reason: str = REASON_OPT, by: str | None = BY_OPT, store: str | None = STORE_OPT,
               params: Path = PARAMS_OPT, as_json: bool = typer.Option(False, "--json")) -> None:
    """Acknowledge an alert: someone is on it."""
    _move(alert_id, "acknowledged", reason, by, store, params, as_json)


@alerts_app.command("resolve")
def alerts_resolve(alert_id: int = typer.Argument(..., help="The alert's id (see `dermeval alerts list`)."),
                   reason: str = REASON_OPT, by: str | None = BY_OPT, store: str | None = STORE_OPT,
                   params: Path = PARAMS_OPT, as_json: bool = typer.Option(False, "--json")) -> None:
    """Resolve an alert: closed, with what was done."""
    _move(alert_id, "resolved", reason, by, store, params, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
