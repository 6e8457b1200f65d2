"""Benchmark `dvc repro` end to end on the default world, then a no-op rerun.

Usage: python benchmarks/bench_pipeline.py [--keep DIR] [--out results/pipeline.json]
Runs in a fresh temporary copy of the project (its own git repo, DVC cache, feature cache,
MLflow store), so nothing is reused from earlier runs. Prints and saves JSON figures.
The DermBench release path in params.yaml is made absolute, so the copy trains on real text
too when the release is there (as `make run` does). Targets: end to end <= 900 s on 2 cores
after install; a no-op rerun <= 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pipeline.json"))
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="dermeval-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "pipelines", "dermeval", "registry"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, work / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text("utf-8"))
    params["prepare"]["dermbench_root"] = str((REPO / params["prepare"]["dermbench_root"]).resolve())
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
        _run(cmd, work)
    full_s, full = _run([dvc, "repro"], work)
    if full.returncode != 0:
        sys.exit(f"dvc repro failed:\n{full.stderr[-3000:]}")
    noop_s, noop = _run([dvc, "repro"], work)
    stages = re.findall(r"Running stage '(\w+)'", full.stdout)
    metrics = json.loads((work / "reports" / "metrics.json").read_text())
    manifest = json.loads((work / "data" / "prepared" / "manifest.json").read_text())
    gen = json.loads((work / "reports" / "generalisation.json").read_text())
    result = {
        "benchmark": "dvc repro, default data (simulated ratings), fresh project copy, empty caches",
        "data_source": manifest["source"], "real_text": manifest.get("real_text"), "records": manifest["records"],
        "end_to_end_s": round(full_s, 1), "target_end_to_end_s": 900, "end_to_end_met": full_s <= 900,
        "noop_rerun_s": round(noop_s, 1), "target_noop_s": 15, "noop_met": noop_s <= 15,
        "noop_ran_a_stage": "Running stage" in noop.stdout, "stages": stages,
        "overall_mae": metrics["overall_mae"], "judge_overall_mae": metrics.get("judge_overall_mae"),
        "transfer_overall_mae": gen.get("gen_transfer_overall_mae"), "stress_accuracy": gen.get("gen_stress_accuracy"),
        "cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
