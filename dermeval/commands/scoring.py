"""``dermeval score`` and ``dermeval score-batch``: the evaluator on one narrative or a batch (local or Spark)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from dermeval.commands.common import PARAMS_OPT, data_path, err, load

MODEL_HELP = ("Evaluator folder or MLflow model URI (e.g. models:/dermeval@champion). Default: data.model "
              "of params.yaml (local engine), monitor.model (spark).")


PRECISION_HELP = ("Encoder arithmetic: fp32 (what the evaluator was trained on) or bf16 (about 2x faster "
                  "on CPUs with native bf16; scores move by a few thousandths, see the README).")


def _load_model(model: str, precision: str = "fp32"):
    from dermeval.encoders.runtime import PRECISIONS
    from dermeval.model.evaluator import EvaluatorNotFound, load_evaluator

    if precision not in PRECISIONS:
        err(f"error: --precision must be {' or '.join(PRECISIONS)}, not {precision!r}")
        raise typer.Exit(2)
    try:
        return load_evaluator(model, precision=precision)
    except EvaluatorNotFound as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None


def score(
    image: Path = typer.Option(..., "--image", help="The skin image (PNG or JPEG)."),
    narrative: str = typer.Option(..., "--narrative", help="A text file with the narrative, or - for stdin."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON instead of the critique."),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    params: Path = PARAMS_OPT,
) -> None:
    """Score one image and narrative: six ratings, overall score, uncertainty and critique."""
    from dermeval.images import ImageError, check_image_file

    evaluator = _load_model(data_path(params, "model", model), precision)
    try:
        check_image_file(image)
        text = sys.stdin.read() if narrative == "-" else Path(narrative).read_text("utf-8")
    except (ImageError, OSError, UnicodeDecodeError) as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    result = evaluator.score(image, text)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "critique_json"}, indent=2))
    else:
        typer.echo(result["critique"])
        if result["needs_review"]:
            err("needs_review: the evaluator is unsure about at least one dimension")


def score_batch(
    input: Path = typer.Option(..., "--input", help="DermEval records (id, image, diagnostic_text): JSONL; "
                                                     "with --engine spark also a Parquet table."),
    output: Path = typer.Option(..., "--output", help="JSONL to write: one row per input row, in order "
                                                      "(--engine spark: a path not ending in .jsonl is Parquet)."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Folder the image paths are relative to (default: the input's folder)."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP),
    engine: str = typer.Option("local", "--engine", help="local (this process) or spark (mlflow.pyfunc.spark_udf)."),
    spark_master: str | None = typer.Option(
        None, "--spark-master", help="Spark master, e.g. local[2] or spark://host:7077 (default: Spark's settings)."),
    spark_conf: list[str] = typer.Option([], "--spark-conf", help="Extra Spark setting KEY=VALUE (repeatable)."),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP + " Local engine only."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    params: Path = PARAMS_OPT,
) -> None:
    """Score a batch; rejected rows come back as {"id", "error"}, nothing is dropped."""
    from dermeval.formats.common import RowError, iter_jsonl, write_jsonl

    if engine not in ("local", "spark"):
        err(f"error: --engine must be local or spark, not {engine!r}")
        raise typer.Exit(2)
    if engine == "spark" and precision != "fp32":
        err("error: --precision applies to the local engine only (the Spark engine scores in fp32)")
        raise typer.Exit(2)
    if engine == "spark":
        scored, rejected = _score_batch_spark(input, output, image_root, model or load(params).monitor.model,
                                              spark_master, spark_conf)
    else:
        evaluator = _load_model(data_path(params, "model", model), precision)
        if not input.is_file():
            err(f"error: input not found: {input}")
            raise typer.Exit(2)
        parsed = list(iter_jsonl(input))
        rows = [obj if not isinstance(obj, RowError) else {"id": None, "error": str(obj)} for _, obj in parsed]
        results = evaluator.score_batch(rows, image_root or input.parent, progress=not quiet, source=str(input),
                                        lines=[n for n, _ in parsed])
        write_jsonl(output, ({k: v for k, v in r.items() if k != "critique_json"} for r in results))
        rejected = sum("error" in r for r in results)
        scored = len(results) - rejected
    err(f"scored {scored}, rejected {rejected} -> {output}")
    if rejected and not scored:
        raise typer.Exit(1)


def _score_batch_spark(input: Path, output: Path, image_root: Path | None, model: str,
                       master: str | None, conf: list[str]) -> tuple[int, int]:
    from dermeval.model.evaluator import EvaluatorNotFound
    from dermeval.serving.spark import SparkEngineError, score_table

    settings = {}
    for item in conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err(f"error: --spark-conf expects KEY=VALUE, got {item!r}")
            raise typer.Exit(2)
        settings[key.strip()] = value.strip()
    if not input.exists():
        err(f"error: input not found: {input}")
        raise typer.Exit(2)
    try:
        summary = score_table(input, output, model,
                              image_root=image_root or (input.parent if input.is_file() else input),
                              master=master, conf=settings)
    except (SparkEngineError, EvaluatorNotFound) as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    return summary.scored, summary.rejected


def register(app: typer.Typer) -> None:
    app.command()(score)
    app.command("score-batch")(score_batch)
