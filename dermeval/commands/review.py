"""``dermeval review``: the expert loop from the command line (queue, submit, agreement, export, add-user).

The dashboard's *Expert review* page does the same for a signed-in reviewer; these commands
serve ratings collected elsewhere and the pipeline's side (export to the ``feedback`` dataset).
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

import typer

from dermeval.commands.common import JSON_OPT, PARAMS_OPT, STORE_OPT, err, load, open_engine

review_app = typer.Typer(help="The expert loop: what to rate next, ratings in, agreement, export for retraining.",
                         no_args_is_help=True)


def _latest_version(engine) -> str | None:
    from sqlalchemy import select

    from dermeval.store.models import Score

    s = Score.__table__
    with engine.connect() as conn:
        return conn.execute(select(s.c.evaluator_version).order_by(s.c.scored_at.desc(), s.c.id.desc())
                            .limit(1)).scalar()


@review_app.command("queue")
def review_queue(
    batch: str | None = typer.Option(None, "--batch", help="The batch to draw from (default: the latest weekly one)."),
    evaluator: str | None = typer.Option(None, "--evaluator", help="The evaluator version whose scores rank the "
                                         "narratives (default: the one that scored most recently)."),
    reviewer: str | None = typer.Option(None, "--reviewer", help="Leave out what this reviewer rated or skipped."),
    budget: int | None = typer.Option(None, "--budget", min=0, help="How many (default: review.budget_per_week)."),
    store: str | None = STORE_OPT, params: Path = PARAMS_OPT, as_json: bool = JSON_OPT,
) -> None:
    """The narratives experts should rate next, by expected value, stratified, with a random share."""
    from dermeval.review.queue import queue_for

    loaded = load(params)
    engine = open_engine(store, params)
    version = evaluator or _latest_version(engine)
    if version is None:
        err("error: nothing has been scored yet (run the monitor first: `dvc repro` or `dermeval monitor`)")
        raise typer.Exit(2)
    queue = queue_for(engine, version, loaded, budget=budget, batch_id=batch, reviewer=reviewer)
    if as_json:
        typer.echo(json.dumps(queue, indent=2))
        return
    for q in queue:
        why = ", ".join(f"{k} {v:.2f}" for k, v in q["why"].items())
        typer.echo(f"{q['narrative_id']:<28} {q['model']:<16} {str(q['category'])[:30]:<30} "
                   f"{q['selected_by']:<6} value {q['value']:.2f} ({why})")
    err(f"review queue: {len(queue)} narrative(s) from {queue[0]['batch_id'] if queue else 'no batch'}, "
        f"ranked by {version}'s scores")


@review_app.command("submit")
def review_submit(
    file: Path = typer.Argument(..., help='JSONL: {"narrative_id", "reviewer"?, "scores": {six} or null (skipped), '
                                          '"comment"?} per line.'),
    reviewer: str | None = typer.Option(None, "--reviewer", help="The reviewer of rows that name none."),
    store: str | None = STORE_OPT, params: Path = PARAMS_OPT,
) -> None:
    """Add ratings collected elsewhere; bad rows are listed by line, the rest are stored."""
    from dermeval.review.ratings import ReviewError, read_file, submit

    if not file.is_file():
        err(f"error: not found: {file}")
        raise typer.Exit(2)
    good, bad = read_file(file, reviewer)
    for e in bad:
        err(f"rejected: {e}")
    engine = open_engine(store, params)
    stored = 0
    for r in good:  # one by one: a narrative missing from the store costs its own row only
        try:
            stored += len(submit(engine, [r]))
        except ReviewError as exc:
            err(f"rejected: {file}: {r.narrative_id}: {exc}")
            bad.append(exc)
    err(f"review submit: {stored} stored, {len(bad)} rejected")
    if bad and not stored:
        raise typer.Exit(1)


@review_app.command("agreement")
def review_agreement(store: str | None = STORE_OPT, params: Path = PARAMS_OPT, as_json: bool = JSON_OPT) -> None:
    """Inter-reviewer agreement per dimension (ICC, pairwise MAE) and each reviewer against the consensus."""
    from dermeval.review.ratings import agreement, latest

    out = agreement(latest(open_engine(store, params)))
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"{out['n_ratings']} ratings of {out['n_narratives']} narratives by {out['n_reviewers']} reviewers")
    for d, a in out["dimensions"].items():
        icc = "n/a" if a["icc"] is None else f"{a['icc']:.2f}"
        mae = "n/a" if a["pairwise_mae"] is None else f"{a['pairwise_mae']:.2f}"
        typer.echo(f"  {d:<24} ICC(2,1) {icc:<6} (n={a['icc_n']})  pairwise MAE {mae} ({a['pairs']} pairs)")


@review_app.command("export")
def review_export(out: Path | None = typer.Option(None, "--out", help="Records file (default: review.export)."),
                  store: str | None = STORE_OPT, params: Path = PARAMS_OPT) -> None:
    """Write the rated narratives as DermEval records (consensus + each reviewer) for the next `dvc repro`."""
    from dermeval.review.export import export_records

    loaded = load(params)
    target = out or Path(loaded.review.export)
    summary = export_records(open_engine(store, params), target, min_reviewers=loaded.review.min_reviewers,
                             project=params.resolve().parent)
    err(f"review export: {summary['records']} narrative(s), {summary['ratings']} rating(s) by "
        f"{len(summary['reviewers'])} reviewer(s) from {len(summary['batches'])} batch(es) -> {target}")


@review_app.command("add-user")
def review_add_user(name: str = typer.Argument(..., help="The reviewer's user name."),
                    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from "
                                                        "stdin instead of prompting."),
                    params: Path = PARAMS_OPT) -> None:
    """Add (or reset) a reviewer in the local users file (review.users_file; a salted scrypt hash only)."""
    from dermeval.review.auth import AuthError, add_user

    users = Path(load(params).review.users_file)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass(f"password for {name}: ")
    try:
        add_user(users, name, password)
    except AuthError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    err(f"reviewer {name} can now sign in on the dashboard's Expert review page ({users})")


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
