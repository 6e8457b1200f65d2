"""``dermeval registry``: review the registered evaluator (status, history, promote, rollback).

Mounted on the ``dermeval`` command line through the ``dermeval.commands`` entry point, so the
core package never imports the registry.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import typer

from dermeval.commands.common import JSON_OPT, PARAMS_OPT, err, load

registry_app = typer.Typer(help="Review the registered evaluator: status, history, promote, rollback.",
                           no_args_is_help=True)


def _registry(params: Path):
    from dermeval.portable import relocate_tracking
    from registry.mlflow_registry import Registry, TrackingUnavailable, check_reachable, resolve_tracking_uri

    rp = load(params).register
    uri = resolve_tracking_uri(rp.tracking_uri)
    relocate_tracking(uri, rp.artifact_root)
    try:
        check_reachable(uri)
    except TrackingUnavailable as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    return Registry(uri, rp.model_name, rp.audit_log)




@contextlib.contextmanager
def _fail_closed():
    """A registry that cannot be read is an error (exit 2), never an empty registry."""
    from registry.mlflow_registry import TrackingUnavailable

    try:
        yield
    except TrackingUnavailable as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None


@registry_app.command("status")
def registry_status(params: Path = PARAMS_OPT, as_json: bool = JSON_OPT) -> None:
    """Champion, challenger and every version with its gate decision and deviation."""
    with _fail_closed():
        st = _registry(params).status()
    if as_json:
        typer.echo(json.dumps(st, indent=2))
        return
    typer.echo(f"{st['model']} @ {st['tracking_uri']}: champion "
               f"{'v' + st['champion'] if st['champion'] else 'none'}, challenger "
               f"{'v' + st['challenger'] if st['challenger'] else 'none'}")
    for v in st["versions"]:
        mae = f"{v['overall_mae']:.4f}" if v["overall_mae"] is not None else "n/a"
        typer.echo(f"  v{v['version']:<4} overall_mae={mae:<8} gate={v['gate'] or '-':<7} "
                   f"aliases={','.join(v['aliases']) or '-'}")


@registry_app.command("history")
def registry_history(params: Path = PARAMS_OPT, as_json: bool = JSON_OPT,
                     limit: int = typer.Option(50, "--limit", help="Show the last N events.")) -> None:
    """The audit trail: every gate decision and alias move, oldest first."""
    events = _registry(params).history()[-limit:]
    if as_json:
        typer.echo(json.dumps(events, indent=2))
        return
    for e in events:
        typer.echo(f"{e['time']}  {e['event']:<15} v{e.get('version')}  by {e.get('by')}: {e.get('reason')}")
    if not events:
        typer.echo("no registry events yet (run `dvc repro` to register a first version)")


@registry_app.command("promote")
def registry_promote(version: str = typer.Argument(..., help="The version to make champion."),
                     reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)."),
                     by: str | None = typer.Option(None, "--by", help="Reviewer name (default: your user)."),
                     params: Path = PARAMS_OPT, as_json: bool = JSON_OPT) -> None:
    """Make VERSION the champion (a reviewer's decision; the gate is not re-run)."""
    from registry.mlflow_registry import RegistryError

    try:
        with _fail_closed():
            previous = _registry(params).promote(version, reason, by)
    except RegistryError as exc:
        err(f"error: {exc}")
        raise typer.Exit(1) from None
    out = {"champion": version, "previous_champion": previous}
    typer.echo(json.dumps(out) if as_json else f"champion: v{version} (was {'v' + previous if previous else 'none'})")


@registry_app.command("rollback")
def registry_rollback(reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)."),
                      by: str | None = typer.Option(None, "--by", help="Reviewer name (default: your user)."),
                      params: Path = PARAMS_OPT, as_json: bool = JSON_OPT) -> None:
    """Give the champion alias back to the version that held it before the current one."""
    from registry.mlflow_registry import RegistryError

    try:
        with _fail_closed():
            old, new = _registry(params).rollback(reason, by)
    except RegistryError as exc:
        err(f"error: {exc}")
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"champion": new, "rolled_back": old}) if as_json
               else f"champion: v{new} (rolled back v{old})")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
