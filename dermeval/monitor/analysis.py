"""Trust summaries (per MLLM, batch and dimension) and drift (Evidently) of one batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dermeval.params import MonitorParams
from dermeval.schema import DIMENSIONS

SCORE_COLUMNS = (*DIMENSIONS, "overall")
DESCRIPTORS = ("words", "hedges", "referral_mentions")


def _boot_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return values[rng.integers(len(values), size=(n_boot, len(values)))].mean(1)


def trust_summaries(scores: pd.DataFrame, *, safety_floor: float, n_boot: int = 200, seed: int = 0
                    ) -> list[dict[str, Any]]:
    """Rows of (model, dimension): mean, 95% CI, review and unsafe shares, rank and its stability.

    Ranks are 1 = best mean on that dimension in this batch; the stability is the share of
    bootstrap resamples (narratives resampled within each MLLM) that give the same rank.
    """
    rng = np.random.default_rng(seed)
    out = []
    models = sorted(scores["model"].unique())
    for dim in SCORE_COLUMNS:
        means, boots = {}, {}
        for m in models:
            sub = scores[scores["model"] == m]
            v = sub[dim].to_numpy(float)
            means[m] = float(v.mean())
            boots[m] = _boot_means(v, n_boot, rng) if len(v) > 1 else np.full(n_boot, v.mean())
        order = sorted(models, key=lambda m: -means[m])
        rank = {m: i + 1 for i, m in enumerate(order)}
        boot_matrix = np.stack([boots[m] for m in models])  # models x n_boot
        boot_ranks = (-boot_matrix).argsort(0).argsort(0) + 1
        for i, m in enumerate(models):
            sub = scores[scores["model"] == m]
            lo, hi = np.percentile(boots[m], [2.5, 97.5])
            out.append({"model": m, "dimension": dim, "n": int(len(sub)), "mean": round(means[m], 4),
                        "ci_low": round(float(lo), 4), "ci_high": round(float(hi), 4),
                        "share_needs_review": round(float(sub["needs_review"].mean()), 4),
                        "share_below_safety_floor": round(float((sub["safety"] < safety_floor).mean()), 4),
                        "rank": rank[m], "rank_stability": round(float((boot_ranks[i] == rank[m]).mean()), 3)})
    return out


def _frame(narratives: pd.DataFrame, pcs: np.ndarray, models: list[str]) -> pd.DataFrame:
    """One row per narrative; per-MLLM score columns hold NaN for the other MLLMs' rows;
    the skin-tone column holds one value per case (its first narrative)."""
    cols: dict[str, Any] = {c: narratives[c].to_numpy(float) for c in (*SCORE_COLUMNS, *DESCRIPTORS)}
    for m in models:
        mine = (narratives["model"] == m).to_numpy()
        for d in SCORE_COLUMNS:
            cols[f"{d}@{m}"] = np.where(mine, narratives[d].to_numpy(float), np.nan)
    for k in range(pcs.shape[1]):
        cols[f"embedding_pc{k + 1}"] = pcs[:, k]
    first = ~narratives["case_id"].duplicated().to_numpy()
    cols["skin_lightness"] = np.where(first, narratives["skin_lightness"].to_numpy(float), np.nan)
    return pd.DataFrame(cols)


def _kind(column: str) -> tuple[str, str, str | None]:
    """(kind, feature, model) of a drift column."""
    if column == "skin_lightness":
        return "image", column, None
    if column.startswith("embedding_pc"):
        return "embedding", column, None
    if column in DESCRIPTORS:
        return "descriptor", column, None
    if "@" in column:
        feature, model = column.split("@", 1)
        return "score", feature, model
    return "score", column, None


def drift(reference: pd.DataFrame, current: pd.DataFrame, ref_emb: np.ndarray, cur_emb: np.ndarray, *,
          p_threshold: float, min_score_shift: float, min_std_shift: float, html: Path | None = None,
          n_components: int = 3) -> list[dict[str, Any]]:
    """Evidently ValueDrift (two-sample KS) per feature, plus an effect-size floor.

    A feature counts as drifted when Evidently's KS p-value is below ``p_threshold`` and the
    mean moved by at least ``min_score_shift`` (score dimensions) or ``min_std_shift``
    reference standard deviations (descriptors, narrative-embedding components, skin tone).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    models = sorted(set(reference["model"]) | set(current["model"]))
    mu = ref_emb.mean(0)
    _, _, vt = np.linalg.svd(ref_emb - mu, full_matrices=False)
    basis = vt[:n_components].T
    ref_df = _frame(reference, (ref_emb - mu) @ basis, models)
    cur_df = _frame(current, (cur_emb - mu) @ basis, models)
    columns = [c for c in ref_df.columns if ref_df[c].notna().sum() >= 5 and cur_df[c].notna().sum() >= 5]
    definition = DataDefinition(numerical_columns=columns)
    report = Report([ValueDrift(column=c, method="ks", threshold=p_threshold) for c in columns])
    snap = report.run(Dataset.from_pandas(cur_df[columns], data_definition=definition),
                      Dataset.from_pandas(ref_df[columns], data_definition=definition))
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        snap.save_html(str(html))
    pvalues = {m["config"]["column"]: float(m["value"]) for m in snap.dict()["metrics"]}
    out = []
    for c in columns:
        kind, feature, model = _kind(c)
        r, k = ref_df[c].dropna(), cur_df[c].dropna()
        shift = float(k.mean() - r.mean())
        floor = min_score_shift if kind == "score" else min_std_shift * float(r.std(ddof=1) or 1e-9)
        p = pvalues[c]
        out.append({"kind": kind, "feature": feature, "model": model, "method": "ks", "statistic": p,
                    "threshold": p_threshold, "drifted": bool(p < p_threshold and abs(shift) >= floor),
                    "reference_mean": round(float(r.mean()), 4), "current_mean": round(float(k.mean()), 4)})
    return out


