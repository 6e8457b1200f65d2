"""Would the gate let a worse evaluator through? Retrain evaluators on the pipeline's data and gate each pair.

Usage: python benchmarks/bench_gate.py [--out benchmarks/results/gate.json] [--only seed,lr] [--models DIR]
Run after `dvc repro` (it reads data/prepared, data/features, data/splits.json and
models/dermeval, the pipeline's model). Two more evaluators are trained on the same data
with one training param changed, as `dvc exp run -S` would: another seed and
`train.lr=0.001`. Every ordered pair (challenger, champion) is then gated on the same test
rows by the paired checks of params.yaml (`gate.paired`) and, for contrast, by the old rule
(no dimension worse than max(0.02, 10% of the champion's value), on the two MAEs).
Ratings are the simulated panel's. Prints and saves JSON figures; `--models DIR` keeps the
trained evaluators and reuses them, so the margins can be re-gated without retraining.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from dermeval.evaluation import paired_comparison, paired_difference
from dermeval.formats.common import read_rows, write_json
from dermeval.model.data import FeatureSet
from dermeval.model.evaluator import load_evaluator
from dermeval.model.fit import fit_evaluator
from dermeval.params import load_params
from dermeval.schema import DIMENSIONS
from dermeval.synth.catalogue import default_catalogue
from registry.gate import paired_checks

CHALLENGERS = {"seed": {"seed": 1}, "lr": {"lr": 0.001}}


def _scores(evaluator, fs, idx) -> dict[str, np.ndarray]:
    pred = evaluator.predict(fs, idx)["scores"]
    return {d: pred[:, j] for j, d in enumerate(DIMENSIONS)}


def _old_rule(mine: dict[str, float], theirs: dict[str, float]) -> list[str]:
    """The tolerance the gate used before: worse by at most max(0.02, 10% of the champion's value)."""
    return [f"{k} {mine[k]:.4f} vs {theirs[k]:.4f}" for k in theirs
            if mine[k] > theirs[k] + max(0.02, 0.10 * abs(theirs[k]))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gate.json"))
    ap.add_argument("--only", default=",".join(CHALLENGERS), help="challengers to train (seed, lr)")
    ap.add_argument("--models", help="keep the trained challengers in this folder and reuse them when there "
                    "(to re-gate under other margins without retraining)")
    args = ap.parse_args()
    params = load_params(args.params)
    d = params.data
    rows = {r["id"]: r for r in read_rows(Path(d.prepared) / "records.jsonl")}
    splits = json.loads(Path(d.splits).read_text("utf-8"))
    fs = FeatureSet.load(Path(d.features) / "features.npz")
    idx = [i for i, rid in enumerate(fs.ids) if splits.get(rid) == "test"]
    test_rows = [rows[fs.ids[i]] for i in idx]
    champion = load_evaluator(d.model)
    floor = params.monitor.safety_floor
    b = params.gate.paired
    base = params.train
    known = [(n, c.category) for c in default_catalogue().conditions for n in c.names]
    unsafe = np.array([r["scores"]["safety"] for r in test_rows]) < floor
    out = {"simulated": True, "n_test": len(test_rows), "n_unsafe": int(unsafe.sum()),
           "margins": dataclasses.asdict(b), "models": {}, "pairs": []}
    models = {"pipeline": (champion, None, {})}
    for name in [x for x in args.only.split(",") if x]:
        change = CHALLENGERS[name]
        t0 = time.perf_counter()
        kept = Path(args.models) / name if args.models else None
        if kept is not None and (kept / "config.json").is_file():
            model, seconds = load_evaluator(kept), None
        else:
            model, _, _ = fit_evaluator(FeatureSet.load(Path(d.features) / "features.npz"), rows, splits,
                                        base.with_(**change), known_names=known)
            seconds = round(time.perf_counter() - t0, 1)
            if kept is not None:
                model.save(kept)
        models[name] = (model, seconds, change)
    scored = {name: _scores(m, fs, idx) for name, (m, _, _) in models.items()}
    groups = [str(r.get("case_id") or r["id"]) for r in test_rows]
    expert_overall = np.mean([[r["scores"][x] for x in DIMENSIONS] for r in test_rows], 1)
    for name, (_, seconds, change) in models.items():
        p = scored[name]
        err = np.abs(np.mean([p[x] for x in DIMENSIONS], 0) - expert_overall)
        caught = (p["safety"] < floor)[unsafe]
        ci = paired_difference(err, groups, n_boot=b.n_boot)  # its own CI, as a stored report would give
        out["models"][name] = {"change": change or "the pipeline's model (dvc repro)", "train_seconds": seconds,
                               "overall_mae": round(float(err.mean()), 4),
                               "overall_mae_ci_width": round(ci["ci_high"] - ci["ci_low"], 4),
                               "dimension_mae": {x: round(float(np.abs(p[x] - np.array(
                                   [r["scores"][x] for r in test_rows])).mean()), 4) for x in DIMENSIONS},
                               "unsafe_recall": round(float(caught.mean()), 4)}
    # Every ordered pair: would the gate let this challenger replace that champion?
    for mine, theirs in [(a, c) for a in models for c in models if a != c]:
        paired = paired_comparison(test_rows, scored[mine], scored[theirs], n_boot=b.n_boot, safety_floor=floor,
                                   slice_kinds=[k for k in b.slice_kinds.split(",") if k], slice_min_n=b.slice_min_n)
        checks = paired_checks(paired, params.gate, theirs)
        now = {k: v["challenger"] for k, v in paired["mae"].items()}
        stored = {k: v["champion"] for k, v in paired["mae"].items()}
        u = paired["unsafe_recall"]
        pair = {"challenger": mine, "champion": theirs,
                "overall_difference": {k: round(paired["difference"]["overall"][k], 4)
                                       for k in ("value", "ci_low", "ci_high")},
                "unsafe_recall_difference": {k: round(u[k], 4) for k in ("value", "ci_low", "ci_high")},
                "old_rule": {"passed": not _old_rule(now, stored), "reasons": _old_rule(now, stored)},
                "paired_gate": {"passed": all(c.passed for c in checks), "checks": len(checks),
                                "reasons": [f"{c.name} = {c.value:.4f}, needs {c.op} {c.bound:.4f}"
                                            for c in checks if not c.passed]}}
        out["pairs"].append(pair)
        print(f"{mine} over {theirs}: old rule {'pass' if pair['old_rule']['passed'] else 'FAIL'}, paired gate "
              f"{'pass' if pair['paired_gate']['passed'] else 'FAIL'} {pair['paired_gate']['reasons'][:2]}",
              file=sys.stderr)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
