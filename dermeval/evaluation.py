"""The evaluation report of an evaluator on held-out rated narratives.

Agreement per dimension and overall (with CIs), the predict-the-training-mean baseline,
the inter-rater ceiling, slices (category, skin type, candidate model), and the tables
behind the plots (predicted vs expert, calibration curves, deviation per slice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dermeval.metrics import (
    METRICS,
    agreement,
    dimension_table,
    inter_rater_ceiling,
    mean_baseline,
    mean_ci,
    overall_score,
    slices,
)
from dermeval.schema import DIMENSIONS, FEEDBACK_SOURCE

PAPER_DERMEVAL_MAE = 0.117
PAPER_JUDGE_MAE = 0.251


def _by_dim(rows: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {d: np.array([r["scores"][d] for r in rows], float) for d in DIMENSIONS}


def _raters(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]] | None:
    ids = sorted({k for r in rows for k in (r.get("raters") or {})})
    if len(ids) < 2 or any(set(r.get("raters") or {}) != set(ids) for r in rows):
        return None
    return {k: {d: np.array([r["raters"][k][d] for r in rows], float) for d in DIMENSIONS} for k in ids}


def evaluation_report(test_rows: Sequence[dict[str, Any]], predicted: dict[str, np.ndarray],
                      train_rows: Sequence[dict[str, Any]], *, n_boot: int = 1000, slice_min_size: int = 5,
                      safety_floor: float | None = None) -> dict[str, Any]:
    """Everything the pipeline reports about one evaluator on one test set."""
    expert = _by_dim(test_rows)
    groups = [str(r.get("case_id") or r["id"]) for r in test_rows]
    kw = {"n_boot": n_boot, "groups": groups}
    report: dict[str, Any] = {
        "n": len(test_rows), "n_cases": len(set(groups)),
        "directions": {m.name: "higher" if m.higher_is_better else "lower" for m in METRICS.values()},
        "evaluator": dimension_table(expert, predicted, **kw),
        # The overall score as DermEval prints it (``Overall Score: 4.1``): one decimal. Clean
        # narratives then tie instead of being ranked by noise the panel cannot see either.
        "overall_reported": reported_overall(expert, predicted, **kw),
        "baseline_mean": mean_baseline(_by_dim(train_rows), expert, **kw),
        "paper": {"dermeval_mae": PAPER_DERMEVAL_MAE, "judge_mae": PAPER_JUDGE_MAE},
    }
    if safety_floor is not None:
        report["unsafe"] = unsafe_recall(expert, predicted, safety_floor, n_boot=n_boot)
    raters = _raters(test_rows)
    if raters:
        report["inter_rater_ceiling"] = inter_rater_ceiling(raters, n_boot=0)
    expert_rows = [i for i, r in enumerate(test_rows) if r.get("source") == FEEDBACK_SOURCE]
    if expert_rows:  # narratives rated by the team's own reviewers: they outrank the simulated panel
        sub = [test_rows[i] for i in expert_rows]
        report["expert"] = {"n": len(sub), "n_cases": len({groups[i] for i in expert_rows}),
                            "evaluator": dimension_table(_by_dim(sub), {d: np.asarray(v)[expert_rows]
                                                                        for d, v in predicted.items()},
                                                         n_boot=n_boot, groups=[groups[i] for i in expert_rows])}
    report["slices"] = {}
    for key, label in (("category", "category"), ("fitzpatrick", "skin_type"), ("model", "candidate_model")):
        keys = [r.get(key) for r in test_rows]
        if any(k is not None for k in keys):
            report["slices"][label] = slices(expert, predicted, keys, min_size=slice_min_size,
                                             n_boot=min(n_boot, 200), groups=groups)
    return report


def unsafe_recall(expert: dict[str, np.ndarray], predicted: dict[str, np.ndarray], floor: float, *,
                  n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Of the narratives the panel rates unsafe (Safety under ``floor``), the share the evaluator also puts
    under it: a clinical check the deviation alone hides (an evaluator can be close on average and miss
    the unsafe ones)."""
    unsafe = np.asarray(expert["safety"]) < floor
    caught = mean_ci(np.asarray(predicted["safety"])[unsafe] < floor, n_boot, seed)
    return {"floor": floor, "n_unsafe": caught["n"], "recall": caught["value"],
            "ci_low": caught["ci_low"], "ci_high": caught["ci_high"]}


def reported_overall(expert: dict[str, np.ndarray], predicted: dict[str, np.ndarray], **kw) -> dict[str, Any]:
    """Agreement of the one-decimal overall score (the critique's last line) with the panel's overall."""
    return agreement(overall_score(expert), np.round(overall_score(predicted), 1), **kw)


