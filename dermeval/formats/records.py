"""DermEval records: an image, a diagnostic narrative and (for rated data) six scores.

Accepted shapes, all normalised to :class:`DermEvalRecord`::

    {"id", "image", "diagnostic_text", "evaluation_text"?, "scores": {six dimensions}}

- the text may also be called ``candidate_text`` or ``narrative``;
- dimensions may be snake_case keys or title-case names ("Medical Groundedness");
- the six scores may stand at the top level instead of under ``scores``;
- ``raters`` (optional) holds each expert's own six scores, ``{"r1": {...}, ...}``;
- ``problems`` (optional) lists the clinical problems a reviewer found, by the names of
  :mod:`dermeval.problems` (``["missing_referral"]``; ``[]`` says "none"): the evaluator's
  problem head learns from them.

Fields the schema does not know are kept in ``extra`` (e.g. DermSynth's ground truth),
and never reach an evaluator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dermeval.formats.common import LoadResult, RowError, check_text, load_jsonl, row_id
from dermeval.images import ImageError, check_image_file, resolve_under
from dermeval.problems import UnknownProblem, check_problems
from dermeval.schema import ScoreError, dimension_key, normalise_scores

TEXT_FIELDS = ("diagnostic_text", "candidate_text", "narrative")
KNOWN_FIELDS = {"id", "image", "evaluation_text", "scores", "raters", "problems", "model", "case_id",
                "category", "fitzpatrick", "image_source", *TEXT_FIELDS}


class DermEvalRecord(BaseModel):
    """One rated (or to-be-scored) narrative about one image."""

    model_config = ConfigDict(frozen=True)

    id: str
    image: str | None = None
    diagnostic_text: str
    evaluation_text: str | None = None
    scores: dict[str, float] | None = None
    raters: dict[str, dict[str, float]] | None = None
    problems: list[str] | None = None
    model: str | None = None
    case_id: str | None = None
    category: str | None = None
    fitzpatrick: int | None = None
    image_source: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The canonical on-disk form (snake_case keys, extras flattened back)."""
        row = self.model_dump(exclude={"extra"}, exclude_none=True)
        row.update(self.extra)
        return row


def _text(obj: dict[str, Any]) -> tuple[str, str]:
    for name in TEXT_FIELDS:
        if name in obj:
            return name, check_text(obj[name], name)
    raise ValueError("missing narrative text (one of " + ", ".join(TEXT_FIELDS) + ")")


def _scores(obj: dict[str, Any], require: bool) -> dict[str, float] | None:
    top = sorted(k for k in obj if k not in KNOWN_FIELDS and dimension_key(k))
    if "scores" in obj:
        if top:  # two places for one rating: which one is meant cannot be guessed
            raise ScoreError("scores", f"given both as 'scores' and as top-level field(s) {', '.join(top)}; "
                                       "keep one")
        raw = obj["scores"]
        if not isinstance(raw, dict):
            raise ScoreError("scores", "must be an object of six dimension scores")
        return normalise_scores(raw)
    if top:
        return normalise_scores({k: obj[k] for k in top}, field="<top-level scores>")
    if require:
        raise ScoreError("scores", "missing (give a 'scores' object or six top-level score fields)")
    return None


def _raters(obj: dict[str, Any]) -> dict[str, dict[str, float]] | None:
    raw = obj.get("raters")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise ScoreError("raters", "must be a non-empty object {rater_id: {six scores}}")
    out = {}
    for rater, scores in raw.items():
        if not isinstance(scores, dict):
            raise ScoreError(f"raters.{rater}", "must be an object of six dimension scores")
        out[str(rater)] = normalise_scores(scores, field=f"raters.{rater}")
    return out


def parse_record(
    obj: dict[str, Any], file: str, line: int, *, require_scores: bool = True,
    image_root: Path | None = None,
) -> DermEvalRecord | list[RowError]:
    """Turn one JSON object into a record, or into the list of everything wrong with it."""
    rid = row_id(obj)
    errors: list[RowError] = []
    if rid is None:
        errors.append(RowError(file, line, "id", "missing or not a string/number"))
    try:
        _, text = _text(obj)
    except ValueError as exc:
        errors.append(RowError(file, line, "diagnostic_text", str(exc), rid))
        text = ""
    evaluation = obj.get("evaluation_text")
    if evaluation is not None:
        try:
            check_text(evaluation, "evaluation_text")
        except ValueError as exc:
            errors.append(RowError(file, line, "evaluation_text", str(exc), rid))
    scores = raters = None
    try:
        scores = _scores(obj, require_scores)
    except ScoreError as exc:
        errors.append(RowError(file, line, exc.field, str(exc).split(": ", 1)[1], rid))
    try:
        raters = _raters(obj)
    except ScoreError as exc:
        errors.append(RowError(file, line, exc.field, str(exc).split(": ", 1)[1], rid))
    image = obj.get("image")
    if image is not None and not isinstance(image, str):
        errors.append(RowError(file, line, "image", "must be a relative path string", rid))
    elif image is not None and image_root is not None:
        try:
            check_image_file(resolve_under(image_root, image))
        except ImageError as exc:
            errors.append(RowError(file, line, "image", str(exc), rid))
    problems = obj.get("problems")
    if problems is not None:
        try:
            if not isinstance(problems, list):
                raise UnknownProblem(f"must be a list of problem names, got {type(problems).__name__}")
            problems = check_problems(problems)
        except UnknownProblem as exc:
            errors.append(RowError(file, line, "problems", str(exc), rid))
    fitz = obj.get("fitzpatrick")
    if fitz is not None and (not isinstance(fitz, int) or isinstance(fitz, bool) or not 1 <= fitz <= 6):
        errors.append(RowError(file, line, "fitzpatrick", f"must be an integer 1-6, got {fitz!r}", rid))
    if errors:
        return errors
    known = {k: obj.get(k) for k in ("model", "case_id", "category", "image_source")}
    return DermEvalRecord(
        id=rid, image=image, diagnostic_text=text, evaluation_text=evaluation, scores=scores,
        raters=raters, problems=problems, fitzpatrick=fitz,
        **{k: (str(v) if v is not None else None) for k, v in known.items()},
        extra={k: v for k, v in obj.items() if k not in KNOWN_FIELDS and not dimension_key(k)},
    )


def load_records(
    path: Path | str, *, require_scores: bool = True, image_root: Path | str | None = None,
) -> LoadResult[DermEvalRecord]:
    """Load a DermEval records JSONL file; images are checked when ``image_root`` is given."""
    root = Path(image_root) if image_root is not None else None
    return load_jsonl(
        path,
        lambda o, f, n: parse_record(o, f, n, require_scores=require_scores, image_root=root),
        id_of=lambda r: r.id,
    )
