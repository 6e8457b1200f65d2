"""Stage ``monitor``: the champion scores every weekly batch of the prepared world, in week order.

Scores, trust summaries, drift results and alerts go to the store (``monitor.store_url``,
default ``sqlite:///data/store/dermeval.db``); the Evidently HTML report and a JSON
summary of each batch go to the reports folder. Re-running is idempotent: narratives
already scored by this evaluator version are not scored again. The stage depends on the
registry's audit log, so a promotion or rollback reruns it: the new champion re-scores every
batch (its reference window included) and its drift and alerts sit beside the previous
champion's, which are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from dermeval.audit import AuditLog
from dermeval.formats.common import write_json
from dermeval.params import load_params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--prepared", required=True, help="data/prepared (each world's batches/ inside)")
    ap.add_argument("--cache", required=True, help="feature cache")
    ap.add_argument("--reports", required=True, help="folder for the per-batch HTML and JSON reports")
    ap.add_argument("--summary", required=True, help="JSON summary of every batch (for dvc metrics)")
    ap.add_argument("--gate", help="the register stage's gate.json: why there is no champion, when there is none")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    p = params.monitor
    import mlflow

    from dermeval.model.evaluator import EvaluatorNotFound, load_evaluator
    from dermeval.monitor.judging import BatchJudge
    from dermeval.monitor.run import MonitorError, NoSuchEvaluator, evaluator_version, monitor_batch
    from dermeval.portable import relocate_tracking
    from dermeval.store.db import open_store

    tracking = os.environ.get("MLFLOW_TRACKING_URI") or params.register.tracking_uri
    relocate_tracking(tracking, params.register.artifact_root)  # a copied or moved project: its own artifacts
    mlflow.set_tracking_uri(tracking)
    try:
        # The registry says who the champion is now (a reviewer may have promoted or rolled back since
        # the last gate); a read error stops the stage, only a registry without one skips it.
        version = evaluator_version(p.model)
        evaluator = load_evaluator(p.model, cache=args.cache)
    except NoSuchEvaluator as exc:
        reason = f"{exc}; nothing was scored"
        gate = json.loads(Path(args.gate).read_text("utf-8")) if args.gate and Path(args.gate).is_file() else {}
        if gate and not gate.get("champion_after"):
            # No evaluator has passed the gate yet: an unpromoted model must not score production.
            reason = (f"no champion: {gate.get('model')} v{gate.get('version')} failed the gate ("
                      + "; ".join(gate.get("decision", {}).get("reasons", [])[:3]) + "); nothing was scored")
        Path(args.reports).mkdir(parents=True, exist_ok=True)
        write_json(args.summary, {"evaluator_version": None, "skipped": reason, "batches": [], "alerts": 0,
                                  "narratives_stored": 0})
        print(f"monitor: {reason}", file=sys.stderr)
        return 0
    except (MonitorError, EvaluatorNotFound) as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    engine = open_store(p.store_url, upgrade_schema=True)
    batches = sorted(Path(args.prepared).glob("*/batches/week_*.jsonl"))
    batches = [b for b in batches if not b.name.endswith(".truth.jsonl")]
    if not batches:
        print(f"monitor: no weekly batches under {args.prepared}/*/batches/", file=sys.stderr)
    summaries = []
    events = AuditLog(params.register.audit_log).entries()  # alias moves, kept beside the scores
    judge = BatchJudge.for_project(params, evaluator.featurizer)
    for batch in batches:
        result = monitor_batch(batch, evaluator, version, engine, p, image_root=batch.parent.parent,
                               reports=Path(args.reports), promotion_events=events, judge=judge)
        s = result.summary()
        summaries.append(s)
        print(f"monitor {s['batch']}: {s['stored']} stored ({s['scored_now']} scored now), {s['rejected']} "
              f"rejected, {len(s['alerts'])} alert(s)", file=sys.stderr)
    canary = _score_canary(p, evaluator, version, engine)
    write_json(args.summary, {"evaluator_version": version, "batches": summaries, "canary": canary,
                              "alerts": sum(len(s["alerts"]) for s in summaries),
                              "narratives_stored": sum(s["stored"] for s in summaries)})
    return 0


def _score_canary(p, evaluator, version: str, engine) -> dict | None:
    """The canary set scored by this version (stored only: no drift, no alerts) and its figures so far."""
    from dermeval.monitor.canary import CANARY_BATCH, canary_report
    from dermeval.monitor.run import monitor_batch

    if not p.canary or not Path(p.canary).is_file():
        print(f"monitor: no canary set at {p.canary!r}: a change of evaluator cannot be told apart from a change "
              "of the MLLMs (set monitor.canary)", file=sys.stderr)
        return None
    monitor_batch(Path(p.canary), evaluator, version, engine, p, batch_id=CANARY_BATCH, analyse=False,
                  progress=False)
    rows = canary_report(engine, Path(p.canary))
    mine = next((r for r in rows if r["evaluator_version"] == version), None)
    if mine:
        moved = mine["moved_vs_previous"]
        print(f"monitor canary: {mine['n']} narratives, overall MAE {mine['mae_overall']}"
              + (f", moved {moved} vs the previous evaluator" if moved is not None else ""), file=sys.stderr)
    return mine


if __name__ == "__main__":
    sys.exit(main())
