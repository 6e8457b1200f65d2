"""Benchmark batch scoring: the local engine against Spark ``local[N]`` (mlflow.pyfunc.spark_udf).

Both run as fresh processes (cold start: interpreter, JVM, model and encoders loaded) over the
same JSONL of N narratives (default 10,000), built by cycling the default world's prepared
records (simulated DermSynth narratives with their images) under new ids. The Spark run scores
an MLflow model: the registered champion when ``--model`` is a ``models:/`` URI, else the
evaluator folder wrapped as a pyfunc. From the measured per-core rate it derives what a cluster
of E executors x C cores needs for 1,000 narratives (core-seconds, wall time, cost at a stated
price per core-hour). Prints and saves JSON (benchmarks/results/spark.json).

Usage: python benchmarks/bench_spark.py [--n 10000] [--model models/dermeval] [--cores 2]
       [--price-per-core-hour 0.048] [--skip-local]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_input(records: Path, n: int, out: Path) -> int:
    rows = [json.loads(line) for line in records.open(encoding="utf-8") if line.strip()]
    with out.open("w", encoding="utf-8") as fh:
        for i in range(n):
            r = rows[i % len(rows)]
            fh.write(json.dumps({"id": f"bench-{i:06d}", "image": r["image"],
                                 "diagnostic_text": r["diagnostic_text"]}) + "\n")
    return sum(len(rows[i % len(rows)]["diagnostic_text"].split()) for i in range(n)) // max(n, 1)


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the process tree's largest child, and the last stderr line."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    peak_mb = int(lines[-1]) / 1024 if lines and lines[-1].isdigit() else float("nan")
    summary = next((ln for ln in reversed(lines) if ln.startswith("scored ")), "")
    return seconds, peak_mb, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--model", default="models/dermeval")
    ap.add_argument("--records", default="data/prepared/records.jsonl")
    ap.add_argument("--image-root", default="data/prepared")
    ap.add_argument("--cores", type=int, default=2, help="local engine threads and Spark local[cores]")
    ap.add_argument("--price-per-core-hour", type=float, default=0.048,
                    help="USD per vCPU-hour used for the cost figure (an assumption; set your own)")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "spark.json"))
    args = ap.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": str(args.cores), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    dermeval = [sys.executable, "-m", "dermeval"]
    result: dict = {"benchmark": "dermeval_batch_engines", "narratives": args.n, "cores": args.cores,
                    "data": "simulated (DermSynth default world, records cycled under new ids)",
                    "machine": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        src = Path(tmp) / "batch.jsonl"
        result["mean_words"] = build_input(REPO / args.records, args.n, src)
        common = ["--input", str(src), "--image-root", str(REPO / args.image_root), "--model", args.model, "-q"]
        engines = {}
        if not args.skip_local:
            secs, peak, summary = run([*dermeval, "score-batch", *common, "--output", f"{tmp}/local.jsonl"], env)
            engines["local"] = {"seconds": round(secs, 1), "narratives_per_s": round(args.n / secs, 2),
                                "peak_rss_mb": round(peak, 1), "summary": summary}
            print(f"local: {secs:.1f} s, {args.n / secs:.2f} narratives/s", flush=True)
        spark_env = {**env, "OMP_NUM_THREADS": "1"}
        secs, peak, summary = run([*dermeval, "score-batch", "--engine", "spark", "--spark-master",
                                   f"local[{args.cores}]", "--spark-conf", "spark.ui.enabled=false",
                                   *common, "--output", f"{tmp}/spark.jsonl"], spark_env)
        engines[f"spark_local[{args.cores}]"] = {
            "seconds": round(secs, 1), "narratives_per_s": round(args.n / secs, 2),
            "peak_rss_mb_driver": round(peak, 1), "summary": summary}
        print(f"spark local[{args.cores}]: {secs:.1f} s, {args.n / secs:.2f} narratives/s", flush=True)
    result["engines"] = engines
    # Per core, from the Spark run (it includes the JVM and per-worker model loads: an upper bound).
    spark_rate = engines[f"spark_local[{args.cores}]"]["narratives_per_s"]
    core_seconds = 1000 * args.cores / spark_rate
    result["per_1000_narratives"] = {
        "core_seconds": round(core_seconds, 1),
        "cost_usd": round(core_seconds / 3600 * args.price_per_core_hour, 4),
        "price_per_core_hour_usd": args.price_per_core_hour,
        "cluster_wall_seconds": {f"{e}x{c}": round(core_seconds / (e * c), 1)
                                 for e, c in ((4, 4), (16, 4), (64, 4))},
        "note": "linear scaling assumed from the measured local rate; excludes cluster start-up",
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
