"""The structured critique: built only from what the model computed for this narrative.

Per dimension: the score, a justification (the detected issues that bear on it and the
sentences that drove it), and one improvement suggestion. Problems are named as the clinical
problem taxonomy (:mod:`dermeval.problems`) names them. Also rendered as text in the
line format the public DermEval score parser reads::

    Accuracy: 4.0 - <justification> Suggestion: <suggestion>
    ...
    Overall Score: 4.1
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dermeval.diagnosis import label
from dermeval.problems import PROBLEMS
from dermeval.schema import DIMENSIONS, TITLES

ISSUE_THRESHOLD = 0.5
MISMATCH_THRESHOLD = 0.25  # diagnosis check: below this agreement the conclusion does not fit the case
GENERIC = {
    "accuracy": "Support the diagnosis with the specific findings that distinguish it.",
    "safety": "Add explicit safety-netting: which changes should prompt medical review.",
    "medical_groundedness": "Tie each claim to a finding or to accepted clinical knowledge.",
    "clinical_coverage": "Cover findings, differentials, conclusion and management.",
    "reasoning_coherence": "Make each step follow from the previous one.",
    "description_precision": "Name morphology, colour, surface, border and distribution precisely.",
}


def _band(score: float) -> str:
    return "strong" if score >= 4.25 else "adequate" if score >= 3.25 else "weak" if score >= 1.75 else "poor"


def _snippet(s: str, n: int = 90) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


DISTINCT_MIN = 0.25  # an unquoted sentence is preferred while it draws this share of the peak attention


def evidence_order(attention: np.ndarray) -> list[list[int]]:
    """Per dimension, the sentences its critique quotes (best first). Each dimension leads with the
    most-attended sentence that no earlier dimension leads with, as long as that sentence draws at
    least DISTINCT_MIN of the dimension's peak attention; the six dimensions then point at the
    different sentences they read instead of the same one six times."""
    n = attention.shape[1] if attention.ndim == 2 else 0
    used: set[int] = set()
    out = []
    for j in range(attention.shape[0]):
        ranked = [int(k) for k in np.argsort(-attention[j])] if n else []
        fresh = [k for k in ranked if k not in used and attention[j, k] >= DISTINCT_MIN * attention[j, ranked[0]]]
        lead = fresh[0] if fresh else (ranked[0] if ranked else None)
        if lead is None:
            out.append([])
            continue
        used.add(lead)
        out.append([lead] + [k for k in ranked if k != lead][:1])
    return out


def claimed(defect_probs: dict[str, float], thresholds: dict[str, float] | None = None) -> set[str]:
    """The problems the critique states under "Detected:" (each lowers at least one dimension): those
    whose probability reaches the problem's claim threshold (calibrated per problem when the model
    was fitted, see :func:`claim_thresholds`; ISSUE_THRESHOLD without one)."""
    thresholds = thresholds or {}
    return {n for n, p in defect_probs.items()
            if n in PROBLEMS and PROBLEMS[n].dimensions and p >= thresholds.get(n, ISSUE_THRESHOLD)}


def claim_thresholds(probs: np.ndarray, labels: np.ndarray, names: list[str], precision: float,
                     min_claims: int = 10, groups: np.ndarray | None = None, margin: float = 0.0,
                     clusters: np.ndarray | None = None) -> dict[str, float]:
    """Per problem, the lowest probability from which claims reach ``precision`` on labelled held-out
    rows (the calibration split): the critique then says "Detected" only where it is right that
    often. ``margin`` (standard errors) asks the claims' precision to reach it by that much: the
    Wilson lower bound of the precision at ``margin`` standard errors must reach ``precision``, so a
    threshold where the claims reached it by the luck of a few rows is not taken (scanning every
    threshold for the lowest that reaches it favours exactly those). With ``groups`` (the rows'
    sources, e.g. DermSynth and real DermBench text) the claims must reach it in every group that
    holds enough of them: the strictest group's threshold. A problem that never reaches it gets a
    threshold above 1: it is never claimed (its probability still shows under ``issues``).
    Candidates start at ISSUE_THRESHOLD; a group needs ``min_claims`` claims at a threshold for it to
    count. ``clusters`` (the rows' cases): rows of one case are not independent (one terse reference
    makes every narrative written from it look vague), so the margin must also hold against the
    case-clustered standard error of the precision, whichever bound is lower."""
    groups = np.zeros(len(probs), int) if groups is None else np.asarray(groups)
    clusters = None if clusters is None else np.unique(np.asarray(clusters), return_inverse=True)[1]
    out = {}
    for j, n in enumerate(names):
        found = [t for g in np.unique(groups)
                 if (t := _lowest_precise(probs[groups == g, j], labels[groups == g, j] > 0.5, precision, min_claims,
                                          margin, None if clusters is None else clusters[groups == g])) is not None]
        out[n] = round(max(found), 4) if found else NEVER
    return out


NEVER = 1.01  # a claim threshold no probability reaches
EXPERT_STYLE = 0.5  # a narrative the style model gives at least this probability is read as expert-written


def threshold_sets(thresholds: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """The claim thresholds as stored, by the narratives they apply to: ``{"expert": ..., "generated":
    ...}`` for a model fitted per writing style (``{"by_style": ...}``, see
    :func:`dermeval.model.fit.fit_claim_thresholds`), ``{"all": ...}`` for one flat set."""
    thresholds = thresholds or {}
    return thresholds.get("by_style", {"all": thresholds})


def thresholds_for(thresholds: dict[str, Any] | None, expert_prob: float | None) -> dict[str, float]:
    """The claim thresholds that apply to one narrative: with one set per writing style, a narrative
    the style model reads as expert-written (``expert_prob`` >= EXPERT_STYLE) gets the expert set,
    any other the generated set; a flat set applies to every narrative."""
    sets = threshold_sets(thresholds)
    if "all" in sets:
        return sets["all"]
    return sets["expert" if expert_prob is not None and expert_prob >= EXPERT_STYLE else "generated"]


def row_thresholds(thresholds: dict[str, Any] | None, pred: dict[str, np.ndarray], k: int) -> dict[str, float]:
    """:func:`thresholds_for` row ``k`` of an evaluator's predictions (its ``expert_style``, when the
    model has a style model)."""
    return thresholds_for(thresholds, float(pred["expert_style"][k]) if "expert_style" in pred else None)


def wilson_lower(right: int, n: int, z: float) -> float:
    """Wilson score lower bound of a proportion (``right`` of ``n``) at ``z`` standard errors; z=0: right/n."""
    if n == 0:
        return 0.0
    p, zz = right / n, z * z
    return float((p + zz / (2 * n) - z * np.sqrt(p * (1 - p) / n + zz / (4 * n * n))) / (1 + zz / n))


def clustered_lower(right: np.ndarray, clusters: np.ndarray, z: float) -> float:
    """The precision of claims (``right``: 1 per true claim, 0 per false one) minus ``z`` case-clustered
    standard errors (the ratio estimator's sandwich variance over the cases in ``clusters``, with the
    small-sample factor k/(k-1)); a single case gives no estimate of the spread: 0 when z > 0."""
    n = len(right)
    if n == 0:
        return 0.0
    p = float(right.mean())
    _, c = np.unique(clusters, return_inverse=True)
    k = int(c.max()) + 1
    if k < 2:
        return 0.0 if z > 0 else p
    resid = np.bincount(c, weights=right - p, minlength=k)
    return p - z * float(np.sqrt(k / (k - 1) * (resid ** 2).sum())) / n


def _lowest_precise(p: np.ndarray, y: np.ndarray, precision: float, min_claims: int,
                    margin: float = 0.0, clusters: np.ndarray | None = None) -> float | None:
    """The lowest threshold whose claims reach ``precision`` by ``margin`` standard errors (the Wilson
    bound and, with ``clusters``, the case-clustered one); NEVER when none does; None when the rows
    hold too few claims to tell."""
    if (p >= ISSUE_THRESHOLD).sum() < min_claims:
        return None
    for t in np.unique(np.concatenate([[ISSUE_THRESHOLD], p[p >= ISSUE_THRESHOLD]])):
        claim = p >= t
        if claim.sum() < min_claims:
            break
        right = y[claim].astype(float)
        lower = wilson_lower(int(right.sum()), len(right), margin)
        if clusters is not None:
            lower = min(lower, clustered_lower(right, clusters[claim], margin))
        if lower >= precision - 1e-12:
            return float(t)
    return NEVER


def diagnosis_sentence(check: dict[str, Any] | None) -> str | None:
    """The diagnosis check in a clinician's words, when the conclusion does not fit the case. Said
    only when the vocabulary recognised the diagnosis: the learned text head alone is not sure
    enough on wording it never saw to tell a clinician the conclusion is wrong."""
    if not check or check.get("agreement") is None or not check.get("conclusion"):
        return None
    named = check["conclusion"]
    if check["agreement"] < MISMATCH_THRESHOLD:
        return (f"Diagnosis check: conclusion: {named} ({label(check['conclusion_category'])}); "
                f"image and findings: {label(check['seen_category'])}.")
    # The findings may agree with the conclusion while the image shows another group: the narrative
    # does not belong to this image (a mix-up of cases, or text written without looking).
    if check.get("image_agreement") is not None and check["image_agreement"] < MISMATCH_THRESHOLD:
        return (f"Image check: conclusion: {named} ({label(check['conclusion_category'])}); "
                f"image: {label(check['image_category'])}; the narrative does not fit the image.")
    return None


def build_critique(scores: np.ndarray, sigma: np.ndarray, units: list[str], attention: np.ndarray,
                   defect_probs: dict[str, float], diagnosis: dict[str, Any] | None = None,
                   thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Assemble the critique for one narrative from its scores, attention and defect probabilities.

    ``diagnosis`` is the diagnosis check (what the conclusion names, what the image and findings
    show, their agreement); a mismatch is stated under Accuracy in words a clinician reads.
    """
    issues = {n: p for n, p in defect_probs.items() if p >= ISSUE_THRESHOLD}
    stated = claimed(defect_probs, thresholds)
    mismatch = diagnosis_sentence(diagnosis)
    quoted = evidence_order(attention) if units else [[] for _ in DIMENSIONS]
    dims: dict[str, Any] = {}
    for j, d in enumerate(DIMENSIONS):
        relevant = sorted(((n, p) for n, p in issues.items() if n in stated and d in PROBLEMS[n].dimensions),
                          key=lambda x: -x[1])
        top = [units[k] for k in quoted[j]]
        score = round(float(scores[j]), 3)  # the value the score line prints: both read the same
        parts = [f"{_band(score).capitalize()} ({score:.1f}/5, +/-{sigma[j]:.1f})."]
        if relevant:
            parts.append("Detected: " + "; ".join(f"{PROBLEMS[n].description.rstrip('.').lower()} "
                                                  f"(p={p:.2f})" for n, p in relevant) + ".")
        if mismatch and d == "accuracy":
            parts.append(mismatch)
        if top:
            parts.append(f'Driven most by: "{_snippet(top[0])}"')
        suggestion = PROBLEMS[relevant[0][0]].suggestion if relevant else (
            GENERIC[d] if scores[j] < 4.25 else "No change needed.")
        dims[d] = {"score": score, "uncertainty": round(float(sigma[j]), 3),
                   "justification": " ".join(parts), "suggestion": suggestion, "evidence": top}
    notes = [f"Ignored (does not change the scores): {PROBLEMS[n].description.rstrip('.').lower()}"
             for n in sorted(issues) if n in PROBLEMS and PROBLEMS[n].score_neutral]
    out = {"dimensions": dims, "issues": {n: round(p, 3) for n, p in sorted(issues.items())}, "notes": notes}
    if diagnosis:
        out["diagnosis_check"] = {**diagnosis, "fits": mismatch is None}
    return out


def empty_critique() -> dict[str, Any]:
    msg = "The narrative is empty: there is nothing to evaluate, so every dimension is at the floor."
    return {"dimensions": {d: {"score": 0.0, "uncertainty": 0.0, "justification": msg,
                               "suggestion": PROBLEMS["empty"].suggestion, "evidence": []} for d in DIMENSIONS},
            "issues": {"empty": 1.0}, "notes": []}


def critique_text(critique: dict[str, Any], overall: float) -> str:
    lines = [f"{TITLES[d]}: {c['score']:.1f} - {c['justification']} Suggestion: {c['suggestion']}"
             for d, c in critique["dimensions"].items()]
    lines += [f"Note: {n}." for n in critique.get("notes", [])]
    lines.append(f"Overall Score: {overall:.1f}")
    return "\n".join(lines)
