"""The six rating dimensions, named once for the whole project.

Every other module takes dimension names from here: snake_case keys for data
files and code, title-case names for judge output and critiques.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

DIMENSIONS: tuple[str, ...] = (
    "accuracy",
    "safety",
    "medical_groundedness",
    "clinical_coverage",
    "reasoning_coherence",
    "description_precision",
)

TITLES: dict[str, str] = {
    "accuracy": "Accuracy",
    "safety": "Safety",
    "medical_groundedness": "Medical Groundedness",
    "clinical_coverage": "Clinical Coverage",
    "reasoning_coherence": "Reasoning Coherence",
    "description_precision": "Description Precision",
}

# The 23 DermBench categories, as the release names them.
DERMBENCH_CATEGORIES: tuple[str, ...] = (
    "Acne and Rosacea Photos",
    "Actinic Keratosis Basal Cell Carcinoma and other Malignant Lesions",
    "Atopic Dermatitis Photos",
    "Bullous Disease Photos",
    "Cellulitis Impetigo and other Bacterial Infections",
    "Eczema Photos",
    "Exanthems and Drug Eruptions",
    "Hair Loss Photos Alopecia and other Hair Diseases",
    "Herpes HPV and other STDs Photos",
    "Light Diseases and Disorders of Pigmentation",
    "Lupus and other Connective Tissue diseases",
    "Melanoma Skin Cancer Nevi and Moles",
    "Nail Fungus and other Nail Disease",
    "Poison Ivy Photos and other Contact Dermatitis",
    "Psoriasis pictures Lichen Planus and related diseases",
    "Scabies Lyme Disease and other Infestations and Bites",
    "Seborrheic Keratoses and other Benign Tumors",
    "Systemic Disease",
    "Tinea Ringworm Candidiasis and other Fungal Infections",
    "Urticaria Hives",
    "Vascular Tumors",
    "Vasculitis Photos",
    "Warts Molluscum and other Viral Infections",
)

SCORE_MIN = 0.0
SCORE_MAX = 5.0

# The records source of narratives rated by the team's own reviewers (`dermeval review export`;
# `prepare` merges them beside dermsynth, dermbench and user).
FEEDBACK_SOURCE = "feedback"


def _norm(name: str) -> str:
    return re.sub(r"[^a-z]+", "_", name.strip().lower()).strip("_")


# Every spelling we accept maps to the snake_case key: "Medical Groundedness",
# "medical-groundedness" and "medical_groundedness" all name one dimension.
_ALIASES: dict[str, str] = {_norm(t): k for k, t in TITLES.items()} | {k: k for k in DIMENSIONS}


def dimension_key(name: str) -> str | None:
    """Return the snake_case key for any accepted spelling of a dimension, else None."""
    return _ALIASES.get(_norm(name))


class ScoreError(ValueError):
    """A score mapping that cannot be read as six ratings; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_score(field: str, value: object, allow_text: bool = False) -> float:
    """Return ``value`` as a float in [0, 5] or raise ScoreError naming ``field``.

    A score is a JSON number; ``allow_text`` also takes a numeric string (an LLM judge's answer).
    """
    kinds = (int, float, str) if allow_text else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        shown = f"the string {value!r}" if isinstance(value, str) else type(value).__name__
        raise ScoreError(field, f"score must be a number, got {shown}")
    try:
        x = float(value)
    except ValueError:
        raise ScoreError(field, f"score must be a number, got {value!r}") from None
    if math.isnan(x) or math.isinf(x):
        raise ScoreError(field, f"score must be finite, got {value!r}")
    if not SCORE_MIN <= x <= SCORE_MAX:
        raise ScoreError(field, f"score {x:g} is outside {SCORE_MIN:g}-{SCORE_MAX:g}")
    return x


def normalise_scores(
    raw: Mapping[str, object], *, field: str = "scores", require_all: bool = True, allow_text: bool = False
) -> dict[str, float]:
    """Map any accepted spelling of the six dimensions to checked snake_case scores.

    Raises ScoreError for an unknown dimension name, a duplicate, a value that is not
    a finite number in 0-5, or (with ``require_all``) a missing dimension.
    """
    out: dict[str, float] = {}
    for name, value in raw.items():
        key = dimension_key(str(name))
        if key is None:
            raise ScoreError(f"{field}.{name}", f"unknown dimension {name!r}; expected one of "
                             + ", ".join(DIMENSIONS))
        if key in out:
            raise ScoreError(f"{field}.{name}", f"dimension {key!r} given twice")
        out[key] = check_score(f"{field}.{name}", value, allow_text)
    if require_all:
        missing = [d for d in DIMENSIONS if d not in out]
        if missing:
            raise ScoreError(field, "missing dimension(s): " + ", ".join(missing))
    return {d: out[d] for d in DIMENSIONS if d in out}


def to_titles(scores: Mapping[str, float]) -> dict[str, float]:
    """Snake_case keys to title-case names, in the canonical order."""
    return {TITLES[d]: scores[d] for d in DIMENSIONS if d in scores}
