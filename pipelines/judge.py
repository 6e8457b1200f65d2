"""Stage ``judge``: the reference-based DermBench judge on the same test split as DermEval.

The local judge's calibration is fitted on every non-test rated narrative (the judge has
no early stopping, so train, val and calib all serve), then the test split is judged and
its agreement with the (simulated) expert panel computed with the shared metrics module.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dermeval.evaluation import evaluation_report, headline
from dermeval.features import FeatureStore, Featurizer
from dermeval.formats.candidates import CandidateNarrative
from dermeval.formats.common import read_rows, write_json, write_jsonl
from dermeval.judge import run as jr
from dermeval.judge.local import LocalJudge, fit_calibration
from dermeval.judge.references import load_references
from dermeval.params import load_params
from dermeval.schema import DIMENSIONS, dimension_key


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--records", required=True)
    ap.add_argument("--references", required=True, help="folder with the references (data/prepared)")
    ap.add_argument("--splits", required=True)
    ap.add_argument("--cache", required=True, help="sentence-embedding cache")
    ap.add_argument("--out", required=True, help="calibration JSON to write (local backend)")
    ap.add_argument("--reports", required=True, help="folder for judgements and agreement")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    p = params.judge
    rows = read_rows(args.records)
    splits = json.loads(Path(args.splits).read_text("utf-8"))
    refs = jr.index_references(load_references(args.references).records)
    rows = [r for r in rows if (r.get("case_id") or r["id"]) in refs]
    test = [r for r in rows if splits.get(r["id"]) == "test"]
    fit = [r for r in rows if splits.get(r["id"]) in ("train", "val", "calib")]

    def cands(rs: list[dict]) -> list[CandidateNarrative]:
        return [CandidateNarrative(id=r.get("case_id") or r["id"], model=r.get("model") or "unknown",
                                   candidate_text=r["diagnostic_text"]) for r in rs]

    if p.backend == "local":
        judge = LocalJudge(Featurizer(FeatureStore(args.cache)))
        fc = cands(fit)
        X, _, _ = judge.measure_pairs([c.candidate_text for c in fc], [refs[c.id].text for c in fc],
                                      [refs[c.id].diagnosis for c in fc])
        Y = np.array([[r["scores"][d] for d in DIMENSIONS] for r in fit])
        judge.calibration = fit_calibration(X, Y)
        judge.calibration.save(args.out)
        run = jr.judge_local(cands(test), refs, judge)
    else:
        from dermeval.judge.llm import OpenAIJudge, ResponseCache

        client = OpenAIJudge(p.base_url or "", p.model or "", api_key_env=p.api_key_env,
                             cache=ResponseCache(Path(args.cache).with_name("judge.sqlite")))
        run = jr.judge_remote(cands(test), refs, client, concurrency=p.concurrency)
        write_json(args.out, {"backend": "openai", "model": p.model, "prompt_version": "see dermeval.judge.llm"})
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "judgements.jsonl", run.rows)
    # Agreement on the rows the judge scored on every dimension (the others are counted, not imputed).
    keep = [i for i, j in enumerate(run.rows) if "scores" in j and not j.get("missing_metrics")]
    scored = [test[i] for i in keep]
    predicted = {d: np.array([{dimension_key(k): v for k, v in run.rows[i]["scores"].items()}[d] for i in keep])
                 for d in DIMENSIONS}
    report = evaluation_report(scored, predicted, fit, n_boot=params.evaluate.n_boot,
                               slice_min_size=params.evaluate.slice_min_size)
    report["judge"] = {"backend": p.backend, "model": p.model if p.backend == "openai" else "dermeval-local-judge",
                       "judged": run.judged, "errors": run.errors, "missing_metrics": run.missing_metrics,
                       "excluded_from_agreement": len(test) - len(keep)}
    write_json(out / "agreement.json", report)
    flat = headline(report)
    print(f"judge ({p.backend}, simulated panel): {run.summary()}; overall_mae={flat['overall_mae']}, "
          f"mean_dimension_mae={flat['mean_dimension_mae']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
