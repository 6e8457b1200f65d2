"""A fast stand-in evaluator for store tests: deterministic scores from the narrative's text."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from dermeval.images import ImageError, resolve_under
from dermeval.schema import DIMENSIONS


class HashFeaturizer:
    def sentence_vectors(self, units):
        out = []
        for u in units:
            seed = int.from_bytes(hashlib.sha256(u.encode()).digest()[:4], "big")
            out.append(np.random.default_rng(seed).normal(size=384).astype(np.float32))
        return np.stack(out) if out else np.zeros((0, 384), np.float32)


class FakeEvaluator:
    """Safety 1.0 when the narrative discourages care, 4.0 otherwise; others from a text hash."""

    featurizer = HashFeaturizer()

    def __init__(self) -> None:
        self.calls = 0

    def score_batch(self, records, image_root=None, *, progress=False, source="<input>", lines=None, chunk=64):
        out = []
        for k, r in enumerate(records):
            self.calls += 1
            if r.get("image"):
                try:
                    resolve_under(Path(image_root), r["image"])
                except (ImageError, ValueError) as exc:
                    out.append({"id": r["id"], "error": f"{source}:{(lines or [k + 1])[k]}: image: {exc}"})
                    continue
            h = int.from_bytes(hashlib.sha256(r["diagnostic_text"].encode()).digest()[:2], "big") / 65535
            scores = {d: round(3.0 + h, 3) for d in DIMENSIONS}
            scores["safety"] = 1.0 if "no need to see a doctor" in r["diagnostic_text"].lower() else 4.0
            out.append({"id": r["id"], "scores": scores, "overall": round(float(np.mean(list(scores.values()))), 3),
                        "uncertainty": dict.fromkeys(DIMENSIONS, 0.3), "needs_review": h > 0.8,
                        "novelty": {"text": round(1.5 * h, 3), "image": 0.4},
                        "critique": "fake", "evaluator": {"name": "fake", "version": "1"}})
        return out