def headline(report: dict[str, Any]) -> dict[str, float]:
    """The flat metrics for ``dvc metrics`` and the promotion gate."""
    ev, base = report["evaluator"], report["baseline_mean"]
    out = {"n_test": report["n"], "overall_mae": ev["overall"]["mae"]["value"],
           "overall_spearman": ev["overall"]["spearman"]["value"],
           "baseline_overall_mae": base["overall"]["mae"]["value"]}
    if "overall_reported" in report:
        out["overall_reported_mae"] = report["overall_reported"]["mae"]["value"]
        out["overall_reported_spearman"] = report["overall_reported"]["spearman"]["value"]
    out.update({f"mae_{d}": ev[d]["mae"]["value"] for d in DIMENSIONS})
    out["mean_dimension_mae"] = float(np.mean([ev[d]["mae"]["value"] for d in DIMENSIONS]))
    if "unsafe" in report and report["unsafe"]["recall"] == report["unsafe"]["recall"]:
        out["unsafe_recall"] = report["unsafe"]["recall"]
        out["n_unsafe"] = report["unsafe"]["n_unsafe"]
    if "inter_rater_ceiling" in report:
        out["ceiling_overall_mae"] = report["inter_rater_ceiling"]["overall"]["mae"]["value"]
    return {k: round(float(v), 4) for k, v in out.items()}


def side_by_side(dermeval: dict[str, Any], judge: dict[str, Any]) -> list[dict[str, Any]]:
    """DermEval (reference-free) next to the DermBench judge (reference-based), per dimension, like the paper."""
    rows = []
    for d in (*DIMENSIONS, "overall"):
        e, j = dermeval["evaluator"][d], judge["evaluator"][d]
        rows.append({"dimension": d,
                     "dermeval_mae": round(e["mae"]["value"], 4), "judge_mae": round(j["mae"]["value"], 4),
                     "dermeval_spearman": round(e["spearman"]["value"], 4),
                     "judge_spearman": round(j["spearman"]["value"], 4)})
    return rows


def plot_tables(test_rows: Sequence[dict[str, Any]], predicted: dict[str, np.ndarray], report: dict[str, Any],
                bins: int = 10) -> dict[str, list[dict[str, Any]]]:
    """Rows for DVC plots: predicted vs expert, calibration curves, deviation per slice."""
    scatter = [{"id": r["id"], "dimension": d, "expert": round(float(r["scores"][d]), 3),
                "predicted": round(float(predicted[d][i]), 3)}
               for i, r in enumerate(test_rows) for d in DIMENSIONS]
    calibration = []
    for d in DIMENSIONS:
        p, y = predicted[d], np.array([r["scores"][d] for r in test_rows])
        edges = np.linspace(0, 5, bins + 1)
        which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
        for b in range(bins):
            m = which == b
            if m.any():
                calibration.append({"dimension": d, "bin_mid": round(float((edges[b] + edges[b + 1]) / 2), 2),
                                    "mean_predicted": round(float(p[m].mean()), 3),
                                    "mean_expert": round(float(y[m].mean()), 3), "n": int(m.sum())})
    per_slice = [{"slice": f"{kind}={value}", "kind": kind, "overall_mae": round(v["overall"]["value"], 4),
                  "n": v["n"]}
                 for kind, table in report["slices"].items() for value, v in table.items()]
    return {"predicted_vs_expert": scatter, "calibration": calibration, "slice_deviation": per_slice}


SLICE_KEYS = {"category": "category", "skin_type": "fitzpatrick", "candidate_model": "model", "source": "source"}


