"""``dermeval monitor``: score a batch with the champion, store it, find drift, raise alerts."""

from __future__ import annotations

from pathlib import Path

import typer

from dermeval.commands.common import PARAMS_OPT, err, load
from dermeval.commands.store import STORE_HELP


def monitor(
    batch: Path = typer.Option(..., "--batch", help="JSONL batch of narratives (DermEval record schema, with model)."),
    image_root: Path | None = typer.Option(None, "--image-root", help="Folder the image paths are relative to "
                                           "(default: the batch's folder)."),
    model: str | None = typer.Option(None, "--model", help="Evaluator (default: monitor.model of params.yaml)."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    batch_id: str | None = typer.Option(None, "--batch-id", help="Name of the batch (default: the file name)."),
    reports: Path | None = typer.Option(None, "--reports", help="Folder for the HTML drift report and the JSON "
                                        "summary (default: <data.reports>/monitor of params.yaml)."),
    params: Path = PARAMS_OPT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Score a batch with the champion, store the scores, compute drift and trust, raise alerts."""
    from dermeval.audit import AuditLog
    from dermeval.model.evaluator import EvaluatorNotFound, load_evaluator
    from dermeval.monitor.judging import BatchJudge
    from dermeval.monitor.run import MonitorError, evaluator_version, monitor_batch
    from dermeval.store.db import StoreError, open_store

    loaded = load(params)
    p, register = loaded.monitor, loaded.register
    target = model or p.model
    if target.startswith("models:/"):
        _use_tracking(register)
    try:
        if not batch.is_file():
            raise MonitorError(f"batch not found: {batch}")
        version = evaluator_version(target)  # before anything is written
        evaluator = load_evaluator(target, cache=loaded.data.feature_cache)
        engine = open_store(store or p.store_url, upgrade_schema=True)
        judge = BatchJudge.for_project(loaded, evaluator.featurizer)
        result = monitor_batch(batch, evaluator, version, engine, p, image_root=image_root, batch_id=batch_id,
                               reports=reports or Path(loaded.data.reports) / "monitor",
                               promotion_events=AuditLog(register.audit_log).entries(), progress=not quiet,
                               judge=judge)
    except (MonitorError, EvaluatorNotFound, StoreError) as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    for r in result.rejected:
        err(f"rejected: {r['error']}")
    s = result.summary()
    err(f"monitor {s['batch']}: {s['stored']} stored ({s['scored_now']} scored now, {s['already_scored']} "
         f"already), {s['rejected']} rejected, {len(s['alerts'])} alert(s), evaluator {version}")


def _use_tracking(register) -> None:
    """Registry URIs resolve against the project's tracking server ($MLFLOW_TRACKING_URI overrides)."""
    import os

    import mlflow

    from dermeval.portable import relocate_tracking

    tracking = os.environ.get("MLFLOW_TRACKING_URI") or register.tracking_uri
    relocate_tracking(tracking, register.artifact_root)
    mlflow.set_tracking_uri(tracking)


def register(app: typer.Typer) -> None:
    app.command()(monitor)
