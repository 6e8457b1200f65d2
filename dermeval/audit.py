"""An append-only audit log: one JSON line per decision or alias move (the registry writes it).

Each entry says what happened, to which versions, when, why, and by whom (the pipeline
or a named reviewer). Appends take an exclusive file lock, so concurrent writers never
interleave a line; nothing ever rewrites or truncates the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def actor(by: str | None = None) -> str:
    """Who acts: a named reviewer, else ``pipeline`` under DVC/CI, else the OS user."""
    if by:
        return by
    if os.environ.get("DVC_STAGE") or os.environ.get("CI"):
        return "pipeline"
    try:
        return f"user:{getpass.getuser()}"
    except OSError:
        return "user:unknown"


class AuditLog:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "unix": round(time.time(), 3),
                 "event": event, **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text("utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
        return out


@contextlib.contextmanager
def exclusive(lock_path: Path | str) -> Iterator[None]:
    """An exclusive inter-process lock (blocks until free); used around every alias move."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