def paired_difference(diff: np.ndarray, groups: Sequence, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean of per-row differences with a case-resampling bootstrap 95% CI.

    The rows of one case move together: each resample draws whole cases with replacement and
    takes the row-weighted mean, so the CI reflects how many independent cases back the figure.
    """
    diff = np.asarray(diff, float)
    out: dict[str, Any] = {"n": int(len(diff)), "value": float(diff.mean()) if len(diff) else float("nan")}
    _, inverse = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(diff) else 0
    out["n_cases"] = n_groups
    if n_groups < 3 or n_boot <= 0:
        return {**out, "ci_low": float("nan"), "ci_high": float("nan")}
    sums = np.bincount(inverse, weights=diff, minlength=n_groups)
    sizes = np.bincount(inverse, minlength=n_groups).astype(float)
    draws = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)
    means = (draws @ sums) / (draws @ sizes)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {**out, "ci_low": float(lo), "ci_high": float(hi)}


def paired_comparison(rows: Sequence[dict[str, Any]], challenger: dict[str, np.ndarray],
                      champion: dict[str, np.ndarray], *, n_boot: int = 1000, safety_floor: float | None = None,
                      slice_kinds: Sequence[str] = ("category", "skin_type", "candidate_model"),
                      slice_min_n: int = 60, seed: int = 0) -> dict[str, Any]:
    """Challenger minus champion on the same rated rows: the absolute-error difference per dimension,
    overall and per slice, and the difference in unsafe-narrative recall, each with a 95% CI.

    Positive error differences mean the challenger deviates more from the panel. Every figure
    is paired (both evaluators scored the very same narratives), so case-to-case difficulty
    cancels out and a small real regression is not hidden by the spread between test sets.
    """
    expert = _by_dim(rows)
    groups = [str(r.get("case_id") or r["id"]) for r in rows]

    def errors(pred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        err = {d: np.abs(np.asarray(pred[d], float) - expert[d]) for d in DIMENSIONS}
        err["overall"] = np.abs(overall_score(pred) - overall_score(expert))
        return err

    mine, theirs = errors(challenger), errors(champion)
    diff = {k: mine[k] - theirs[k] for k in mine}
    report: dict[str, Any] = {
        "n": len(rows), "n_cases": len(set(groups)), "measure": "absolute error, challenger - champion",
        "mae": {k: {"challenger": float(mine[k].mean()), "champion": float(theirs[k].mean())} for k in mine},
        "difference": {k: paired_difference(v, groups, n_boot=n_boot, seed=seed) for k, v in diff.items()},
        "slices": {},
    }
    for kind in slice_kinds:
        keys = np.asarray([str(r.get(SLICE_KEYS[kind])) for r in rows])
        if all(r.get(SLICE_KEYS[kind]) is None for r in rows):
            continue
        table = {}
        for value in sorted(set(keys)):
            idx = np.flatnonzero(keys == value)
            if len(idx) < slice_min_n:
                continue
            table[value] = paired_difference(diff["overall"][idx], [groups[i] for i in idx], n_boot=n_boot,
                                             seed=seed)
        report["slices"][kind] = table
    if safety_floor is not None:
        unsafe = expert["safety"] < safety_floor
        caught_mine = (np.asarray(challenger["safety"], float) < safety_floor)[unsafe].astype(float)
        caught_theirs = (np.asarray(champion["safety"], float) < safety_floor)[unsafe].astype(float)
        g = [groups[i] for i in np.flatnonzero(unsafe)]
        recall = paired_difference(caught_mine - caught_theirs, g, n_boot=n_boot, seed=seed)
        report["unsafe_recall"] = {**recall, "floor": safety_floor,
                                   "challenger": float(caught_mine.mean()) if len(g) else float("nan"),
                                   "champion": float(caught_theirs.mean()) if len(g) else float("nan")}
    return report


def paired_rows(paired: dict[str, Any]) -> list[dict[str, Any]]:
    """A :func:`paired_comparison` (with the gate's ``sets`` and ``stress`` added) as table rows, in reading
    order: each dimension and overall, unsafe recall, the generated sets, the stress suite.

    ``check`` is the name the gate gives the figure's check (before " vs champion"); ``share`` says
    the figure is a share of narratives (recall, directional accuracy) rather than an error.
    """
    def row(figure: str, check: str, share: bool, fig: dict[str, Any], mine: float, theirs: float) -> dict:
        return {"figure": figure, "check": check, "share": share, "challenger": mine, "champion": theirs,
                "difference": fig["value"], "ci_low": fig["ci_low"], "ci_high": fig["ci_high"]}

    rows = [row(f"{k} MAE", k, False, fig, paired["mae"][k]["challenger"], paired["mae"][k]["champion"])
            for k, fig in paired["difference"].items()]
    u = paired.get("unsafe_recall")
    if u and u["n"]:
        rows.append(row(f"unsafe recall (Safety < {u['floor']}, n={u['n']})", "unsafe recall", True, u,
                        u["challenger"], u["champion"]))
    for name, block in (paired.get("sets") or {}).items():
        fig, m = block["difference"]["overall"], block["mae"]["overall"]
        rows.append(row(f"{name} overall MAE (n={fig['n']})", f"set {name}, overall", False, fig,
                        m["challenger"], m["champion"]))
    s = paired.get("stress")
    if s and s["n"]:
        rows.append(row(f"stress-suite directional accuracy (n={s['n']})", "stress-suite directional accuracy",
                        True, s, s["challenger"], s["champion"]))
    return rows
