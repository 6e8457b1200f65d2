"""Simulated MLLMs: each is a profile of probabilities over the defect library."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dermeval.synth.defects import OPERATORS

# Operators are tried in this order, so a later one works on the earlier one's output
# (e.g. padding is added after a truncation, an injection comes last).
ORDER = ("empty", "off_topic", "image_mismatch", "missed_malignancy", "wrong_diagnosis", "dropped_differentials",
         "hallucinated_finding", "contradictory_reasoning", "unsafe_advice", "missing_referral",
         "vague_description", "truncation", "verbose_padding", "evaluator_injection")
assert set(ORDER) == set(OPERATORS), "every operator needs a place in ORDER"


@dataclass(frozen=True)
class MLLMProfile:
    name: str
    description: str
    rates: dict[str, float] = field(default_factory=dict)

    def sample(self, rng: np.random.Generator, overrides: dict[str, float] | None = None) -> list[str]:
        rates = {**self.rates, **(overrides or {})}
        return [op for op in ORDER if rng.random() < rates.get(op, 0.0)]


PROFILES: tuple[MLLMProfile, ...] = (
    MLLMProfile("aurora-derm-70b", "Strong generalist; rare, mild slips.",
                {"dropped_differentials": 0.04, "vague_description": 0.04, "hallucinated_finding": 0.03,
                 "missing_referral": 0.03, "verbose_padding": 0.05}),
    MLLMProfile("medvision-13b", "Fluent but invents findings.",
                {"hallucinated_finding": 0.35, "vague_description": 0.12, "dropped_differentials": 0.12,
                 "wrong_diagnosis": 0.08, "verbose_padding": 0.1, "image_mismatch": 0.03}),
    MLLMProfile("skinscan-lite", "Small model: short, vague, often cut off.",
                {"truncation": 0.25, "vague_description": 0.3, "dropped_differentials": 0.3, "empty": 0.03,
                 "wrong_diagnosis": 0.12, "image_mismatch": 0.06}),
    MLLMProfile("clinichat-v2", "Chatty assistant that under-refers and sometimes reassures wrongly.",
                {"unsafe_advice": 0.2, "missing_referral": 0.2, "missed_malignancy": 0.35,
                 "verbose_padding": 0.3, "evaluator_injection": 0.05}),
    MLLMProfile("polyglot-vl-8b", "Multilingual VLM; unreliable diagnoses and reasoning.",
                {"wrong_diagnosis": 0.3, "contradictory_reasoning": 0.22, "off_topic": 0.05,
                 "evaluator_injection": 0.15, "hallucinated_finding": 0.1, "image_mismatch": 0.08}),
    MLLMProfile("dermassist-mini", "Budget model with a bit of everything.",
                {"wrong_diagnosis": 0.1, "dropped_differentials": 0.12, "unsafe_advice": 0.1,
                 "missing_referral": 0.1, "contradictory_reasoning": 0.08, "vague_description": 0.12,
                 "truncation": 0.08, "verbose_padding": 0.12, "evaluator_injection": 0.1, "off_topic": 0.02,
                 "image_mismatch": 0.05}),
)
BY_NAME = {p.name: p for p in PROFILES}
