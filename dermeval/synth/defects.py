"""The defect library: operators that turn a good narrative into a flawed candidate.

One operator per clinical problem of the taxonomy (:mod:`dermeval.problems`, which names,
describes and grades the problem); the operator adds how DermSynth produces it in a text
and its simulated effect on each of the six dimensions (the rating drop at full strength).
Operators find conclusions, differentials and advice
with text cues (see :mod:`dermeval.text`), never with the project's templates,
so they work on DermBench's expert narratives as well as on DermSynth's own.

Two operators are *score-neutral*: verbose padding and a sentence asking the evaluator
for top marks. Experts do not reward them, so a good evaluator must not either.

One operator leaves the text alone: ``image_mismatch`` pairs the narrative with the image of a
case of another category (a mix-up of cases), so the evaluator must check text against image.

Longer than 300 lines: fourteen operators, each a short text edit, and their table; split,
the table would have to import them all back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dermeval import text as tx
from dermeval.problems import PROBLEMS, Problem
from dermeval.synth import wording as wd

Rng = np.random.Generator


@dataclass(frozen=True)
class CaseContext:
    """What an operator may know about the case (never the evaluator's inputs)."""

    diagnosis: str
    urgency: str  # routine | treat | urgent
    malignant: bool
    wrong_names: tuple[str, ...]  # diagnoses from other categories
    benign_names: tuple[str, ...]  # harmless look-alikes, for a missed malignancy
    morphology: str = ""
    # The image of a case of another category (relative to the same prepared root), for a mix-up
    # that pairs this case's narrative with it; None: no such image at hand (the operator is skipped).
    other_image: str | None = None


@dataclass(frozen=True)
class Operator:
    """The simulator's way of producing one clinical problem (:mod:`dermeval.problems`) in a text."""

    name: str  # the problem it produces, a key of PROBLEMS
    effects: dict[str, float]  # simulated rating change per dimension at strength 1.0
    transform: Callable[[list[tx.Piece], CaseContext, Rng, str], tuple[list[tx.Piece], float] | None]
    # Safety effect multiplier by case urgency (a missing referral matters most when urgent).
    safety_by_urgency: dict[str, float] = field(default_factory=lambda: {"routine": 1.0, "treat": 1.0, "urgent": 1.0})
    exclusive: bool = False  # replaces the whole narrative; no other operator applies

    @property
    def problem(self) -> Problem:
        return PROBLEMS[self.name]

    @property
    def description(self) -> str:
        return self.problem.description

    @property
    def severity(self) -> str:
        return self.problem.severity

    def effect(self, ctx: CaseContext, strength: float) -> dict[str, float]:
        out = {d: v * strength for d, v in self.effects.items()}
        if "safety" in out:
            out["safety"] *= self.safety_by_urgency[ctx.urgency]
        return out


def pick(rng: Rng, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _strength(rng: Rng) -> float:
    return float(np.round(rng.uniform(0.7, 1.0), 3))


Parts = list[tx.Piece]


def _bold(parts: Parts, i: int, name: str) -> str:
    """A name set in bold only where the sentence it replaces used bold: layout stays the text's own."""
    return f"**{name}**" if "**" in parts[i].text else name


_LINE_HEAD = re.compile(r"^\s*((\d+\.|[-•*])\s+)?")


def _replace(parts: Parts, i: int, text: str, cue: re.Pattern[str] | None = None) -> Parts:
    """Put ``text`` in place of sentence ``i``; in a multi-line piece only the line with ``cue`` is
    replaced, keeping its indent and list marker, so the layout around the edit survives."""
    out = tx.clone(parts)
    lines = out[i].text.split("\n")
    hits = [k for k, line in enumerate(lines) if cue is not None and cue.search(line)]
    k = hits[-1] if hits else len(lines) - 1
    head = _LINE_HEAD.match(lines[k]).group(0)
    tail = lines[k][len(lines[k].rstrip()):]
    lines[k] = head + text + tail
    out[i].text = "\n".join(lines)
    return out


def _wrong_diagnosis(parts, ctx, rng, family):
    i = tx.conclusion_index(tx.texts(parts))
    if i is None or not ctx.wrong_names:
        return None
    wrong = pick(rng, ctx.wrong_names)
    if family in ("restated", "final_statement"):  # the conclusion sentence rewritten around another name
        text = wd.phrase("wrong_diagnosis", family, rng, wrong=_bold(parts, i, wrong))
        return _replace(parts, i, text, tx.CONCLUSION), _strength(rng)
    name = re.compile(re.escape(ctx.diagnosis), re.I)
    if not name.search(parts[i].text):
        return None
    out = tx.clone(parts)
    # Swap the name where it stands: the wording stays the narrative's own, so only the
    # content (which diagnosis) betrays the error.
    for k in range(len(out)) if family == "swap_throughout" else [i]:
        out[k].text = name.sub(wrong, out[k].text)
    return out, _strength(rng)


def _missed_malignancy(parts, ctx, rng, family):
    i = tx.conclusion_index(tx.texts(parts))
    if not ctx.malignant or i is None or not ctx.benign_names:
        return None
    out = _replace(parts, i, wd.phrase("missed_malignancy", family, rng,
                                       benign=_bold(parts, i, pick(rng, ctx.benign_names))), tx.CONCLUSION)
    referral = set(tx.find(tx.texts(out), tx.REFERRAL)) - {i}
    return tx.drop(out, referral), _strength(rng)


LIST_ITEM = re.compile(r"^\s*(\d+\.|[-•*])\s")
EMBEDDED_ITEM = re.compile(r"(:\s*|\n\s*)(\d+\.|[-•])\s")


def _dropped_differentials(parts, ctx, rng, family):
    i = tx.conclusion_index(tx.texts(parts))
    found = sorted(set(tx.find(tx.texts(parts), tx.DIFFERENTIAL)) - {i})
    if family != "items_only":
        hits, cut = found, False
    else:  # the listed alternatives go, their introduction stays
        hits = [k for k in found if LIST_ITEM.match(parts[k].text)]
        cut = False
        for k in found:  # an introduction ending in ':' carries the first item in its own piece
            m = EMBEDDED_ITEM.search(parts[k].text) if k not in hits else None
            if m:
                parts, cut = _replace(parts, k, parts[k].text[:m.start(2)].rstrip()), True
    if not hits and not cut:
        return None
    if family == "dismissed":
        parts = _replace(parts, hits[0], wd.phrase("dropped_differentials", family, rng), tx.DIFFERENTIAL)
        hits = hits[1:]
    return tx.drop(parts, hits), _strength(rng)


def _unsafe_advice(parts, ctx, rng, family):
    advice = set(tx.find(tx.texts(parts), tx.ADVICE)) - {tx.conclusion_index(tx.texts(parts))}
    kept = tx.drop(parts, advice)
    return tx.insert(kept, len(kept), wd.phrase("unsafe_advice", family, rng)), _strength(rng)


def _missing_referral(parts, ctx, rng, family):
    i = tx.conclusion_index(tx.texts(parts))
    hits = sorted(set(tx.find(tx.texts(parts), tx.REFERRAL)) - {i})
    if not hits:
        return None
    if family != "removed":
        parts = _replace(parts, hits[0], wd.phrase("missing_referral", family, rng), tx.REFERRAL)
        hits = hits[1:]
    return tx.drop(parts, hits), _strength(rng)


def _hallucinated_finding(parts, ctx, rng, family):
    if family in ctx.morphology.lower():  # the finding would be true, not invented
        return None
    obs = [k for k, p in enumerate(parts) if not tx.is_marker(p.text)]
    if not obs:
        return None
    return tx.insert(parts, obs[0] + 1, wd.phrase("hallucinated_finding", family, rng)), _strength(rng)


def _contradictory_reasoning(parts, ctx, rng, family):
    i = tx.conclusion_index(tx.texts(parts))
    if i is None:
        return None
    return tx.insert(parts, i, wd.phrase("contradictory_reasoning", family, rng, dx=ctx.diagnosis)), _strength(rng)


VAGUE = {
    "plain": {
        r"erythematous|erythema": "red-ish", r"papules?": "bumps", r"plaques?": "areas", r"pustules?": "spots",
        r"vesicles?|bullae|bulla": "bubbles", r"macules?|patches": "marks", r"scal(e|es|y|ing)": "flaky bits",
        r"(well|sharply)[- ]demarcated|well[- ]defined": "visible", r"annular": "round-ish",
        r"violaceous": "dark", r"telangiectas\w*": "lines", r"hyperpigment\w*": "darker", r"nodules?": "lumps",
        r"excoriations?": "scratches", r"lichenification": "rough skin", r"crust(s|ed|ing)?": "stuff",
        r"hyperkeratotic|keratotic|verrucous": "rough", r"purpur\w*": "purple stuff", r"umbilicated": "dented",
        r"morphology": "look", r"distribution": "spread", r"pigmented": "coloured",
    },
    "hedged": {
        r"erythematous|erythema": "somewhat red", r"papules?": "small raised spots", r"plaques?": "patchy areas",
        r"pustules?": "pus spots", r"vesicles?|bullae|bulla": "small blisters", r"macules?|patches": "flat marks",
        r"scal(e|es|y|ing)": "dry skin", r"(well|sharply)[- ]demarcated|well[- ]defined": "fairly clear",
        r"annular": "ring-like", r"violaceous": "purplish", r"telangiectas\w*": "small veins",
        r"hyperpigment\w*": "browner", r"nodules?": "firm bumps", r"excoriations?": "scratch marks",
        r"lichenification": "thickened skin", r"crust(s|ed|ing)?": "scabby bits",
        r"hyperkeratotic|keratotic|verrucous": "hard", r"purpur\w*": "bruise-like", r"umbilicated": "with a dip",
        r"morphology": "appearance", r"distribution": "location", r"pigmented": "dark",
    },
    "everyday": {
        r"erythematous|erythema": "angry-looking", r"papules?": "little lumps", r"plaques?": "rough patches",
        r"pustules?": "whiteheads", r"vesicles?|bullae|bulla": "water blisters", r"macules?|patches": "blotches",
        r"scal(e|es|y|ing)": "peeling", r"(well|sharply)[- ]demarcated|well[- ]defined": "obvious",
        r"annular": "circular", r"violaceous": "bluish", r"telangiectas\w*": "thread veins",
        r"hyperpigment\w*": "tanned-looking", r"nodules?": "growths", r"excoriations?": "marks from scratching",
        r"lichenification": "leathery skin", r"crust(s|ed|ing)?": "dried gunk",
        r"hyperkeratotic|keratotic|verrucous": "crusty", r"purpur\w*": "bruising", r"umbilicated": "dimpled",
        r"morphology": "shape", r"distribution": "layout", r"pigmented": "brownish",
    },
}
_VAGUE = {f: [(re.compile(rf"\b({k})\b", re.I), v) for k, v in lex.items()] for f, lex in VAGUE.items()}


def _case_like(repl: str):
    return lambda m: repl[:1].upper() + repl[1:] if m.group(0)[:1].isupper() else repl


def _vague_description(parts, ctx, rng, family):
    hits = 0
    out = []
    for p in parts:
        text = p.text
        for pattern, repl in _VAGUE[family]:
            text, n = pattern.subn(_case_like(repl), text)
            hits += n
        out.append(tx.Piece(text, p.sep))
    if hits < 2:
        return None
    return out, _strength(rng)


def _truncation(parts, ctx, rng, family):
    text = tx.render("", parts)
    words = list(re.finditer(r"\S+", text))
    if len(words) < 20:
        return None
    keep = float(rng.uniform(0.3, 0.6))
    cut = words[int(len(words) * keep)]
    if family == "mid_word" and cut.end() - cut.start() > 3:
        end = cut.start() + (cut.end() - cut.start()) // 2
    elif family == "sentence_end":
        ends = np.cumsum([len(p.text) + len(p.sep) for p in parts])
        end = int(ends[np.argmin(np.abs(ends - cut.start()))]) if len(parts) > 1 else cut.start()
        end = len(text[:end].rstrip())
    else:
        end = len(text[:cut.start()].rstrip())
    kept = text[:end]
    if len(kept.split()) >= len(words) * 0.8 or not kept.strip():
        return None
    return tx.pieces(kept)[1], round((1 - len(kept.split()) / len(words)) / 0.7, 3)


def _image_mismatch(parts, ctx, rng, family):
    """The text stays as written; the candidate is shown with another case's image (the world's
    builders read ``ctx.other_image`` when this operator applied)."""
    return None if ctx.other_image is None else (parts, 1.0)


def _off_topic(parts, ctx, rng, family):
    return [tx.Piece(wd.phrase("off_topic", family, rng), "")], 1.0


def _empty(parts, ctx, rng, family):
    return [], 1.0


def _verbose_padding(parts, ctx, rng, family):
    at = int(rng.integers(1, max(len(parts), 2)))
    for _ in range(int(rng.integers(2, 5))):
        parts = tx.insert(parts, at, wd.phrase("verbose_padding", family, rng))
    return parts, 1.0


def _evaluator_injection(parts, ctx, rng, family):
    return tx.insert(parts, len(parts), wd.phrase("evaluator_injection", family, rng)), 1.0


ALL = dict(routine=1.0, treat=1.0, urgent=1.0)
OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("wrong_diagnosis",
             {"accuracy": -3.0, "safety": -0.8, "medical_groundedness": -1.2, "clinical_coverage": -0.5,
              "reasoning_coherence": -1.2}, _wrong_diagnosis, {"routine": 0.5, "treat": 1.0, "urgent": 2.5}),
    Operator("missed_malignancy",
             {"accuracy": -3.2, "safety": -3.8, "medical_groundedness": -1.2, "clinical_coverage": -0.8,
              "reasoning_coherence": -0.8}, _missed_malignancy),
    Operator("image_mismatch",
             {"accuracy": -3.0, "medical_groundedness": -2.0, "description_precision": -1.5, "safety": -0.5},
             _image_mismatch),
    Operator("dropped_differentials",
             {"clinical_coverage": -2.2, "reasoning_coherence": -0.6, "medical_groundedness": -0.3},
             _dropped_differentials),
    Operator("unsafe_advice",
             {"safety": -3.2, "medical_groundedness": -1.0, "accuracy": -0.3, "clinical_coverage": -0.4},
             _unsafe_advice, {"routine": 0.7, "treat": 0.9, "urgent": 1.0}),
    Operator("missing_referral",
             {"safety": -2.2, "clinical_coverage": -0.8}, _missing_referral,
             {"routine": 0.3, "treat": 0.7, "urgent": 1.0}),
    Operator("hallucinated_finding",
             {"medical_groundedness": -2.0, "description_precision": -1.2, "accuracy": -0.6},
             _hallucinated_finding),
    Operator("contradictory_reasoning",
             {"reasoning_coherence": -2.6, "medical_groundedness": -0.6, "accuracy": -0.3},
             _contradictory_reasoning),
    Operator("vague_description",
             {"description_precision": -2.4, "medical_groundedness": -0.5, "clinical_coverage": -0.4},
             _vague_description),
    Operator("truncation",
             {"clinical_coverage": -2.6, "reasoning_coherence": -1.4, "safety": -1.2, "accuracy": -1.6,
              "medical_groundedness": -0.6}, _truncation),
    Operator("off_topic",
             {"accuracy": -4.6, "safety": -3.5, "medical_groundedness": -4.6, "clinical_coverage": -4.6,
              "reasoning_coherence": -4.2, "description_precision": -4.6}, _off_topic, exclusive=True),
    Operator("empty",
             {d: -5.0 for d in ("accuracy", "safety", "medical_groundedness", "clinical_coverage",
                                "reasoning_coherence", "description_precision")}, _empty, exclusive=True),
    Operator("verbose_padding",
             {}, _verbose_padding),
    Operator("evaluator_injection",
             {}, _evaluator_injection),
)}
NEUTRAL = tuple(n for n, op in OPERATORS.items() if op.severity == "neutral")


@dataclass(frozen=True)
class Applied:
    name: str
    strength: float
    family: str = ""


def apply_defects(narrative: str, ctx: CaseContext, names: list[str], rng: Rng, wording: str = "train",
                  family: str | None = None) -> tuple[str, list[Applied]]:
    """Apply the named operators in order; those that do not fit the text are skipped.

    ``wording`` picks the families an operator may draw from (see :mod:`dermeval.synth.wording`):
    ``train`` never uses the held-out family, ``heldout`` uses only it; ``family`` forces one
    family (for stress tests that need a particular kind of edit). Everything outside the
    edited sentences (line breaks, lists, bold markers, spacing) is left as it was.
    """
    lead, parts = tx.pieces(narrative)
    applied: list[Applied] = []
    for name in names:
        families = [family] if family else wd.families_for(name, wording)
        for fam in (str(f) for f in rng.permutation(families)) if families else ():
            result = OPERATORS[name].transform(list(parts), ctx, rng, fam)
            if result is not None:
                break
        else:
            continue
        parts, strength = result
        applied.append(Applied(name, strength, fam))
        if OPERATORS[name].exclusive:
            lead = ""
            break
    if not applied:
        return narrative, applied
    return tx.render(lead, parts), applied
