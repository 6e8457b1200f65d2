"""Which of the evaluator's own outputs point at its big errors: flag rules measured outside the simulator.

Usage: python benchmarks/bench_review_flags.py [--params params.yaml] [--model models/dermeval] [--out results.json]

Needs the pipeline's outputs (``dvc repro``). A big error is a dimension score more than 1.0 from
the simulated panel (the generalisation report's definition). Each rule gives every narrative a
value; its threshold is set on the calibration split alone, as the level a share (10%, 20%, 30%)
of the calibration narratives pass. Then, on the DermSynth and real DermBench test splits, the
held-out wording set and the clean held-out references (the generalisation report's own sets):
the share flagged, and the share of big errors whose narrative is flagged. The issue's bar: at
least 70% of big errors flagged while no more than 20% of clean references are.

Rules: the largest per-dimension uncertainty (what ``needs_review`` uses), the novelty score (what
``out_of_distribution`` uses), the lowest predicted score, and an error model: a logistic regression
fitted on the calibration split from the evaluator's outputs (uncertainties, scores, novelty,
problem probabilities, the diagnosis check, writing style) to whether the narrative has a big
error. The evaluator's own ``needs_review`` is reported beside them. Prints and saves JSON figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from dermeval.formats.common import read_rows, write_json
from dermeval.model.data import FeatureSet
from dermeval.params import load_params
from dermeval.synth import stress as st
from pipelines.generalise import BIG_ERROR, Scorer, big_errors, big_errors_flagged, held_out_cases

SHARES = (0.1, 0.2, 0.3)
CLEAN_CAP = 0.2  # the bound on clean references flagged
TARGET = 0.7  # the share of big errors flagged


def error_inputs(pred: dict[str, np.ndarray]) -> np.ndarray:
    """The evaluator's outputs as one row of numbers per narrative (the error model's inputs)."""
    n = len(pred["scores"])
    style = pred.get("expert_style", np.zeros(n))
    return np.concatenate([pred["sigma"], pred["scores"], pred["novelty"], pred["defect_probs"],
                           pred["match"][:, None], pred["match_image"][:, None], style[:, None],
                           pred["sigma"].max(1, keepdims=True), pred["scores"].min(1, keepdims=True)], 1)


def flag_figures(flags: np.ndarray, big: np.ndarray | None) -> dict:
    out = {"flagged": round(float(flags.mean()), 4)}
    if big is not None and big.any():
        out["big_errors_flagged"] = big_errors_flagged(flags, big)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", default=None, help="default: data.model")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "review_flags.json"))
    args = ap.parse_args()
    params = load_params(args.params)
    d, p = params.data, params.generalise
    prepared = Path(d.prepared)
    features = Path(d.features) / "features.npz"
    if not features.is_file():
        raise SystemExit(f"bench_review_flags: no {features} (run `dvc repro` first)")
    t0 = time.perf_counter()
    records = read_rows(prepared / "records.jsonl")
    splits = json.loads(Path(d.splits).read_text("utf-8"))
    scorer = Scorer(args.model or d.model, d.feature_cache, None, prepared)
    fs = FeatureSet.load(features)
    by_id = {r["id"]: r for r in records}
    sets: dict[str, tuple[list[dict], dict[str, np.ndarray]]] = {}
    for split in ("calib", "test"):
        idx = np.array([i for i, rid in enumerate(fs.ids) if splits.get(rid) == split], np.int64)
        rows, pred = scorer.aligned(fs, [by_id[fs.ids[i]] for i in idx], idx, evidence=False)
        if split == "calib":
            sets["calib"] = (rows, pred)
            continue
        source = np.array([r.get("source", "dermsynth") for r in rows])
        for s in sorted(set(source)):
            keep = source == s
            sets[f"{s} test split"] = ([r for r, k in zip(rows, keep, strict=True) if k],
                                       {k: v[keep] for k, v in pred.items()})
    cases = held_out_cases(prepared, records, splits, p)
    sets["held-out wording"] = scorer.dermeval(st.heldout_wording_rows([c for cs in cases.values() for c in cs],
                                                                       p.seed))
    stress_cases = cases.get("dermbench") or cases["dermsynth"]
    rows, pred = scorer.dermeval([r for r in st.stress_rows(stress_cases, p.seed) if r["variant"] == "clean"])
    sets["clean references"] = (rows, pred)

    calib_rows, calib_pred = sets["calib"]
    scaler = StandardScaler().fit(error_inputs(calib_pred))
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(error_inputs(calib_pred)),
                                                  big_errors(calib_rows, calib_pred["scores"]).any(1))
    rules = {"uncertainty": lambda pr: pr["sigma"].max(1), "novelty": lambda pr: pr["novelty"].max(1),
             "lowest score": lambda pr: -pr["scores"].min(1),
             "error model": lambda pr: model.predict_proba(scaler.transform(error_inputs(pr)))[:, 1]}
    evaluated = [k for k in sets if k != "calib"]

    def big(k: str) -> np.ndarray | None:  # the clean references have no panel scores to be off from
        return None if k == "clean references" else big_errors(sets[k][0], sets[k][1]["scores"])

    results: dict[str, dict] = {"needs_review (the evaluator's own)": {
        k: flag_figures(sets[k][1]["needs_review"], big(k))
        for k in evaluated}}
    for name, rule in rules.items():
        calib_value = rule(calib_pred)
        for share in SHARES:
            level = float(np.quantile(calib_value, 1 - share))
            results[f"{name}, top {share:.0%} of calib"] = {
                k: flag_figures(rule(sets[k][1]) > level, big(k))
                for k in evaluated}
    within = {rule: figs for rule, figs in results.items() if figs["clean references"]["flagged"] <= CLEAN_CAP}
    best = {k: max(((rule, figs[k]["big_errors_flagged"]) for rule, figs in within.items()), key=lambda x: x[1])
            for k in evaluated if k != "clean references"}
    out = {"benchmark": "review flags: which outputs point at the evaluator's big errors (simulated panel)",
           "simulated": True, "big_error": BIG_ERROR, "clean_cap": CLEAN_CAP, "target": TARGET,
           "sizes": {k: len(v[0]) for k, v in sets.items()},
           "calib_big_error_share": round(float(big_errors(calib_rows, calib_pred["scores"]).any(1).mean()), 4),
           "rules": results,
           "best_within_clean_cap": {k: {"rule": r, "big_errors_flagged": v, "meets_target": v >= TARGET}
                                     for k, (r, v) in best.items()},
           "seconds": round(time.perf_counter() - t0, 1)}
    write_json(args.out, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
