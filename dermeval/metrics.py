"""Agreement between predicted and expert ratings: one module for evaluator, judge and pipeline.

Each metric is registered with its direction (``higher_is_better``), so a promotion gate
or a report can tell an improvement from a regression without knowing the metric.
Every metric comes with a percentile-bootstrap 95% CI (cases resampled with replacement).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from dermeval.schema import DIMENSIONS

Array = np.ndarray


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Array, Array], float]
    higher_is_better: bool
    description: str


def _mae(y: Array, p: Array) -> float:
    return float(np.mean(np.abs(p - y)))


def _rmse(y: Array, p: Array) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2)))


def _corr(kind: str) -> Callable[[Array, Array], float]:
    fn = {"pearson": stats.pearsonr, "spearman": stats.spearmanr, "kendall": stats.kendalltau}[kind]

    def inner(y: Array, p: Array) -> float:
        if np.ptp(y) == 0 or np.ptp(p) == 0:
            return float("nan")
        return float(fn(y, p)[0])

    return inner


def _qwk(y: Array, p: Array) -> float:
    """Quadratic weighted kappa on 0.5-step bins (11 categories over 0-5)."""
    a = np.clip(np.rint(y * 2), 0, 10).astype(int)
    b = np.clip(np.rint(p * 2), 0, 10).astype(int)
    k = 11
    observed = np.zeros((k, k))
    np.add.at(observed, (a, b), 1)
    expected = np.outer(np.bincount(a, minlength=k), np.bincount(b, minlength=k)) / len(a)
    w = (np.subtract.outer(np.arange(k), np.arange(k)) ** 2) / (k - 1) ** 2
    denom = (w * expected).sum()
    return float(1 - (w * observed).sum() / denom) if denom > 0 else float("nan")


def _icc_a1(y: Array, p: Array) -> float:
    """ICC(A,1): two-way random effects, absolute agreement, single rater (McGraw & Wong)."""
    x = np.stack([y, p], axis=1)
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(0) - grand) ** 2).sum() / (k - 1)
    sse = ((x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / denom) if denom > 0 else float("nan")


def _ba_bias(y: Array, p: Array) -> float:
    return float(np.mean(p - y))


def _ba_loa(sign: int) -> Callable[[Array, Array], float]:
    def inner(y: Array, p: Array) -> float:
        d = p - y
        return float(d.mean() + sign * 1.96 * d.std(ddof=1))

    return inner


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mae", _mae, False, "mean absolute deviation from experts (the paper's deviation)"),
    Metric("rmse", _rmse, False, "root mean squared error"),
    Metric("pearson", _corr("pearson"), True, "Pearson correlation"),
    Metric("spearman", _corr("spearman"), True, "Spearman rank correlation"),
    Metric("kendall", _corr("kendall"), True, "Kendall tau-b"),
    Metric("qwk", _qwk, True, "quadratic weighted kappa on 0.5-step bins"),
    Metric("icc_a1", _icc_a1, True, "ICC(A,1), absolute agreement"),
    # Bland-Altman: the bias is best near 0; it is reported, and its absolute value gated.
    Metric("ba_bias", _ba_bias, False, "Bland-Altman mean difference (predicted - expert)"),
    Metric("ba_loa_low", _ba_loa(-1), True, "Bland-Altman lower 95% limit of agreement"),
    Metric("ba_loa_high", _ba_loa(+1), False, "Bland-Altman upper 95% limit of agreement"),
)}


def agreement(y: Sequence[float] | Array, p: Sequence[float] | Array, *, n_boot: int = 1000,
              seed: int = 0, groups: Sequence | None = None,
              metrics: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Every metric with a bootstrap 95% CI: ``{name: {"value", "ci_low", "ci_high"}}``.

    With ``groups`` (e.g. case ids) the bootstrap resamples whole groups, so the several
    narratives of one case move together.
    """
    y, p = np.asarray(y, float), np.asarray(p, float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"expected two 1-d arrays of equal length, got {y.shape} and {p.shape}")
    chosen = {n: METRICS[n] for n in (metrics or METRICS)}
    with np.errstate(all="ignore"):
        out = {name: {"value": m.fn(y, p) if len(y) > 1 else float("nan")} for name, m in chosen.items()}
    if len(y) < 3 or n_boot <= 0:
        return {k: {**v, "ci_low": float("nan"), "ci_high": float("nan")} for k, v in out.items()}
    rng = np.random.default_rng(seed)
    if groups is not None:
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
        samples = [np.concatenate([members[g] for g in rng.integers(len(members), size=len(members))])
                   for _ in range(n_boot)]
    else:
        samples = [rng.integers(len(y), size=len(y)) for _ in range(n_boot)]
    for name, m in chosen.items():
        with np.errstate(all="ignore"):
            vals = np.array([m.fn(y[s], p[s]) for s in samples])
        vals = vals[np.isfinite(vals)]
        lo, hi = (np.percentile(vals, [2.5, 97.5]) if len(vals) else (np.nan, np.nan))
        out[name].update(ci_low=float(lo), ci_high=float(hi))
    return out


