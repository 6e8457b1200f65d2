"""Expert reference narratives for the judge, from any of the project's sources.

``load_references(path)`` accepts:

- a DermBench release folder (``data/manifest/dermbench_test.jsonl``);
- a DermSynth world or a DermBench-derived set (a folder whose ``cases.jsonl`` has
  ``reference_text``), including a folder of ``data/prepared`` holding several of them;
- a JSONL file of ``{"id", "reference_text", "diagnosis"?}`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dermeval.formats.common import LoadResult, RowError, check_text, load_jsonl, row_id


@dataclass(frozen=True)
class Reference:
    id: str
    text: str
    diagnosis: str | None = None
    category: str | None = None


def _parse(obj: dict[str, Any], file: str, line: int) -> Reference | list[RowError]:
    rid = row_id(obj)
    if rid is None:
        return [RowError(file, line, "id", "missing or not a string/number")]
    try:
        text = check_text(obj.get("reference_text"), "reference_text")
    except ValueError as exc:
        return [RowError(file, line, "reference_text", str(exc), rid)]
    if not text.strip():
        return [RowError(file, line, "reference_text", "empty reference narrative", rid)]
    diagnosis = obj.get("diagnosis") if isinstance(obj.get("diagnosis"), str) else None
    category = obj.get("category") if isinstance(obj.get("category"), str) else None
    return Reference(rid, text, diagnosis, category)


def load_references(path: Path | str) -> LoadResult[Reference]:
    """All references under ``path`` (see the module docstring for the accepted layouts)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"references not found: {path}")
    if path.is_file():
        return load_jsonl(path, _parse, id_of=lambda r: r.id)
    if (path / "data/manifest/dermbench_test.jsonl").is_file():
        from dermeval.formats.dermbench import load_dermbench

        release = load_dermbench(path)
        refs = [Reference(c.id, c.reference_text, c.diagnosis, c.category) for c in release.records]
        return LoadResult(release.source, refs, release.errors, release.rows_in, release.source_errors)
    files = sorted(path.glob("cases.jsonl")) or sorted(path.glob("*/cases.jsonl"))
    if not files:
        raise FileNotFoundError(f"{path}: not a DermBench release, a DermSynth world or a folder of them "
                                "(no data/manifest/dermbench_test.jsonl and no cases.jsonl)")
    merged: LoadResult[Reference] = LoadResult(str(path))
    for f in files:
        part = load_jsonl(f, _parse, id_of=lambda r: r.id)
        merged.records += part.records
        merged.errors += part.errors
        merged.source_errors += part.source_errors
        merged.rows_in += part.rows_in
    return merged
