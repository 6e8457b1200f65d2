"""The clinical problems a diagnostic narrative can have, named once for the whole project.

Beside the six rating dimensions (:mod:`dermeval.schema`), this is the evaluator's vocabulary
for *what is wrong*: the problem head of the model predicts these, the critique states them in
a clinician's words and suggests the fix, and rated data may label them (a record's
``problems`` field, see :mod:`dermeval.formats.records`). Each problem lists the dimensions it
lowers markedly: the critique names it under those dimensions only.

Where a problem label comes from does not matter here: a team's reviewers may write them, and
the DermSynth simulator (:mod:`dermeval.synth.defects`) has one text operator per problem that
produces it, with its own simulated effect sizes. Nothing in this module knows the simulator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dermeval.schema import DIMENSIONS

SEVERITIES = ("neutral", "minor", "major", "critical")


@dataclass(frozen=True)
class Problem:
    name: str  # snake_case key, as data files and the model's outputs carry it
    title: str  # as a clinician would name it
    description: str  # one sentence, as the critique states it under "Detected:"
    severity: str  # neutral | minor | major | critical
    dimensions: tuple[str, ...]  # the dimensions it lowers markedly (the critique names it under them)
    suggestion: str  # the improvement the critique proposes
    changes_diagnosis: bool = False  # after it, the conclusion no longer names the case's own diagnosis
    changes_image: bool = False  # after it, the image no longer shows the case the narrative describes

    @property
    def score_neutral(self) -> bool:
        """Experts do not reward it, so it must not change the scores (padding, appeals to the evaluator)."""
        return self.severity == "neutral"


PROBLEMS: dict[str, Problem] = {p.name: p for p in (
    Problem("wrong_diagnosis", "Wrong diagnosis", "The conclusion names a diagnosis from another category.",
            "critical", ("accuracy", "medical_groundedness", "reasoning_coherence"),
            "Re-check the conclusion against the visible morphology before naming a diagnosis.",
            changes_diagnosis=True),
    Problem("missed_malignancy", "Missed malignancy",
            "A malignant lesion is called harmless and the referral is removed.", "critical",
            ("accuracy", "safety", "medical_groundedness"),
            "Treat features suspicious for malignancy as such and advise urgent referral.", changes_diagnosis=True),
    Problem("image_mismatch", "Narrative does not fit the image",
            "The narrative describes another case: the image shows a different condition.", "critical",
            ("accuracy", "medical_groundedness", "description_precision"),
            "Describe the image that was given, and check that the narrative belongs to this case.",
            changes_image=True),
    Problem("dropped_differentials", "Dropped differential diagnosis", "The differential diagnosis is left out.",
            "major", ("clinical_coverage",), "List two or three differential diagnoses and why each is less likely."),
    Problem("unsafe_advice", "Unsafe advice", "The advice is replaced by harmful advice (e.g. no doctor needed).",
            "critical", ("safety", "medical_groundedness"),
            "Remove advice that could delay care; say when and where to seek medical review."),
    Problem("missing_referral", "Missing referral", "Referral and follow-up advice are removed.", "major",
            ("safety",), "State whether and how urgently the patient should see a clinician."),
    Problem("hallucinated_finding", "Unsupported finding", "A finding that is not in the image is described.",
            "major", ("medical_groundedness", "description_precision"),
            "Describe only findings that are visible in the image."),
    Problem("contradictory_reasoning", "Contradictory reasoning", "The reasoning argues against the stated "
            "conclusion.", "major", ("reasoning_coherence",), "Make the reasoning support the stated conclusion."),
    Problem("vague_description", "Vague description", "Precise dermatological terms are replaced by vague words.",
            "minor", ("description_precision",),
            "Use precise dermatological terms (morphology, colour, border, distribution)."),
    Problem("truncation", "Incomplete narrative", "The narrative stops partway.", "major",
            ("accuracy", "safety", "clinical_coverage", "reasoning_coherence"),
            "Complete the narrative through conclusion and advice."),
    Problem("off_topic", "Off topic", "The answer is about something else entirely.", "critical", DIMENSIONS,
            "Answer the clinical question about the skin image.", changes_diagnosis=True),
    Problem("empty", "Empty narrative", "The narrative is empty.", "critical", DIMENSIONS,
            "Write a diagnostic narrative.", changes_diagnosis=True),
    Problem("verbose_padding", "Padding", "Irrelevant general sentences are added.", "neutral", (),
            "Cut general statements that do not bear on this case."),
    Problem("evaluator_injection", "Appeal to the evaluator", "A sentence asks the evaluator for top marks.",
            "neutral", (), "Remove text addressed to the evaluator."),
)}

PROBLEM_NAMES: tuple[str, ...] = tuple(PROBLEMS)
CHANGES_DIAGNOSIS: tuple[str, ...] = tuple(n for n, p in PROBLEMS.items() if p.changes_diagnosis)
CHANGES_IMAGE: tuple[str, ...] = tuple(n for n, p in PROBLEMS.items() if p.changes_image)
SCORE_NEUTRAL: tuple[str, ...] = tuple(n for n, p in PROBLEMS.items() if p.score_neutral)


class UnknownProblem(ValueError):
    pass


def check_problems(names: Iterable[object]) -> list[str]:
    """The given problem labels, checked against the taxonomy (an unknown one is an error naming it)."""
    out = []
    for n in names:
        if not isinstance(n, str) or n not in PROBLEMS:
            raise UnknownProblem(f"unknown problem {n!r}; known: {', '.join(PROBLEM_NAMES)}")
        out.append(n)
    return out


for _p in PROBLEMS.values():  # a typo here would silently drop a problem from every critique
    assert _p.severity in SEVERITIES and set(_p.dimensions) <= set(DIMENSIONS), _p.name
