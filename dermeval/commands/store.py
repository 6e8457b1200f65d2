"""``dermeval store``: the scored-narrative store's schema status and upgrades."""

from __future__ import annotations

import json

import typer

from dermeval.commands.common import err

store_app = typer.Typer(help="The scored-narrative store: schema status and upgrades.", no_args_is_help=True)
STORE_HELP = "Store URL (default: $DERMEVAL_STORE_URL, else sqlite:///data/store/dermeval.db)."


@store_app.command("upgrade")
def store_upgrade(url: str | None = typer.Option(None, "--url", help=STORE_HELP)) -> None:
    """Create the store or migrate it to the newest schema (Alembic)."""
    from dermeval.store.db import StoreError, masked, store_url, upgrade

    try:
        revision = upgrade(url)
    except (StoreError, Exception) as exc:  # a driver error names the database problem
        err(f"error: cannot upgrade the store at {masked(store_url(url))}: {exc}")
        raise typer.Exit(2) from None
    typer.echo(f"store at {masked(store_url(url))}: schema revision {revision}")


@store_app.command("status")
def store_status(url: str | None = typer.Option(None, "--url", help=STORE_HELP),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Schema revision and row counts."""
    from dermeval.store.db import StoreError, current_revision, head_revision, make_engine, masked, store_url
    from dermeval.store.queries import table_counts

    u = store_url(url)
    try:
        engine = make_engine(u)
        out = {"url": masked(u), "revision": current_revision(engine), "head": head_revision()}
        out["counts"] = table_counts(engine) if out["revision"] == out["head"] else {}
    except (StoreError, Exception) as exc:
        err(f"error: cannot read the store at {masked(u)}: {exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        state = "current" if out["revision"] == out["head"] else "OUTDATED: run `dermeval store upgrade`"
        typer.echo(f"{out['url']}: revision {out['revision']} ({state})")
        for k, v in out["counts"].items():
            typer.echo(f"  {k}: {v}")


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
