"""How often the critique's "Detected:" claims are right under each rule for setting their thresholds.

Usage: python benchmarks/bench_claims.py [--params params.yaml] [--model models/dermeval] [--out results.json]

Needs the pipeline's outputs (``dvc repro``). Takes the trained network as it is and refits only the
claim thresholds on the calibration split, three ways:

- ``strictest source``: one set for every narrative, each problem's threshold the strictest that
  reaches ``train.claim_precision`` by ``train.claim_margin`` standard errors (Wilson, row by row)
  in every source that holds enough claims;
- ``per style``: one set per writing style (expert references vs the rest), each from its own rows;
- ``per style, by case``: as above, the margin also counted by case (the narratives of one case
  are right or wrong together).

Then scores the test split and reports, per source and per problem, how many claims each rule
makes and how often they match the recorded problems (simulated panel labels on DermSynth; the
operators' records on DermBench-derived text). The thresholds are set on calibration rows only;
the test split never moves them. Prints and saves JSON figures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from dermeval.formats.common import iter_jsonl, write_json
from dermeval.model.critique import claimed, row_thresholds
from dermeval.model.data import FeatureSet
from dermeval.model.evaluator import Evaluator
from dermeval.model.fit import EXPERT_SOURCE, fit_claim_thresholds
from dermeval.model.train import Targets, labelled_problems
from dermeval.params import load_params
from dermeval.problems import PROBLEM_NAMES

REPO = Path(__file__).resolve().parents[1]


def _precision(right: list[bool]) -> dict:
    return {"claims": len(right), "precision": round(float(np.mean(right)), 4) if right else None}


def measure(params_path: Path, model: Path) -> dict:
    params = load_params(params_path)
    data = params.data
    rows_by_id = {r["id"]: r for _, r in iter_jsonl(Path(data.prepared) / "records.jsonl")}
    splits = json.loads(Path(data.splits).read_text("utf-8"))
    fs = FeatureSet.load(Path(data.features) / "features.npz")
    evaluator = Evaluator.load(model)
    rows = [rows_by_id[i] for i in fs.ids]
    categories = sorted({str(r["category"]) for r in rows if r.get("category")})
    targets = Targets.from_rows(rows, list(PROBLEM_NAMES), categories)
    if targets.defect_names != evaluator.defect_names:
        raise SystemExit("bench_claims: the model's problem names differ from the data's: rerun `dvc repro`")
    split = np.array([splits.get(i, "") for i in fs.ids])
    calib, test = np.flatnonzero(split == "calib"), np.flatnonzero(split == "test")
    probs = evaluator.predict(fs, calib)["defect_probs"]
    raw = {"defect_logits": np.log(np.clip(probs, 1e-12, 1)) - np.log(np.clip(1 - probs, 1e-12, 1))}
    sources = np.array([str(rows[i].get("source", "")) for i in calib])
    cases = np.array([str(rows[i].get("case_id") or rows[i]["id"]) for i in calib])
    trained = evaluator.meta.get("train", {})  # the precision and margin the model was fitted with
    cfg = params.train.with_(**{k: trained[k] for k in ("claim_precision", "claim_margin") if k in trained})
    rules = {"strictest source": fit_claim_thresholds(raw, targets, calib, cfg, sources),
             "per style": fit_claim_thresholds(raw, targets, calib, cfg, sources, sources == EXPERT_SOURCE),
             "per style, by case": fit_claim_thresholds(raw, targets, calib, cfg, sources, sources == EXPERT_SOURCE,
                                                        cases)}
    pred = evaluator.predict(fs, test)
    out = {"model": str(model), "claim_precision": cfg.claim_precision, "claim_margin": cfg.claim_margin,
           "calib_rows": len(calib), "test_rows": len(test), "rules": {}}
    for name, thresholds in rules.items():
        by_source, by_problem, overall = defaultdict(list), defaultdict(lambda: defaultdict(list)), []
        for k, i in enumerate(test):
            truth = labelled_problems(rows[i])
            if truth is None:
                continue
            made = claimed(dict(zip(evaluator.defect_names, pred["defect_probs"][k].tolist(), strict=True)),
                           row_thresholds(thresholds, pred, k))
            src = str(rows[i].get("source", ""))
            for c in made:
                by_source[src].append(c in truth)
                by_problem[src][c].append(c in truth)
                overall.append(c in truth)
        out["rules"][name] = {"all": _precision(overall), "by_source": {s: _precision(v) for s, v in by_source.items()},
                              "by_problem": {s: {c: _precision(v) for c, v in sorted(p.items())}
                                             for s, p in by_problem.items()},
                              "thresholds": thresholds}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--model", default=None, help="default: params.yaml's data.model")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "claims.json"))
    args = ap.parse_args()
    t = time.perf_counter()
    model = Path(args.model or load_params(args.params).data.model)
    res = measure(Path(args.params), model)
    res["seconds"] = round(time.perf_counter() - t, 1)
    for name, r in res["rules"].items():
        src = ", ".join(f"{s} {v['precision']} of {v['claims']}" for s, v in r["by_source"].items())
        print(f"{name}: {r['all']['precision']} of {r['all']['claims']} claims ({src})")
    write_json(args.out, res)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
