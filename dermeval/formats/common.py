"""Shared machinery of the format adapters: row errors, JSONL reading, safe paths.

Every adapter follows one rule: each input row ends up either loaded or rejected
with a :class:`RowError` naming the file, line and field, so that
``rows_in == loaded + rejected`` always holds and nothing is silently dropped.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

T = TypeVar("T")

# A DermBench narrative has a median of ~400 words (~2,500 characters); anything
# past this is not a narrative but a mistake (or an attack on memory).
MAX_TEXT_CHARS = 100_000
# A single JSONL row beyond this is rejected before json.loads ever sees it.
MAX_LINE_BYTES = 2 * MAX_TEXT_CHARS * 4


@dataclass(frozen=True)
class RowError:
    """Why one input row was rejected."""

    file: str
    line: int
    field: str
    message: str
    id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        rid = f" [id={self.id}]" if self.id else ""
        return f"{where}: {self.field}: {self.message}{rid}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field,
                "message": self.message, "id": self.id}


@dataclass
class LoadResult(Generic[T]):
    """Rows loaded from one source, the rows rejected, and how many rows came in."""

    source: str
    records: list[T] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows_in: int = 0
    # Problems that concern the source as a whole (not one row), e.g. an absent file.
    source_errors: list[RowError] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({(e.file, e.line) for e in self.errors})

    @property
    def ok(self) -> bool:
        return not self.errors and not self.source_errors

    def check_accounting(self) -> None:
        """Raise if any row was neither loaded nor rejected."""
        if self.rows_in != len(self.records) + self.rejected_rows:
            raise AssertionError(
                f"{self.source}: {self.rows_in} rows in, {len(self.records)} loaded, "
                f"{self.rejected_rows} rejected"
            )


def pydantic_errors(exc: ValidationError, file: str, line: int, rid: str | None) -> list[RowError]:
    """One RowError per problem pydantic found, with a dotted field path."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<row>"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(RowError(file, line, loc, msg, rid))
    return out


def parse_jsonl_line(raw: bytes, name: str, lineno: int) -> dict[str, Any] | RowError:
    """One JSONL line (bytes, newline optional) as a JSON object, or the RowError saying why not."""
    if len(raw) > MAX_LINE_BYTES:
        return RowError(name, lineno, "<row>", f"row is {len(raw):,} bytes, over the {MAX_LINE_BYTES:,}-byte limit")
    if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (editors on Windows)
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RowError(name, lineno, "<row>", f"not valid UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return RowError(name, lineno, "<row>", f"malformed JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return RowError(name, lineno, "<row>", "JSON nested too deeply")
    if not isinstance(obj, dict):
        return RowError(name, lineno, "<row>", f"expected a JSON object, got {type(obj).__name__}")
    if "\\u" in text.lower() and _has_lone_surrogate(obj):
        return RowError(name, lineno, "<row>", "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), "
                                               "which is not text")
    return obj


def _has_lone_surrogate(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """Yield ``(line_number, object)`` or ``(line_number, RowError)`` for each non-blank line.

    Bytes are decoded per line, so one non-UTF-8 line does not spoil the file.
    """
    name = str(path)
    with path.open("rb") as fh:
        for lineno, raw in enumerate(_bounded_lines(fh), start=1):
            if isinstance(raw, int):  # an over-long line, skipped without holding it in memory
                yield lineno, RowError(name, lineno, "<row>", f"row is over {raw:,} bytes, over the "
                                                              f"{MAX_LINE_BYTES:,}-byte limit")
            elif raw.strip():
                yield lineno, parse_jsonl_line(raw, name, lineno)


def _bounded_lines(fh, limit: int | None = None, block: int = 1 << 20) -> Iterator[bytes | int]:
    """The file's lines, each read at most ``limit`` + 1 bytes at a time: a longer line yields its
    length so far (an int) and the rest of it is skipped in blocks, so memory stays bounded."""
    limit = MAX_LINE_BYTES if limit is None else limit
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw
            continue
        size = len(raw)
        while True:
            rest = fh.readline(block)
            size += len(rest)
            if not rest or rest.endswith(b"\n"):
                break
        yield size


def load_jsonl(
    path: Path | str, parse: Callable[[dict[str, Any], str, int], T | list[RowError]],
    *, id_of: Callable[[T], str] | None = None,
) -> LoadResult[T]:
    """Read a JSONL file with ``parse`` turning each object into a record or row errors.

    With ``id_of``, a repeated id is rejected, naming the line where it was first seen.
    """
    path = Path(path)
    result: LoadResult[T] = LoadResult(source=str(path))
    if not path.is_file():
        result.source_errors.append(RowError(str(path), 0, "<file>", "file not found"))
        return result
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        result.rows_in += 1
        if isinstance(obj, RowError):
            result.errors.append(obj)
            continue
        parsed = parse(obj, str(path), lineno)
        if isinstance(parsed, list):
            result.errors.extend(parsed)
            continue
        if id_of is not None:
            rid = id_of(parsed)
            if rid in seen:
                result.errors.append(RowError(str(path), lineno, "id",
                                              f"duplicate id (first seen on line {seen[rid]})", rid))
                continue
            seen[rid] = lineno
        result.records.append(parsed)
    return result


def row_id(obj: dict[str, Any]) -> str | None:
    """The row's id as a string: a non-empty string or an integer (``true`` and ``""`` are not ids)."""
    rid = obj.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return None
    rid = str(rid)
    return rid if rid.strip() else None


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a string of acceptable length, else raise ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(f"{what} is {len(value):,} characters, over the {MAX_TEXT_CHARS:,}-character limit")
    return value


@contextlib.contextmanager
def atomic_open(path: Path | str, newline: str | None = None) -> Iterator[Any]:
    """A text file written in full or not at all: a temporary file beside it, renamed into place on success.

    A reader (the dashboard, the next stage) sees the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_jsonl(path: Path | str, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> int:
    """Write rows as compact, key-ordered JSONL (byte-stable for the same rows), atomically."""
    n = 0
    with atomic_open(path, newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def write_json(path: Path | str, obj: Any) -> None:
    """Write one JSON document, indented and key-sorted (byte-stable for the same object), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    with atomic_open(path) as fh:
        fh.write(text)


def write_csv(path: Path | str, rows: list[dict[str, Any]]) -> None:
    """Write rows as CSV with the first row's keys as the header (a lone ``empty`` column for none), atomically."""
    with atomic_open(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)


def read_rows(path: Path | str) -> list[dict[str, Any]]:
    """Read a JSONL file the project wrote itself; any bad row is a bug, so it raises."""
    rows = []
    for lineno, obj in iter_jsonl(Path(path)):
        if isinstance(obj, RowError):
            raise ValueError(f"{path}:{lineno}: {obj.message}")
        rows.append(obj)
    return rows
