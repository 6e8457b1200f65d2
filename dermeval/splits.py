"""Case-grouped splits: every narrative of a case lands in the same split, so no case leaks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

SPLITS = ("train", "val", "calib", "test")


def case_of(row: dict[str, Any]) -> str:
    return str(row.get("case_id") or row["id"])


def assign_splits(rows: Sequence[dict[str, Any]], *, val: float, calib: float, test: float,
                  seed: int) -> dict[str, str]:
    """Map each record id to a split by a seeded hash of its case id (stable as data grows)."""
    if min(val, calib, test) < 0 or val + calib + test >= 1:
        raise ValueError("split fractions must be >= 0 and leave room for training")
    bounds = (("test", test), ("calib", test + calib), ("val", test + calib + val))
    out = {}
    for row in rows:
        h = hashlib.sha256(f"{seed}:{case_of(row)}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        out[str(row["id"])] = next((name for name, edge in bounds if u < edge), "train")
    return out
