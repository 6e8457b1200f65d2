"""Finding the parts of a free-text narrative: sentences, conclusion, differentials, advice.

The defect operators use these cues rather than the project's own templates, so they
work on any narrative (a DermBench expert reference as well as a DermSynth one).
"""

from __future__ import annotations

import re

_SPLIT = re.compile(r"(?<=[.!?])(?<!\b\d\.)\s+(?=[A-Z0-9*<\"'(•-])|\n\s*\n|(?<=</think>)\s*|\s*(?=<think>)")

CONCLUSION = re.compile(
    r"\b(conclu\w*|most (likely|consistent|probable)|consistent with|final diagnosis|diagnosis is|"
    r"the answer is|in summary|best explained by|likely represents|impression|appears (to be|you have)|"
    r"suggestive of|points? (most )?(strongly )?to)\b", re.I)
DIFFERENTIAL = re.compile(
    r"\b(differential\w*|alternatives?|rule out|ruled out|versus|less likely|other possibilit\w+|"
    r"could also|may also represent|also consider|should be considered|possibilities)\b|^\s*(\d+\.|[-•])\s", re.I)
ADVICE = re.compile(
    r"\b(recommend\w*|advis\w*|consult\w*|refer\w*|seek\w*|follow[- ]?up|treatment|treated|"
    r"manag\w+|biopsy|should be (seen|evaluated|assessed)|see a (doctor|dermatologist|physician|clinician))\b", re.I)
REFERRAL = re.compile(
    r"\b(refer\w*|dermatolog\w+|specialist|biopsy|urgent\w*|emergency|seek (medical|immediate|prompt)|"
    r"doctor|physician|clinician|GP|consult\w*)\b", re.I)


def sentences(text: str) -> list[str]:
    """Split into sentences, keeping ``<think>`` / ``</think>`` markers as their own pieces."""
    return [s.strip() for s in _SPLIT.split(text) if s and s.strip()]


def join(parts: list[str]) -> str:
    return " ".join(p for p in parts if p)


def is_marker(s: str) -> bool:
    return s in ("<think>", "</think>")


def find(parts: list[str], pattern: re.Pattern[str]) -> list[int]:
    return [i for i, s in enumerate(parts) if not is_marker(s) and pattern.search(s)]


def conclusion_index(parts: list[str]) -> int | None:
    """The last sentence that states a conclusion, else the last non-advice sentence."""
    hits = find(parts, CONCLUSION)
    if hits:
        return hits[-1]
    advice = set(find(parts, ADVICE))
    rest = [i for i, s in enumerate(parts) if not is_marker(s) and i not in advice]
    return rest[-1] if rest else None


def bold_terms(text: str) -> list[str]:
    return re.findall(r"\*\*(.+?)\*\*", text)
