"""How much a retrain moves the evaluator's figures, per training setting: several seeds each.

Usage (after `dvc repro`, which leaves the prepared data, splits, features and feature cache):
    python benchmarks/bench_retrain.py --seeds 0 1 \\
        --variant default: --variant "single:members=1,early_stopping=true,epochs=40" \\
        [--out benchmarks/results/retrain.json] [--append] [--work DIR]

Each variant is ``name:key=value,...`` over the ``train`` section of params.yaml (nothing after
the colon: the project's own settings). For every variant and seed this runs the pipeline's own
``train``, ``evaluate`` and ``generalise`` stages (without the judge) into a work folder, then
reads the figures they write: the gate's whole-test-split MAE and unsafe recall, the DermSynth
test split, held-out wording families, transfer to real DermBench text, the stress suite per
variant, the share of big errors flagged, the critique's claim precision and the training time.
The summary gives each figure's mean and range over the seeds: the range is what one retrain can
move it by. All ratings are the simulated panel's. Prints and saves JSON figures.
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

import yaml

from dermeval.schema import DIMENSIONS as DIMS

REPO = Path(__file__).resolve().parents[1]
# (figure, file the stage writes, key in it)
FIGURES = [("whole_test_overall_mae", "metrics", "overall_mae"), ("unsafe_recall", "metrics", "unsafe_recall")]
FIGURES += [(f"whole_test_mae_{d}", "metrics", f"mae_{d}") for d in DIMS]
for part in ("indist", "heldout_wording", "transfer"):
    FIGURES += [(f"{part}_overall_mae", "gen", f"gen_{part}_overall_mae")]
    FIGURES += [(f"{part}_mae_{d}", "gen", f"gen_{part}_mae_{d}") for d in DIMS]
    FIGURES += [(f"{part}_big_errors_flagged", "gen", f"gen_{part}_big_errors_flagged_share")]
FIGURES += [("stress_accuracy", "gen", "gen_stress_accuracy"),
            ("clean_overall_mean", "gen", "gen_clean_overall_mean"),
            ("clean_needs_review_share", "gen", "gen_clean_needs_review_share"),
            ("test_claims_precision", "gen", "gen_critique_test_claims_precision"),
            ("stress_claims_precision", "gen", "gen_critique_stress_claims_precision")]
STRESS_PREFIX = "gen_stress_"


def parse_variant(text: str) -> tuple[str, dict]:
    """``name:key=value,...`` -> (name, {key: value parsed as YAML})."""
    name, _, rest = text.partition(":")
    if not name:
        raise SystemExit(f"--variant {text!r}: give it a name before the colon")
    changes = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--variant {text!r}: {item!r} is not key=value")
        changes[key.strip()] = yaml.safe_load(value)
    return name, changes


def run_stage(module: str, args: list[str], log: Path) -> float:
    t = time.perf_counter()
    with log.open("a") as fh:
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{module} failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - t


def one_run(params: dict, data: dict, work: Path) -> dict:
    """Train, evaluate and generalise once with ``params``; the figures they wrote."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), "utf-8")
    log, p = work / "log.txt", str(work / "params.yaml")
    records, features = f"{data['prepared']}/records.jsonl", f"{data['features']}/features.npz"
    model = str(work / "model")
    seconds = {"train": run_stage("pipelines.train", [
        "--params", p, "--records", records, "--features", features, "--splits", data["splits"],
        "--out", model, "--reports", str(work / "train")], log)}
    seconds["evaluate"] = run_stage("pipelines.evaluate", [
        "--params", p, "--records", records, "--features", features, "--splits", data["splits"], "--model", model,
        "--reports", str(work / "eval"), "--metrics", str(work / "metrics.json")], log)
    seconds["generalise"] = run_stage("pipelines.generalise", [
        "--params", p, "--records", records, "--prepared", data["prepared"], "--splits", data["splits"],
        "--features", features, "--model", model, "--cache", data["feature_cache"],
        "--reports", str(work / "generalisation"), "--metrics", str(work / "generalisation.json")], log)
    files = {"metrics": json.loads((work / "metrics.json").read_text()),
             "gen": json.loads((work / "generalisation.json").read_text())}
    out = {name: files[src].get(key) for name, src, key in FIGURES}
    out.update({f"stress_{k[len(STRESS_PREFIX):]}": v for k, v in files["gen"].items()
                if k.startswith(STRESS_PREFIX) and k != "gen_stress_accuracy"})
    train = json.loads((work / "train" / "train.json").read_text())
    out["train_seconds"] = train["train_seconds"]
    out["kept_epochs"] = [m["kept_epoch"] for m in train.get("members", [train])]
    out["stage_seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    return out


def summarise(runs: list[dict]) -> dict:
    """Per figure: mean, min, max and range over the seeds."""
    out = {}
    for key in (k for k in runs[0] if k != "seed"):
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if len(values) == len(runs):
            out[key] = {"mean": round(sum(values) / len(values), 4), "min": round(min(values), 4),
                        "max": round(max(values), 4), "range": round(max(values) - min(values), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", required=True, help="name:key=value,... over params.yaml's train")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--work", help="keep each run's model and reports here (default: a temporary folder)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "retrain.json"))
    ap.add_argument("--append", action="store_true", help="keep the variants already in --out (run others beside them)")
    args = ap.parse_args()
    base = yaml.safe_load(Path(args.params).read_text("utf-8"))
    data = {k: str((REPO / base["data"][k]).resolve()) for k in ("prepared", "splits", "features", "feature_cache")}
    missing = [v for k, v in data.items() if k != "feature_cache" and not Path(v).exists()]
    if missing:
        raise SystemExit(f"missing pipeline outputs {missing}: run `dvc repro` first")
    work = Path(args.work or tempfile.mkdtemp(prefix="dermeval-retrain-"))
    variants = [parse_variant(v) for v in args.variant]
    result = {"note": "simulated panel ratings throughout; each run = the pipeline's train, evaluate and "
                      "generalise stages on this checkout's features",
              "seeds": args.seeds,
              "machine": {"python": platform.python_version(), "cpus": len(os.sched_getaffinity(0))},
              "variants": {}}
    if args.append and Path(args.out).is_file():
        earlier = json.loads(Path(args.out).read_text("utf-8"))
        if earlier.get("seeds") != args.seeds:
            raise SystemExit(f"--append: {args.out} holds seeds {earlier.get('seeds')}, not {args.seeds}")
        result["variants"] = earlier["variants"]
    for name, changes in variants:
        runs = []
        for seed in args.seeds:
            params = json.loads(json.dumps(base))
            params["train"].update(changes, seed=seed)
            t = time.perf_counter()
            fig = one_run(params, data, work / name / f"seed{seed}")
            runs.append({"seed": seed, **fig})
            print(f"{name} seed {seed}: whole test {fig['whole_test_overall_mae']}, transfer "
                  f"{fig['transfer_overall_mae']}, held-out wording {fig['heldout_wording_overall_mae']}, "
                  f"stress {fig['stress_accuracy']} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        result["variants"][name] = {"train_changes": changes, "runs": runs, "summary": summarise(runs)}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", "utf-8")  # after each variant: nothing lost
    print(json.dumps({n: {k: v["mean"] for k, v in r["summary"].items() if "mae" in k or "stress" in k}
                      for n, r in result["variants"].items()}, indent=1))


if __name__ == "__main__":
    main()