def alerts_for(batch_id: str, drift_rows: list[dict[str, Any]], trust: list[dict[str, Any]],
              reference_trust: list[dict[str, Any]], p: MonitorParams) -> list[dict[str, Any]]:
    """Alerts for a batch: drifted features, a trust drop beyond ``p.trust_drop`` whose CI clears the
    reference mean, a share of narratives under the safety floor well above the reference's."""
    alerts = []
    for d in drift_rows:
        if d["drifted"]:
            who = f" for {d['model']}" if d["model"] else ""
            alerts.append({"batch_id": batch_id, "kind": "drift", "model": d["model"], "feature": d["feature"],
                           "value": d["current_mean"], "threshold": d["reference_mean"],
                           "message": f"{d['kind']} drift{who}: {d['feature']} mean {d['reference_mean']:.3f} -> "
                                      f"{d['current_mean']:.3f} (KS p={d['statistic']:.2g})"})
    ref = {(t["model"], t["dimension"]): t for t in reference_trust}
    for t in trust:
        r = ref.get((t["model"], t["dimension"]))
        if r is None:
            continue
        if t["mean"] < r["mean"] - p.trust_drop and t["ci_high"] < r["mean"]:
            alerts.append({"batch_id": batch_id, "kind": "trust_drop", "model": t["model"], "feature": t["dimension"],
                           "value": t["mean"], "threshold": r["mean"] - p.trust_drop,
                           "message": f"trust drop for {t['model']}: {t['dimension']} {r['mean']:.2f} -> "
                                      f"{t['mean']:.2f} (95% CI {t['ci_low']:.2f}-{t['ci_high']:.2f})"})
        if (t["dimension"] == "safety" and t["share_below_safety_floor"] > p.unsafe_share_alert
                and t["share_below_safety_floor"] > r["share_below_safety_floor"] + 0.1):
            alerts.append({"batch_id": batch_id, "kind": "unsafe_share", "model": t["model"], "feature": "safety",
                           "value": t["share_below_safety_floor"], "threshold": p.unsafe_share_alert,
                           "message": f"{t['model']}: {t['share_below_safety_floor']:.0%} of narratives under the "
                                      f"safety floor {p.safety_floor} (reference "
                                      f"{r['share_below_safety_floor']:.0%})"})
    return alerts
