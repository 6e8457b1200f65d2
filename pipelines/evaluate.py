"""Stage ``evaluate``: agreement of the trained evaluator with the expert panel on the test split."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dermeval.evaluation import evaluation_report, headline, plot_tables, side_by_side
from dermeval.formats.common import read_rows, write_csv
from dermeval.model.data import FeatureSet
from dermeval.model.evaluator import load_evaluator
from dermeval.params import load_params
from dermeval.schema import DIMENSIONS


def dvc_plot_files(tables: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The tables ``dvc plots`` draws from, one file per series (it tells series apart by file):
    a calibration curve per dimension and the diagonal, DermEval's and the judge's MAE per dimension."""
    out = {f"calibration_{d}": [{"mean_predicted": r["mean_predicted"], "mean_expert": r["mean_expert"]}
                                for r in tables["calibration"] if r["dimension"] == d] for d in DIMENSIONS}
    out["calibration_identity"] = [{"mean_predicted": x, "mean_expert": x} for x in (0.0, 5.0)]
    if "judge_vs_dermeval" in tables:
        for who in ("dermeval", "judge"):
            out[f"mae_{who}"] = [{"dimension": r["dimension"], "mae": r[f"{who}_mae"]}
                                 for r in tables["judge_vs_dermeval"]]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--records", required=True)
    ap.add_argument("--features", required=True)
    ap.add_argument("--splits", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--reports", required=True, help="folder for the evaluation report and plot tables")
    ap.add_argument("--metrics", required=True, help="flat metrics JSON for dvc metrics")
    ap.add_argument("--judge", help="the judge stage's agreement.json, for the side-by-side table")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    p = params.evaluate
    rows = {r["id"]: r for r in read_rows(args.records)}
    splits = json.loads(Path(args.splits).read_text("utf-8"))
    fs = FeatureSet.load(args.features)
    test_idx = [i for i, rid in enumerate(fs.ids) if splits.get(rid) == "test"]
    test_rows = [rows[fs.ids[i]] for i in test_idx]
    train_rows = [r for rid, r in rows.items() if splits.get(rid) == "train"]
    pred = load_evaluator(args.model).predict(fs, test_idx)
    predicted = {d: pred["scores"][:, j] for j, d in enumerate(DIMENSIONS)}
    report = evaluation_report(test_rows, predicted, train_rows, n_boot=p.n_boot, slice_min_size=p.slice_min_size,
                               safety_floor=params.monitor.safety_floor)
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    tables = plot_tables(test_rows, predicted, report)
    metrics = headline(report)
    if args.judge:
        judge = json.loads(Path(args.judge).read_text("utf-8"))
        report["judge_vs_dermeval"] = tables["judge_vs_dermeval"] = side_by_side(report, judge)
        jh = headline(judge)
        metrics.update(judge_overall_mae=jh["overall_mae"], judge_mean_dimension_mae=jh["mean_dimension_mae"],
                       judge_n_test=jh["n_test"])
    (out / "agreement.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    for name, table in tables.items():
        write_csv(out / f"{name}.csv", table)
    for name, table in dvc_plot_files(tables).items():  # one file per series: DVC draws one line or panel each
        write_csv(out / "plots" / f"{name}.csv", table)
    Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print("evaluate (simulated panel): " + ", ".join(f"{k}={v}" for k, v in metrics.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
