"""DermBench judge output: ``{"id","candidate_model","judge_model","scores":{titles},"justification"}``.

A judge may leave dimensions out; they are listed in ``missing_metrics`` and never invented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dermeval.formats.common import LoadResult, RowError, check_text, load_jsonl, row_id
from dermeval.schema import DIMENSIONS, ScoreError, normalise_scores, to_titles


class JudgeOutput(BaseModel):
    """One judge verdict; ``scores`` use snake_case keys in memory, title case on disk."""

    model_config = ConfigDict(frozen=True)

    id: str
    candidate_model: str
    judge_model: str
    scores: dict[str, float]
    justification: str = ""
    missing_metrics: list[str] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id, "candidate_model": self.candidate_model, "judge_model": self.judge_model,
            "scores": to_titles(self.scores), "justification": self.justification,
        }
        if self.missing_metrics:
            row["missing_metrics"] = list(self.missing_metrics)
        return row


def parse_judge(obj: dict[str, Any], file: str, line: int) -> JudgeOutput | list[RowError]:
    rid = row_id(obj)
    errors = []
    if rid is None:
        errors.append(RowError(file, line, "id", "missing or not a string/number"))
    for name in ("candidate_model", "judge_model"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            errors.append(RowError(file, line, name, "missing or empty", rid))
    scores: dict[str, float] = {}
    raw = obj.get("scores")
    if not isinstance(raw, dict):
        errors.append(RowError(file, line, "scores", "missing or not an object", rid))
    else:
        try:
            scores = normalise_scores(raw, require_all=False, allow_text=True)
        except ScoreError as exc:
            errors.append(RowError(file, line, exc.field, str(exc).split(": ", 1)[1], rid))
    missing = obj.get("missing_metrics", [])
    absent = [d for d in DIMENSIONS if d not in scores]
    if raw is not None and isinstance(raw, dict) and absent and not missing:
        errors.append(RowError(file, line, "scores",
                               "missing dimension(s) " + ", ".join(absent) + " without 'missing_metrics'", rid))
    try:
        justification = check_text(obj.get("justification", ""), "justification")
    except ValueError as exc:
        errors.append(RowError(file, line, "justification", str(exc), rid))
        justification = ""
    if errors:
        return errors
    return JudgeOutput(id=rid, candidate_model=obj["candidate_model"], judge_model=obj["judge_model"],
                       scores=scores, justification=justification, missing_metrics=absent)


def load_judge_outputs(path: Path | str) -> LoadResult[JudgeOutput]:
    """Load judge output rows; one row per (id, candidate_model)."""
    return load_jsonl(path, parse_judge, id_of=lambda j: f"{j.id}\x1f{j.candidate_model}")
