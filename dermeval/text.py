"""Finding the parts of a free-text narrative: sentences, conclusion, differentials, advice.

The defect operators use these cues rather than the project's own templates, so they
work on any narrative (a DermBench expert reference as well as a DermSynth one).
"""

from __future__ import annotations

import re

# Sentence ends, blank lines, <think> markers, and list items (after a newline or a colon), so a
# list splits into the same items whether it is laid out one per line or run together.
_SPLIT = re.compile(r"(?<=[.!?])(?<!\b\d\.)\s+(?=[A-Z0-9*<\"'(•-])|\n\s*\n|(?<=</think>)\s*|\s*(?=<think>)"
                    r"|(?<=:)\s+(?=(?:\d+\.|[-•])\s)|\s*\n\s*(?=(?:\d+\.|[-•])\s)")

CONCLUSION = re.compile(
    r"\b(conclu\w*|most (likely|consistent|probable)|consistent with|final diagnosis|diagnosis is|"
    r"the answer is|in summary|best explained by|likely represents|impression|appears (to be|you have)|"
    r"suggestive of|points? (most )?(strongly )?to)\b", re.I)
ADVICE = re.compile(
    r"\b(recommend\w*|advis\w*|consult\w*|refer\w*|seek\w*|follow[- ]?up|treatment|treated|"
    r"manag\w+|biopsy|should be (seen|evaluated|assessed)|see a (doctor|dermatologist|physician|clinician))\b", re.I)
REFERRAL = re.compile(
    r"\b(refer\w*|dermatolog\w+|specialist|biopsy|urgent\w*|emergency|seek (medical|immediate|prompt)|"
    r"doctor|physician|clinician|GP|consult\w*)\b", re.I)
# A sentence that weighs another diagnosis without a cue word: it opens on the condition itself (not on
# "The", "This", a connective or a pronoun), hedges ("could", "would", "typically", ...) and sets the
# condition against the case ("but", "rather than", "lacks", "not", ...): "Impetigo can crust, but is
# honey-coloured". Advice, referral and care sentences are not differentials, however they are worded.
_WEIGHED = (
    r"^(?:<think>\s*)?(?!(?s:.*)(?:" + ADVICE.pattern + "|" + REFERRAL.pattern + r"|\bcare\b))"
    r"(?!(?:the|this|these|that|those|its?|there|such|both|all|some|any|each|in|on|at|with|given|based|overall|"
    r"first|next|then|finally|additionally|however|therefore|thus|together|because|although|while|if|when|as|"
    r"i|we|you|your|my|they|he|she)\b)"
    r"[A-Za-z*][\w*'() /-]{2,60}?\b(?:could|would|might|may|can|often|usually|typically|tends? to|is another|"
    r"are other)\b(?s:.*)\b(?:but|however|though|although|whereas|rather than|unlike|lacks?|lacking|absent|absence|"
    r"without|rarely|not|no|less)\b")
DIFFERENTIAL = re.compile(
    r"\b(differential\w*|alternatives?|rule out|ruled out|versus|less likely|other possibilit\w+|"
    r"could also|may also represent|also consider|should be considered|possibilities)\b|^\s*(\d+\.|[-•])\s|"
    + _WEIGHED, re.I)


_MARKUP = re.compile(r"\*\*|__|\s+")


def plain(unit: str) -> str:
    """A sentence as content only: markdown bold gone, every run of whitespace one space."""
    return _MARKUP.sub(lambda m: " " if m.group(0).isspace() else "", unit).strip()


def sentences(text: str) -> list[str]:
    """Split into sentences, keeping ``<think>`` / ``</think>`` markers as their own pieces."""
    return [s.strip() for s in _SPLIT.split(text) if s and s.strip()]


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


# --- layout-preserving editing -------------------------------------------------------
# Operators edit narratives as a list of pieces, each a sentence with the whitespace that
# followed it in the original. Rendering concatenates them, so an edit changes content
# only: line breaks, list layout and spacing stay the narrative's own.


class Piece:
    """One sentence (or ``<think>`` marker) and the separator that follows it."""

    __slots__ = ("text", "sep")

    def __init__(self, text: str, sep: str = " ") -> None:
        self.text = text
        self.sep = sep

    def __repr__(self) -> str:
        return f"Piece({self.text!r}, {self.sep!r})"


def pieces(text: str) -> tuple[str, list[Piece]]:
    """``(lead, pieces)`` with ``lead + "".join(p.text + p.sep)`` equal to ``text``."""
    out: list[Piece] = []
    lead, pos = "", 0
    bounds = [(m.start(), m.end()) for m in _SPLIT.finditer(text)] + [(len(text), len(text))]
    for start, end in bounds:
        chunk, sep = text[pos:start], text[start:end]
        body = chunk.strip()
        if body:
            pre = chunk[: len(chunk) - len(chunk.lstrip())]
            post = chunk[len(chunk.rstrip()):]
            if out:
                out[-1].sep += pre
            else:
                lead += pre
            out.append(Piece(body, post + sep))
        elif out:
            out[-1].sep += chunk + sep
        else:
            lead += chunk + sep
        pos = max(pos, end)
    return lead, out


def clone(parts: list[Piece]) -> list[Piece]:
    """A copy an edit may change without touching the original pieces."""
    return [Piece(p.text, p.sep) for p in parts]


def render(lead: str, parts: list[Piece]) -> str:
    return lead + "".join(p.text + p.sep for p in parts)


def _breaks(sep: str) -> int:
    return sep.count("\n")


def drop(parts: list[Piece], indices: set[int] | list[int]) -> list[Piece]:
    """Remove pieces; a removed piece's paragraph break passes to the piece before it."""
    gone = set(indices)
    out: list[Piece] = []
    for k, p in enumerate(parts):
        if k not in gone:
            out.append(Piece(p.text, p.sep))
        elif out and _breaks(p.sep) > _breaks(out[-1].sep):
            out[-1].sep = p.sep
    return out


def insert(parts: list[Piece], at: int, sentence: str) -> list[Piece]:
    """Insert a sentence before ``parts[at]``, inside the paragraph of the piece before it."""
    out = clone(parts)
    if at <= 0 or not out:
        return [Piece(sentence, " ")] + out
    prev = out[at - 1]
    new = Piece(sentence, prev.sep)
    prev.sep = " "
    out.insert(at, new)
    return out


def texts(parts: list[Piece]) -> list[str]:
    return [p.text for p in parts]
