"""Benchmark the dashboard's store queries on a generated store with 1 million score rows.

Usage: python benchmarks/bench_store.py [--rows 1000000] [--url sqlite:///...] [--out results/store.json]
Builds a synthetic store (schema by the project's migrations; batches x MLLMs x narratives
with random scores), derives the rollups and trust summaries as the monitor does, then
times every query the dashboard runs (median of 5 runs after one warm-up, plus the cold
first run). Target: <= 200 ms each with 1 million score rows in SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import insert

from dermeval.monitor.analysis import trust_summaries
from dermeval.schema import DIMENSIONS
from dermeval.store import ingest, queries
from dermeval.store.db import open_store
from dermeval.store.models import Alert, Batch, CandidateModel, Case, DriftResult, Narrative, Score

MODELS = [f"mllm-{k}" for k in range(8)]
CATEGORIES = [f"Category {k:02d}" for k in range(23)]
VERSION = "dermeval/v1"


def build(url: str, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    per_batch_model = 1000
    n_batches = max(1, rows // (per_batch_model * len(MODELS)))
    engine = open_store(url)
    with engine.begin() as conn:
        conn.execute(insert(CandidateModel.__table__), [{"name": m} for m in MODELS])
    for b in range(n_batches):
        bid = f"week_{b + 1:03d}"
        n = per_batch_model * len(MODELS)
        cases = [{"id": f"{bid}-c{i}", "category": CATEGORIES[i % 23], "fitzpatrick": 1 + i % 6,
                  "image": f"images/{bid}-c{i}.png", "image_source": "synthetic", "skin_lightness": 60.0}
                 for i in range(per_batch_model)]
        base = rng.uniform(2.5, 4.5, size=(n, len(DIMENSIONS)))
        narr, scores = [], []
        for i in range(n):
            model, case = MODELS[i % len(MODELS)], cases[i // len(MODELS)]["id"]
            nid = f"{bid}-n{i}"
            narr.append({"id": nid, "case_id": case, "model": model, "batch_id": bid,
                         "text": "A short narrative.", "words": 3, "hedges": 0, "referral_mentions": 0})
            s = {d: float(base[i, j]) for j, d in enumerate(DIMENSIONS)}
            scores.append({"narrative_id": nid, "evaluator_version": VERSION, "batch_id": bid, "model": model,
                           **s, "overall": float(base[i].mean()), **{f"u_{d}": 0.3 for d in DIMENSIONS},
                           "needs_review": bool(base[i].min() < 2.6), "critique": ""})
        with engine.begin() as conn:
            conn.execute(insert(Batch.__table__), [{"id": bid, "source": "bench", "week": b + 1,
                                                    "rows_in": n, "rows_rejected": 0}])
            conn.execute(insert(Case.__table__), cases)
            conn.execute(insert(Narrative.__table__), narr)
            conn.execute(insert(Score.__table__), scores)
            ingest.rebuild_rollups(conn, bid, VERSION, b + 1, 2.5)
            frame = pd.DataFrame(scores)
            trust = [{**t, "batch_id": bid, "week": b + 1, "evaluator_version": VERSION}
                     for t in trust_summaries(frame, safety_floor=2.5, n_boot=20)]
            drift = [{"batch_id": bid, "reference": "week_001", "kind": "score", "feature": d, "model": m,
                      "method": "ks", "statistic": 0.5, "threshold": 0.001, "drifted": False,
                      "reference_mean": 3.5, "current_mean": 3.5} for d in DIMENSIONS for m in MODELS]
            ingest.replace_batch_results(conn, bid, VERSION, trust, drift)
            conn.execute(insert(Alert.__table__), [{"batch_id": bid, "kind": "drift", "model": MODELS[0],
                                                    "feature": "safety", "message": "synthetic alert"}])
    engine.dispose()
    _ = DriftResult  # the drift table is filled through replace_batch_results above


def timed(fn, repeats: int = 5) -> dict[str, float]:
    t = time.perf_counter()
    fn()
    cold = time.perf_counter() - t
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return {"cold_ms": round(cold * 1000, 1), "median_ms": round(statistics.median(runs) * 1000, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--url", help="store URL (default: a new SQLite file in a temporary folder)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "store.json"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dermeval-store-")
    url = args.url or f"sqlite:///{tmp}/store.db"
    t = time.perf_counter()
    build(url, args.rows)
    build_s = time.perf_counter() - t
    engine = open_store(url)
    counts = queries.table_counts(engine)
    last = f"week_{counts['batches']:03d}"
    checks = {
        "table_counts": lambda: queries.table_counts(engine),
        "open_alerts": lambda: queries.open_alerts(engine),
        "trust_over_time(safety)": lambda: queries.trust_over_time(engine, VERSION, "safety"),
        "trust_over_time(all dimensions)": lambda: queries.trust_over_time(engine, VERSION),
        "filtered_series(no filter)": lambda: queries.filtered_series(engine, VERSION),
        "filtered_series(3 categories, skin V-VI, 20 weeks)": lambda: queries.filtered_series(
            engine, VERSION, categories=CATEGORIES[:3], skin_types=[5, 6], weeks=(10, 30)),
        "slice_values": lambda: queries.slice_values(engine),
        "drift_by_batch": lambda: queries.drift_by_batch(engine),
        "drift_details(latest batch)": lambda: queries.drift_details(engine, last),
        "review_queue(latest batch)": lambda: queries.review_queue(engine, VERSION, last),
        "review_queue(all batches)": lambda: queries.review_queue(engine, VERSION),
        "narrative_detail": lambda: queries.narrative_detail(engine, f"{last}-n17", VERSION),
        "promotion_events": lambda: queries.promotion_events(engine),
    }
    timings = {name: timed(fn) for name, fn in checks.items()}
    worst = max(v["median_ms"] for v in timings.values())
    result = {"benchmark": "dashboard store queries, synthetic store", "backend": url.split(":")[0],
              "score_rows": counts["scores"], "build_s": round(build_s, 1), "queries": timings,
              "target_ms": 200, "worst_median_ms": worst, "met": worst <= 200,
              "db_mb": round(Path(url.removeprefix("sqlite:///")).stat().st_size / 2**20, 1)
              if url.startswith("sqlite:///") else None,
              "cpus": os.cpu_count(), "python": platform.python_version()}
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
