"""Benchmark the offline judge: candidates per second once the encoder features are cached.

Usage: python benchmarks/bench_judge.py [--prepared data/prepared] [--cache data/cache/features.sqlite]
       [--calibration models/judge.json] [--out results/judge.json]
Needs the pipeline's outputs (``dvc repro judge``). Judges every rated narrative of the
prepared set end to end (measures, calibration, justification, output row) twice: the first
pass may encode reference sentences that are not in the cache, the second finds all cached.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

from dermeval.features import FeatureStore, Featurizer
from dermeval.formats.candidates import CandidateNarrative
from dermeval.formats.common import read_rows
from dermeval.judge import run as jr
from dermeval.judge.local import Calibration, LocalJudge
from dermeval.judge.references import load_references


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--cache", default="data/cache/features.sqlite")
    ap.add_argument("--calibration", default="models/judge.json")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "judge.json"))
    args = ap.parse_args()
    refs = jr.index_references(load_references(args.prepared).records)
    rows = read_rows(Path(args.prepared) / "records.jsonl")
    cands = [CandidateNarrative(id=r["case_id"], model=r["model"], candidate_text=r["diagnostic_text"])
             for r in rows if r.get("case_id") in refs]
    featurizer = Featurizer(FeatureStore(args.cache))
    judge = LocalJudge(featurizer, Calibration.load(args.calibration))
    passes = []
    for label in ("first", "cached"):
        before = dict(featurizer.encoded)
        t = time.perf_counter()
        run = jr.judge_local(cands, refs, judge, progress=False)
        seconds = time.perf_counter() - t
        passes.append({"pass": label, "candidates": run.judged, "seconds": round(seconds, 2),
                       "candidates_per_s": round(run.judged / seconds, 1),
                       "sentences_encoded": featurizer.encoded["sentence"] - before["sentence"]})
    result = {
        "benchmark": "local judge (DermBench judge format), default DermSynth world, simulated data",
        "passes": passes, "target_candidates_per_s": 200,
        "met": passes[-1]["candidates_per_s"] >= 200,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
