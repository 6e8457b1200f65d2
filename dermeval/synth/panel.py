"""The simulated expert panel: a stated labelling rule, then three noisy, biased raters.

Labelling rule (the "truth" of a candidate):
    true[d] = clip(quality[d] + sum over applied defects of effect[d] * strength, 0, 5)
where ``quality[d]`` is the case's clean-narrative quality, ~N(4.6, 0.1) capped at 5,
and an empty narrative is 0 on every dimension.

Each rater r reports ``round_to_half(true[d] + bias[r][d] + N(0, noise[r]))`` clipped to
0-5; the consensus is the mean of the raters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dermeval.schema import DIMENSIONS, TITLES
from dermeval.synth.defects import OPERATORS, Applied, CaseContext


@dataclass(frozen=True)
class Rater:
    id: str
    bias: dict[str, float]
    noise: float


def default_panel(seed: int) -> list[Rater]:
    """Three raters: one lenient, one strict, one close to neutral but noisier."""
    rng = np.random.default_rng([seed, 7001])
    centres, noises = (0.15, -0.2, 0.0), (0.2, 0.25, 0.3)
    return [Rater(f"rater_{i + 1}", {d: round(float(c + rng.normal(0, 0.05)), 3) for d in DIMENSIONS}, n)
            for i, (c, n) in enumerate(zip(centres, noises, strict=True))]


def clean_quality(rng: np.random.Generator) -> dict[str, float]:
    return {d: float(min(5.0, rng.normal(4.6, 0.1))) for d in DIMENSIONS}


def true_scores(quality: dict[str, float], applied: list[Applied], ctx: CaseContext) -> dict[str, float]:
    if any(a.name == "empty" for a in applied):
        return {d: 0.0 for d in DIMENSIONS}
    out = dict(quality)
    for a in applied:
        for d, delta in OPERATORS[a.name].effect(ctx, a.strength).items():
            out[d] += delta
    return {d: round(float(np.clip(v, 0.0, 5.0)), 4) for d, v in out.items()}


def rate(truth: dict[str, float], panel: list[Rater], rng: np.random.Generator) -> dict[str, dict[str, float]]:
    """Each rater's six scores in 0.5 steps."""
    out = {}
    for r in panel:
        out[r.id] = {d: float(np.clip(np.round((truth[d] + r.bias[d] + rng.normal(0, r.noise)) * 2) / 2, 0, 5))
                     for d in DIMENSIONS}
    return out


def consensus(ratings: dict[str, dict[str, float]]) -> dict[str, float]:
    return {d: round(float(np.mean([r[d] for r in ratings.values()])), 4) for d in DIMENSIONS}


def rationale(applied: list[Applied], ctx: CaseContext) -> dict[str, str]:
    """A short reason per dimension, naming the defects that cost points there."""
    out = {}
    for d in DIMENSIONS:
        costs = [(a.name, OPERATORS[a.name].effect(ctx, a.strength).get(d, 0.0)) for a in applied]
        costs = [(n, c) for n, c in costs if c < -0.05]
        if not costs:
            out[d] = f"No {TITLES[d].lower()} problems found."
        else:
            out[d] = f"{TITLES[d]} lowered by " + ", ".join(f"{n.replace('_', ' ')} ({c:+.1f})" for n, c in costs) + "."
    return out


def panel_statistics(rows: list[dict]) -> dict[str, object]:
    """Measured rater behaviour on a set of rated rows: bias and noise against the truth,
    and inter-rater agreement (mean absolute difference and Pearson r between raters)."""
    raters = sorted(rows[0]["raters"]) if rows else []
    truth = np.array([[r["truth"]["true_scores"][d] for d in DIMENSIONS] for r in rows])
    given = {k: np.array([[r["raters"][k][d] for d in DIMENSIONS] for r in rows]) for k in raters}
    # Away from the 0 and 5 walls, where clipping would hide a rater's bias.
    inside = (truth > 0.5) & (truth < 4.5)
    per_rater = {k: {"bias": round(float((g - truth)[inside].mean()), 3),
                     "noise_sd": round(float((g - truth)[inside].std()), 3)} for k, g in given.items()}
    pairs = {}
    for i, a in enumerate(raters):
        for b in raters[i + 1:]:
            pairs[f"{a}~{b}"] = {"mad": round(float(np.abs(given[a] - given[b]).mean()), 3),
                                 "pearson": round(float(np.corrcoef(given[a].ravel(), given[b].ravel())[0, 1]), 3)}
    return {"n": len(rows), "raters": per_rater, "pairs": pairs}
