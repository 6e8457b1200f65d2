"""The ``dermeval`` command line. JSONL in, JSONL out; summaries go to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(help="DermEval Ops: train, gate, serve and monitor dermatology narrative evaluators.",
                  no_args_is_help=True, add_completion=False)


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the world into (created if missing)."),
    cases: int = typer.Option(600, "--cases", min=1, help="Number of training/evaluation cases."),
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
            _err(f"error: {exc}")
            raise typer.Exit(2) from None
    else:
        from dermeval.synth.world import WorldConfig, generate_world

        manifest = generate_world(out, WorldConfig(cases=cases, seed=seed, weeks=weeks, batch_cases=batch_cases),
                                  progress=not quiet)
    counts = ", ".join(f"{k}={v}" for k, v in manifest["counts"].items())
    _err(f"wrote {manifest['kind']} to {out} ({counts}); ratings are simulated")


@app.command()
def validate(
    path: Path = typer.Argument(..., help="A dataset file (JSONL) or folder (DermBench release, DermSynth world)."),
    dermnet_root: Path | None = typer.Option(None, "--dermnet-root", help="Also check DermNet images under this root."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    max_errors: int = typer.Option(200, "--max-errors", help="Print at most this many problems per source."),
) -> None:
    """Check a dataset without running anything else; exit 1 if any problem is found."""
    from dermeval.validate import validate_path

    reports = validate_path(path, dermnet_root)
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


DEFAULT_MODEL = "models/dermeval"
MODEL_HELP = "Evaluator folder or MLflow model URI (e.g. models:/dermeval@champion)."


def _load_model(model: str):
    from dermeval.model.evaluator import EvaluatorNotFound, load_evaluator

    try:
        return load_evaluator(model)
    except EvaluatorNotFound as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None


@app.command()
def score(
    image: Path = typer.Option(..., "--image", help="The skin image (PNG or JPEG)."),
    narrative: str = typer.Option(..., "--narrative", help="A text file with the narrative, or - for stdin."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON instead of the critique."),
) -> None:
    """Score one image and narrative: six ratings, overall score, uncertainty and critique."""
    from dermeval.images import ImageError, check_image_file

    evaluator = _load_model(model)
    try:
        check_image_file(image)
        text = sys.stdin.read() if narrative == "-" else Path(narrative).read_text("utf-8")
    except (ImageError, OSError, UnicodeDecodeError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    result = evaluator.score(image, text)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "critique_json"}, indent=2))
    else:
        typer.echo(result["critique"])
        if result["needs_review"]:
            _err("needs_review: the evaluator is unsure about at least one dimension")


@app.command("score-batch")
def score_batch(
    input: Path = typer.Option(..., "--input", help="JSONL of DermEval records (id, image, diagnostic_text)."),
    output: Path = typer.Option(..., "--output", help="JSONL to write: one row per input row, in order."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Folder the image paths are relative to (default: the input's folder)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Score a JSONL batch; rejected rows come back as {"id", "error"}, nothing is dropped."""
    from dermeval.formats.common import RowError, iter_jsonl, write_jsonl

    evaluator = _load_model(model)
    if not input.is_file():
        _err(f"error: input not found: {input}")
        raise typer.Exit(2)
    parsed = list(iter_jsonl(input))
    rows = [obj if not isinstance(obj, RowError) else {"id": None, "error": str(obj)} for _, obj in parsed]
    results = evaluator.score_batch(rows, image_root or input.parent, progress=not quiet, source=str(input),
                                    lines=[n for n, _ in parsed])
    write_jsonl(output, ({k: v for k, v in r.items() if k != "critique_json"} for r in results))
    rejected = sum("error" in r for r in results)
    _err(f"scored {len(results) - rejected}, rejected {rejected} -> {output}")
    if results and rejected == len(results):
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - thin wrapper for `python -m dermeval`
    app(prog_name="dermeval")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
