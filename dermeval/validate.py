"""Check a dataset file or folder without running anything else.

Recognised inputs: the DermBench release folder, a DermSynth world (or a
DermBench-derived dataset) folder, and JSONL files of DermEval records, candidate
narratives or judge output (the kind is sniffed from the first readable row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dermeval.formats.candidates import load_candidates
from dermeval.formats.common import LoadResult, RowError, iter_jsonl, load_jsonl
from dermeval.formats.dermbench import MANIFEST, is_dermbench_root, load_dermbench
from dermeval.formats.judge import load_judge_outputs
from dermeval.formats.records import load_records, parse_record
from dermeval.schema import dimension_key


@dataclass
class SourceReport:
    path: str
    kind: str
    rows_in: int
    loaded: int
    errors: list[RowError]
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "rows_in": self.rows_in, "loaded": self.loaded,
                "rejected": len({(e.file, e.line) for e in self.errors if e.line}),
                "errors": [e.to_dict() for e in self.errors], **({"facts": self.facts} if self.facts else {})}


def _report(kind: str, result: LoadResult, **facts: Any) -> SourceReport:
    result.check_accounting()
    return SourceReport(result.source, kind, result.rows_in, len(result.records),
                        result.source_errors + result.errors, facts)


def sniff(path: Path) -> str:
    """Guess a JSONL file's format from its first readable row."""
    for _, obj in iter_jsonl(path):
        if isinstance(obj, RowError):
            continue
        if "cot_sha256" in obj:
            return "dermbench-manifest"
        if "judge_model" in obj:
            return "judge"
        scored = "scores" in obj or any(dimension_key(k) for k in obj)
        if scored:
            return "records"
        if "candidate_text" in obj and "model" in obj and "image" not in obj:
            return "candidates"
        return "narratives"
    return "narratives"


def validate_file(path: Path, image_root: Path | None = None) -> SourceReport:
    kind = sniff(path)
    if kind == "dermbench-manifest":
        return validate_dermbench(path.parents[2])
    if kind == "judge":
        return _report(kind, load_judge_outputs(path))
    if kind == "candidates":
        return _report(kind, load_candidates(path))
    return _report(kind, load_records(path, require_scores=kind == "records", image_root=image_root))


def validate_dermbench(root: Path, dermnet_root: Path | None = None) -> SourceReport:
    result = load_dermbench(root, dermnet_root)
    mismatches = sum(e.field == "cot_sha256" for e in result.errors)
    categories = {c.category for c in result.records}
    return _report("dermbench", result, cases=len(result.records), categories=len(categories),
                   sha256_mismatches=mismatches, real_images=sum(c.has_real_image for c in result.records))


def validate_world(root: Path) -> list[SourceReport]:
    manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    files = manifest.get("files", {})
    reports = []
    if "cases" in files:
        reports.append(_report("world-cases", _load_cases(root / files["cases"], root)))
    if "ratings" in files:
        reports.append(_report("world-ratings", load_records(root / files["ratings"], image_root=root)))
    if "candidates" in files:
        reports.append(_report("candidates", load_candidates(root / files["candidates"])))
    for batch in files.get("batches", []):
        reports.append(_report("batch", load_records(root / batch["batch"], require_scores=False, image_root=root)))
    return reports


def _load_cases(path: Path, root: Path) -> LoadResult:
    # A case row carries its reference narrative as the text of an unscored record.
    def parse(obj, f, n):
        return parse_record({**obj, "diagnostic_text": obj.get("reference_text")}, f, n,
                            require_scores=False, image_root=root)

    return load_jsonl(path, parse, id_of=lambda r: r.id)


def validate_path(path: Path | str, dermnet_root: Path | str | None = None,
                  image_root: Path | str | None = None) -> list[SourceReport]:
    """Validate whatever ``path`` holds; one report per source file.

    A single JSONL file has its images checked like a folder's: relative to ``image_root``, or
    to the file's own folder; a path escaping that root, a missing and an undecodable image
    are each reported with their line.
    """
    path = Path(path)
    dn = Path(dermnet_root) if dermnet_root else None
    if not path.exists():
        return [SourceReport(str(path), "missing", 0, 0, [RowError(str(path), 0, "<path>", "does not exist")])]
    if image_root is not None and not Path(image_root).is_dir():
        return [SourceReport(str(image_root), "missing", 0, 0,
                             [RowError(str(image_root), 0, "<image-root>", "is not a folder")])]
    if path.is_file():
        return [validate_file(path, image_root=Path(image_root) if image_root else path.parent)]
    if is_dermbench_root(path):
        return [validate_dermbench(path, dn)]
    if (path / "manifest.json").is_file():
        return validate_world(path)
    files = sorted(p for p in path.rglob("*.jsonl") if not p.name.endswith(".truth.jsonl"))
    if not files:
        return [SourceReport(str(path), "empty", 0, 0,
                             [RowError(str(path), 0, "<path>", f"no dataset found (no {MANIFEST} and no *.jsonl)")])]
    return [validate_file(p, image_root=Path(image_root) if image_root else path) for p in files]
