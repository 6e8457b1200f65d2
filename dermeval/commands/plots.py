"""``dermeval plots``: the DVC plots as a page that opens offline."""

from __future__ import annotations

from pathlib import Path

import typer

from dermeval.commands.common import err


def plots(
    out: Path = typer.Option(Path("dvc_plots"), "--out", help="Folder for the page (index.html)."),
    cache: Path = typer.Option(Path(".dvc/tmp/plots-js"), "--cache", help="Where Vega is installed with npm, once."),
) -> None:
    """`dvc plots show` as a page that works offline (Vega inlined instead of loaded from a CDN)."""
    from dermeval.plots import PlotsError, render

    try:
        page = render(out, cache)
    except PlotsError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    typer.echo(f"plots: {page} (opens without a network)")


def register(app: typer.Typer) -> None:
    app.command()(plots)
