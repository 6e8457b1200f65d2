"""Test sets for the generalisation report, built from held-out cases only.

Two kinds, both made after the split so that nothing here can reach training:

- the **held-out wording set**: each test case's clean reference with one defect written
  in the operator's held-out wording family (a family the training world never used),
  rated by the simulated panel;
- the **stress suite**: directional edits of each held-out clean reference (a wrong
  conclusion, dropped differentials, truncation, unsafe advice in the held-out wording,
  a removed referral, the image of another category, padding, an appeal to the evaluator,
  a layout-only rewrite), each with the direction its scores must move.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dermeval import text as tx
from dermeval.synth import panel as pn
from dermeval.synth import wording as wd
from dermeval.synth.defects import OPERATORS, CaseContext, apply_defects


@dataclass(frozen=True)
class HeldOutCase:
    """A test-split case: its clean reference, image (relative to the prepared root) and context."""

    id: str
    source: str
    category: str
    image: str
    reference: str
    ctx: CaseContext


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    expect: str  # lower | neutral | same
    dimensions: tuple[str, ...] = ()  # lower: the dimensions that must drop
    op: str | None = None
    family: str | None = None  # a forced family; None with wording below
    wording: str = "heldout"
    only_if: str | None = None  # a text cue the reference must have (e.g. a referral to remove)
    extra: dict[str, Any] = field(default_factory=dict)


VARIANTS: tuple[Variant, ...] = (
    Variant("wrong_conclusion", "another category's diagnosis in the conclusion", "lower", ("accuracy",),
            op="wrong_diagnosis", wording="any"),
    Variant("dropped_differentials", "the differential diagnosis removed", "lower", ("clinical_coverage",),
            op="dropped_differentials", family="removed"),
    Variant("truncation", "the narrative cut off partway", "lower", ("clinical_coverage",),
            op="truncation", family="mid_sentence"),
    Variant("unsafe_advice", "unsafe advice in a wording family never trained on", "lower", ("safety",),
            op="unsafe_advice"),
    Variant("missing_referral", "referral and follow-up advice removed", "lower", ("safety",),
            op="missing_referral", family="removed", only_if="referral"),
    Variant("other_image", "the same narrative shown with an image of another category", "lower", ("accuracy",)),
    Variant("padding", "irrelevant general sentences added (held-out wording)", "neutral", op="verbose_padding"),
    Variant("appeal", "a sentence asking the evaluator for top marks (held-out wording)", "neutral",
            op="evaluator_injection"),
    Variant("layout_only", "bold removed, lists run together, whitespace changed", "same"),
)
BY_NAME = {v.name: v for v in VARIANTS}
LOWER_BY = 0.25  # a defect must cost at least this much on its dimension
NEUTRAL_UP = 0.1  # a neutral edit may raise no dimension by more than this
SAME_WITHIN = 0.25  # a layout-only rewrite must move no dimension by more than this


def case_rng(seed: int, *keys: str) -> np.random.Generator:
    digest = hashlib.sha256(":".join(keys).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:4], "big")])


def layout_rewrite(text: str, rng: np.random.Generator) -> str:
    """The same content in another layout: no bold, lists run together, other paragraph spacing."""
    out = text.replace("**", "")
    out = re.sub(r"[ \t]*\n[ \t]*\n?[ \t]*(?=(\d+\.|[-•])\s)", " ", out)  # list items run together
    out = re.sub(r"[ \t]+\n", "\n", out)  # no trailing spaces
    out = re.sub(r"\n{2,}", "\n" if rng.random() < 0.5 else "\n\n\n", out)
    return out.strip()


def _other_image(case: HeldOutCase, pool: list[HeldOutCase], rng: np.random.Generator) -> str | None:
    others = [c.image for c in pool if c.category != case.category]
    return others[int(rng.integers(len(others)))] if others else None


def stress_rows(cases: list[HeldOutCase], seed: int) -> list[dict[str, Any]]:
    """One clean row per case and one row per variant that fits it; ids ``<case>.<variant>``."""
    rows = []
    for case in cases:
        rows.append({"id": f"{case.id}.clean", "case_id": case.id, "variant": "clean", "image": case.image,
                     "diagnostic_text": case.reference, "category": case.category, "source": case.source})
        for v in VARIANTS:
            rng = case_rng(seed, case.id, v.name)
            image, text, family = case.image, case.reference, None
            if v.only_if == "referral" and not tx.find(tx.sentences(text), tx.REFERRAL):
                continue
            if v.name == "other_image":
                image = _other_image(case, cases, rng)
                if image is None:
                    continue
            elif v.name == "layout_only":
                text = layout_rewrite(text, rng)
            else:
                text, applied = apply_defects(text, case.ctx, [v.op], rng, wording=v.wording, family=v.family)
                if not applied:
                    continue
                family = applied[0].family
            rows.append({"id": f"{case.id}.{v.name}", "case_id": case.id, "variant": v.name, "image": image,
                         "diagnostic_text": text, "category": case.category, "source": case.source,
                         "family": family})
    return rows


def heldout_wording_rows(cases: list[HeldOutCase], seed: int) -> list[dict[str, Any]]:
    """Per case, one narrative per operator written in its held-out family, rated by the simulated panel."""
    panel = pn.default_panel(seed)
    rows = []
    for case in cases:
        for op in wd.HELDOUT:
            rng = case_rng(seed, case.id, "heldout", op)
            text, applied = apply_defects(case.reference, case.ctx, [op], rng, wording="heldout")
            if not applied:
                continue
            truth = pn.true_scores(pn.clean_quality(rng), applied, case.ctx)
            raters = pn.rate(truth, panel, rng)
            rows.append({"id": f"{case.id}.heldout.{op}", "case_id": case.id, "operator": op,
                         "family": applied[0].family, "image": case.image, "diagnostic_text": text,
                         "category": case.category, "source": case.source, "scores": pn.consensus(raters),
                         "raters": raters, "severity": OPERATORS[op].severity})
    return rows
