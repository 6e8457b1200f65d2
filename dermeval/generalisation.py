"""The generalisation report's measures: what an evaluator does outside what trained it.

Pure functions over scores; the sets themselves (held-out wording, stress variants) are built
by the stage from held-out cases. Kept apart from the simulator: nothing here knows how the
narratives were written, only which direction their scores must move.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from dermeval.features import narrative_units
from dermeval.metrics import dimension_table
from dermeval.schema import DIMENSIONS


def sentence_overlap(train_texts: Iterable[str], test_texts: Sequence[str]) -> dict[str, float | int]:
    """How much of the test split's wording the training split already holds, word for word.

    ``sentence_share``: share of test sentence units (occurrences) that also occur in training;
    ``narratives_all_seen``: test narratives made only of training sentences.
    """
    seen = {u for t in train_texts for u in narrative_units(t).units}
    total = hit = all_seen = 0
    for t in test_texts:
        units = narrative_units(t).units
        n = sum(u in seen for u in units)
        total, hit = total + len(units), hit + n
        all_seen += bool(units) and n == len(units)
    return {"test_sentences": total, "sentence_share": round(hit / total, 4) if total else float("nan"),
            "narratives": len(test_texts), "narratives_all_seen": int(all_seen)}


def directional_pass(delta: np.ndarray, expect: str, dims: Sequence[str], *, lower_by: float, neutral_up: float,
                     same_within: float) -> np.ndarray:
    """Per row, whether a variant's score change (variant - clean, shape (n, 6)) goes the required way.

    ``lower``: every listed dimension falls by at least ``lower_by``; ``neutral``: no dimension
    rises by more than ``neutral_up``; ``same``: no dimension moves by more than ``same_within``.
    """
    delta = np.atleast_2d(np.asarray(delta, float))
    if expect == "lower":
        cols = [DIMENSIONS.index(d) for d in dims]
        return np.all(delta[:, cols] <= -lower_by, axis=1)
    if expect == "neutral":
        return np.all(delta <= neutral_up, axis=1)
    if expect == "same":
        return np.all(np.abs(delta) <= same_within, axis=1)
    raise ValueError(f"unknown expectation {expect!r}")


def stress_passes(rows: Sequence[dict[str, Any]], scores: np.ndarray, variants: Sequence[Any], *, lower_by: float,
                  neutral_up: float, same_within: float) -> list[tuple[str, str, bool]]:
    """``(variant, case_id, passed)`` for every stress row whose case's clean reference was scored too.

    ``rows`` carry ``id``, ``case_id`` and ``variant``; the clean reference's id is
    ``<case_id>.clean``; ``scores`` (n, 6) are aligned with ``rows``; ``variants`` are the stress
    suite's variants (``name``, ``expect``, ``dimensions``).
    """
    by_id = {r["id"]: k for k, r in enumerate(rows)}
    scores = np.asarray(scores, float)
    out = []
    for v in variants:
        pairs = [(r["case_id"], by_id[r["id"]], by_id[f"{r['case_id']}.clean"]) for r in rows
                 if r["variant"] == v.name and f"{r['case_id']}.clean" in by_id]
        if not pairs:
            continue
        delta = np.array([scores[a] - scores[b] for _, a, b in pairs])
        ok = directional_pass(delta, v.expect, v.dimensions, lower_by=lower_by, neutral_up=neutral_up,
                              same_within=same_within)
        out += [(v.name, case, bool(passed)) for (case, _, _), passed in zip(pairs, ok, strict=True)]
    return out


def agreement_block(rows: Sequence[dict[str, Any]], predicted: np.ndarray, n_boot: int) -> dict[str, Any]:
    """MAE and Spearman (95% CIs, cases resampled together) of predictions (n, 6) against the rows' scores."""
    if not rows:
        return {"n": 0}
    expert = {d: np.array([r["scores"][d] for r in rows], float) for d in DIMENSIONS}
    pred = {d: np.asarray(predicted)[:, j] for j, d in enumerate(DIMENSIONS)}
    groups = [str(r.get("case_id") or r["id"]) for r in rows]
    table = dimension_table(expert, pred, n_boot=n_boot, groups=groups, metrics=("mae", "spearman"))
    return {"n": len(rows), "n_cases": len(set(groups)), **table}


def flat_agreement(prefix: str, block: dict[str, Any]) -> dict[str, float]:
    if not block.get("n"):
        return {}
    out = {f"{prefix}_overall_mae": block["overall"]["mae"]["value"],
           f"{prefix}_overall_spearman": block["overall"]["spearman"]["value"], f"{prefix}_n": block["n"]}
    out.update({f"{prefix}_mae_{d}": block[d]["mae"]["value"] for d in DIMENSIONS})
    return out
