"""``dermeval synth`` and ``dermeval validate``: make a dataset, check one."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dermeval.commands.common import err


def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the world into (created if missing)."),
    cases: int = typer.Option(1000, "--cases", min=1, help="Number of training/evaluation cases."),
    seed: int = typer.Option(7, "--seed", help="Seed; the same seed gives byte-identical output."),
    weeks: int = typer.Option(8, "--weeks", min=1, help="Number of weekly production batches."),
    batch_cases: int = typer.Option(40, "--batch-cases", min=1, help="New cases per weekly batch."),
    dermbench: Path | None = typer.Option(
        None, "--dermbench", help="Build the real-text dataset from this DermBench release instead."),
    dermnet_root: Path | None = typer.Option(
        None, "--dermnet-root", help="DermNet test-image root (with --dermbench); else stand-in images."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="With --dermbench: only the first N cases."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Generate the DermSynth world (simulated data) or a DermBench-derived dataset."""
    if dermbench is not None:
        from dermeval.synth.realtext import build_dermbench_dataset

        try:
            manifest = build_dermbench_dataset(dermbench, out, seed=seed, dermnet_root=dermnet_root, limit=limit,
                                               progress=not quiet)
        except FileNotFoundError as exc:
            err(f"error: {exc}")
            raise typer.Exit(2) from None
    else:
        from dermeval.synth.world import WorldConfig, generate_world

        manifest = generate_world(out, WorldConfig(cases=cases, seed=seed, weeks=weeks, batch_cases=batch_cases),
                                  progress=not quiet)
    counts = ", ".join(f"{k}={v}" for k, v in manifest["counts"].items())
    err(f"wrote {manifest['kind']} to {out} ({counts}); ratings are simulated")


def validate(
    path: Path = typer.Argument(..., help="A dataset file (JSONL) or folder (DermBench release, DermSynth world)."),
    dermnet_root: Path | None = typer.Option(None, "--dermnet-root", help="Also check DermNet images under this root."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    max_errors: int = typer.Option(200, "--max-errors", help="Print at most this many problems per source."),
    image_root: Path | None = typer.Option(None, "--image-root", help="Folder the records' image paths are relative "
                                           "to (default: the file's folder, or the folder validated)."),
) -> None:
    """Check a dataset without running anything else; exit 1 if any problem is found."""
    from dermeval.validate import validate_path

    reports = validate_path(path, dermnet_root, image_root)
    problems = sum(len(r.errors) for r in reports)
    if as_json:
        typer.echo(json.dumps({"ok": problems == 0, "sources": [r.to_dict() for r in reports]}, indent=2))
    else:
        for r in reports:
            facts = "".join(f", {k.replace('_', ' ')}: {v}" for k, v in r.facts.items())
            typer.echo(f"{r.path} [{r.kind}]: {r.rows_in} rows, {r.loaded} loaded, "
                       f"{r.to_dict()['rejected']} rejected{facts}")
            for e in r.errors[:max_errors]:
                typer.echo(f"  {e}")
            if len(r.errors) > max_errors:
                typer.echo(f"  ... and {len(r.errors) - max_errors} more")
        typer.echo(f"{'OK' if problems == 0 else 'FAILED'}: {len(reports)} source(s), {problems} problem(s)")
    raise typer.Exit(1 if problems else 0)


def register(app: typer.Typer) -> None:
    app.command()(synth)
    app.command()(validate)