def mean_ci(values: Sequence[float] | np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean with a bootstrap 95% CI (NaN bounds for fewer than three values)."""
    v = np.asarray(values, float)
    if len(v) == 0:
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    out = {"value": float(v.mean()), "n": int(len(v))}
    if len(v) < 3 or n_boot <= 0:
        return {**out, "ci_low": float("nan"), "ci_high": float("nan")}
    rng = np.random.default_rng(seed)
    means = v[rng.integers(len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {**out, "ci_low": float(lo), "ci_high": float(hi)}


def overall_score(scores: Mapping[str, Array]) -> np.ndarray:
    """The overall score of each row: the mean of the six dimensions."""
    return np.mean([np.asarray(scores[d], float) for d in DIMENSIONS], axis=0)


def dimension_table(expert: Mapping[str, Array], predicted: Mapping[str, Array], **kw) -> dict[str, dict]:
    """Agreement per dimension and for the overall score (mean of the six)."""
    table = {d: agreement(expert[d], predicted[d], **kw) for d in DIMENSIONS}
    table["overall"] = agreement(overall_score(expert), overall_score(predicted), **kw)
    return table


def inter_rater_ceiling(raters: Mapping[str, Mapping[str, Array]], **kw) -> dict[str, dict]:
    """Each rater against the mean of the others, averaged over raters: the ceiling a model can reach."""
    ids = sorted(raters)
    if len(ids) < 2:
        raise ValueError("the inter-rater ceiling needs at least two raters")
    per_rater = []
    for r in ids:
        others = {d: np.mean([raters[o][d] for o in ids if o != r], axis=0) for d in DIMENSIONS}
        per_rater.append(dimension_table(others, raters[r], **kw))
    return {dim: {m: {k: float(np.nanmean([t[dim][m][k] for t in per_rater])) for k in per_rater[0][dim][m]}
                  for m in per_rater[0][dim]} for dim in per_rater[0]}


def mean_baseline(train_expert: Mapping[str, Array], test_expert: Mapping[str, Array], **kw) -> dict[str, dict]:
    """Agreement of a predictor that always answers the training mean of each dimension."""
    predicted = {d: np.full(len(test_expert[d]), float(np.mean(train_expert[d]))) for d in DIMENSIONS}
    return dimension_table(test_expert, predicted, **kw)


def slices(expert: Mapping[str, Array], predicted: Mapping[str, Array], keys: Sequence, *,
           min_size: int = 5, **kw) -> dict[str, dict]:
    """MAE (with CI) per dimension and overall within each slice value (category, skin type, model)."""
    keys = np.asarray([str(k) for k in keys])
    groups = kw.pop("groups", None)
    out = {}
    for value in sorted(set(keys)):
        idx = np.flatnonzero(keys == value)
        if len(idx) < min_size:
            continue
        sub_e = {d: np.asarray(expert[d])[idx] for d in DIMENSIONS}
        sub_p = {d: np.asarray(predicted[d])[idx] for d in DIMENSIONS}
        sub_g = None if groups is None else np.asarray(groups)[idx]
        table = dimension_table(sub_e, sub_p, metrics=("mae",), groups=sub_g, **kw)
        out[value] = {"n": int(len(idx)), **{d: table[d]["mae"] for d in table}}
    return out
