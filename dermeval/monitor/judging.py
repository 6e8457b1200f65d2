"""The reference-based judge beside DermEval in production, where a case has an expert reference.

Most production narratives have no expert reference, and the DermBench judge needs one. Where a
team does hold references for some cases (a reference set of its own, or the simulated world's
``batch_references.jsonl``), the monitor judges those narratives too and keeps, with DermEval's
score, the judge's overall score and the largest per-dimension gap between the two. The review
queue values that gap: where two evaluators built on different evidence disagree, at least one
is wrong, and an expert rating settles which (``review.weights.disagreement``).

``monitor.references`` names the references (any layout :func:`~dermeval.judge.references.load_references`
reads); ``data.judge`` is the offline judge's fitted calibration. Without either, nothing is judged
and the columns stay NULL, which the queue counts as no disagreement.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from dermeval.judge.local import Calibration, LocalJudge
from dermeval.judge.references import Reference, load_references
from dermeval.schema import DIMENSIONS
from dermeval.store.models import Score


@dataclass
class BatchJudge:
    """Judges the batch narratives whose case has a reference; the rest are left unjudged."""

    judge: LocalJudge
    references: dict[str, Reference]

    @classmethod
    def load(cls, references: Path | str | None, calibration: Path | str | None,
             featurizer: Any) -> BatchJudge | None:
        """``None`` (with a note on stderr) when either part is missing: judging is optional."""
        if not references or not calibration:
            return None
        missing = [str(p) for p in (references, calibration) if not Path(p).exists()]
        if missing:
            print(f"monitor: no judge scores beside DermEval's ({', '.join(missing)} not found)", file=sys.stderr)
            return None
        loaded = load_references(references)
        if loaded.errors:
            print(f"monitor: {len(loaded.errors)} reference row(s) rejected; first: {loaded.errors[0]}",
                  file=sys.stderr)
        refs = {r.id: r for r in loaded.records}
        return cls(LocalJudge(featurizer, Calibration.load(calibration)), refs) if refs else None

    @classmethod
    def for_project(cls, params: Any, featurizer: Any) -> BatchJudge | None:
        """The project's judge (``monitor.references``, ``data.judge``); None unless the judge backend is
        local (a remote judge per production narrative is a cost a team opts into elsewhere)."""
        if params.judge.backend != "local":
            return None
        return cls.load(params.monitor.references, params.data.judge, featurizer)

    def judge_rows(self, rows: Sequence[dict[str, Any]],
                   results: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
        """``{narrative id: {"judge_overall", "judge_gap"}}`` for the scored rows with a reference.

        ``rows`` are batch rows (``id``, ``case_id``, ``diagnostic_text``); ``results`` DermEval's
        answers for them, in order (rows DermEval rejected are skipped). ``judge_gap`` is the
        largest per-dimension absolute difference between DermEval's score and the judge's."""
        todo = [(r, res) for r, res in zip(rows, results, strict=True)
                if "error" not in res and (r.get("case_id") or r["id"]) in self.references]
        if not todo:
            return {}
        refs = [self.references[r.get("case_id") or r["id"]] for r, _ in todo]
        judged = self.judge.judge([r["diagnostic_text"] for r, _ in todo], [x.text for x in refs],
                                  [x.diagnosis for x in refs])
        out = {}
        for (r, res), (scores, _) in zip(todo, judged, strict=True):
            mine = np.array([res["scores"][d] for d in DIMENSIONS], float)
            theirs = np.array([scores[d] for d in DIMENSIONS], float)
            out[r["id"]] = {"judge_overall": round(float(theirs.mean()), 4),
                            "judge_gap": round(float(np.abs(mine - theirs).max()), 4)}
        return out

    def backfill(self, engine: Engine, rows: Sequence[dict[str, Any]], version: str) -> int:
        """Judge the rows ``version`` scored before the judge was set up (their ``judge_gap`` is NULL),
        from the stored DermEval scores; returns how many were filled in."""
        t = Score.__table__
        ids = [r["id"] for r in rows if (r.get("case_id") or r["id"]) in self.references]
        stored: dict[str, dict[str, float]] = {}
        with engine.connect() as conn:
            for start in range(0, len(ids), 500):
                q = select(t.c.narrative_id, *[t.c[d] for d in DIMENSIONS]).where(
                    t.c.evaluator_version == version, t.c.judge_gap.is_(None),
                    t.c.narrative_id.in_(ids[start:start + 500]))
                stored.update({m["narrative_id"]: {d: m[d] for d in DIMENSIONS} for m in conn.execute(q).mappings()})
        todo = [r for r in rows if r["id"] in stored]
        judged = self.judge_rows(todo, [{"scores": stored[r["id"]]} for r in todo]) if todo else {}
        with engine.begin() as conn:
            for nid, values in judged.items():
                conn.execute(update(t).where(t.c.narrative_id == nid, t.c.evaluator_version == version)
                             .values(**values))
        return len(judged)
