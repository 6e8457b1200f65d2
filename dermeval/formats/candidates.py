"""Candidate narratives written by the MLLMs under watch: ``{"id", "model", "candidate_text"}``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from dermeval.formats.common import LoadResult, RowError, check_text, load_jsonl, row_id


class CandidateNarrative(BaseModel):
    """One narrative from one candidate MLLM about one case."""

    model_config = ConfigDict(frozen=True)

    id: str
    model: str
    candidate_text: str


def parse_candidate(obj: dict[str, Any], file: str, line: int) -> CandidateNarrative | list[RowError]:
    rid = row_id(obj)
    errors = []
    if rid is None:
        errors.append(RowError(file, line, "id", "missing or not a string/number"))
    model = obj.get("model")
    if not isinstance(model, str) or not model.strip():
        errors.append(RowError(file, line, "model", "missing or empty model name", rid))
    if "candidate_text" not in obj:
        errors.append(RowError(file, line, "candidate_text", "missing", rid))
    else:
        try:
            check_text(obj["candidate_text"], "candidate_text")
        except ValueError as exc:
            errors.append(RowError(file, line, "candidate_text", str(exc), rid))
    if errors:
        return errors
    return CandidateNarrative(id=rid, model=model, candidate_text=obj["candidate_text"])


def load_candidates(path: Path | str) -> LoadResult[CandidateNarrative]:
    """Load candidate narratives; ids must be unique per (id, model) pair."""
    return load_jsonl(path, parse_candidate, id_of=lambda c: f"{c.id}\x1f{c.model}")
