"""Benchmark batch scoring: the local engine against Spark ``local[N]`` (mlflow.pyfunc.spark_udf).

Both run as fresh processes (cold start: interpreter, JVM, model and encoders loaded) over the
same JSONL of N distinct narratives (default 10,000) from a freshly generated DermSynth world
(simulated; six MLLM narratives per case share its image). Both engines keep an in-memory
content-hash cache of image and sentence vectors, so an image or a sentence seen before in
the run is not encoded again (the JSON reports how many were distinct). The Spark run scores
an MLflow model: the registered champion when ``--model`` is a ``models:/`` URI, else the
evaluator folder wrapped as a pyfunc. From the measured per-core rate it derives what a cluster
of E executors x C cores needs for 1,000 narratives (core-seconds, wall time, cost at a stated
price per core-hour). Prints and saves JSON (benchmarks/results/spark.json).

Usage: python benchmarks/bench_spark.py [--n 10000] [--model models/dermeval] [--cores 2] [--seed 101]
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


def build_input(n: int, folder: Path, seed: int) -> dict:
    """A fresh DermSynth world of ceil(n / 6) cases (6 simulated MLLMs each): n distinct narratives
    and their images, written as one JSONL batch. Returns facts about the text."""
    from dermeval.features import narrative_units
    from dermeval.synth.world import WorldConfig, generate_world

    generate_world(folder, WorldConfig(cases=-(-n // 6), seed=seed, weeks=1, batch_cases=1), progress=True)
    rows = [json.loads(line) for line in (folder / "ratings.jsonl").open(encoding="utf-8")][:n]
    units = [u for r in rows for u in narrative_units(r["diagnostic_text"]).units]
    with (folder / "batch.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({"id": r["id"], "image": r["image"], "diagnostic_text": r["diagnostic_text"]}) + "\n")
    return {"narratives": len(rows), "distinct_narratives": len({r["diagnostic_text"] for r in rows}),
            "images": len({r["image"] for r in rows}), "mean_words": round(
                sum(len(r["diagnostic_text"].split()) for r in rows) / max(len(rows), 1), 1),
            "sentence_units": len(units), "distinct_sentence_units": len(set(units))}


def dermbench_length_estimate(scoring: Path, cores: int, price: float) -> dict | None:
    """Core-seconds and cost per 1,000 DermBench-length narratives of distinct text, from the
    measured batch rate in benchmarks/results/scoring.json (encoders on every sentence)."""
    if not scoring.is_file():
        return None
    figures = json.loads(scoring.read_text())
    rate = figures.get("narratives_per_s_batch")
    if not rate:
        return None
    core_seconds = 1000 * figures.get("threads", cores) / rate
    return {"source": "benchmarks/results/scoring.json", "narratives_per_s": rate,
            "mean_words": figures.get("mean_words"), "core_seconds": round(core_seconds, 1),
            "cost_usd": round(core_seconds / 3600 * price, 4),
            "cluster_wall_seconds": {f"{e}x{c}": round(core_seconds / (e * c), 1)
                                     for e, c in ((4, 4), (16, 4), (64, 4))}}


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
    ap.add_argument("--seed", type=int, default=101, help="DermSynth seed of the benchmark world")
    ap.add_argument("--cores", type=int, default=2, help="local engine threads and Spark local[cores]")
    ap.add_argument("--price-per-core-hour", type=float, default=0.048,
                    help="USD per vCPU-hour used for the cost figure (an assumption; set your own)")
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "spark.json"))
    args = ap.parse_args()

    env = {**os.environ, "OMP_NUM_THREADS": str(args.cores), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    dermeval = [sys.executable, "-m", "dermeval"]
    result: dict = {"benchmark": "dermeval_batch_engines", "narratives": args.n, "cores": args.cores,
                    "data": "simulated (a fresh DermSynth world, distinct narratives)",
                    "machine": platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        result["input"] = build_input(args.n, Path(tmp), args.seed)
        common = ["--input", f"{tmp}/batch.jsonl", "--image-root", tmp, "--model", args.model, "-q"]
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
        "note": "linear scaling assumed from the measured local rate; excludes cluster start-up; DermSynth "
                "text repeats sentences, which the engines' vector cache does not re-encode",
    }
    estimate = dermbench_length_estimate(REPO / "benchmarks" / "results" / "scoring.json", args.cores,
                                         args.price_per_core_hour)
    if estimate:
        result["per_1000_dermbench_length_distinct"] = estimate
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
