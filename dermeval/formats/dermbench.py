"""The DermBench text release: a manifest of 4,000 cases and one reference narrative each.

Layout (as published)::

    ROOT/data/manifest/dermbench_test.jsonl   id, source, split, category, diagnosis,
                                              dermnet_image_path, cot, cot_sha256
    ROOT/data/manifest/categories.csv         the 23 categories and their counts
    ROOT/data/cot/<category>/<image>.txt      the expert reference narratives

DermNet images are not part of the release. With ``dermnet_root`` each case's image
is resolved under it; without, the case is marked ``has_real_image=False`` and a
stand-in is rendered later (see :mod:`dermeval.synth`).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from dermeval.formats.common import MAX_TEXT_CHARS, LoadResult, RowError, load_jsonl, row_id
from dermeval.images import ImageError, check_image_file, resolve_under

MANIFEST = Path("data/manifest/dermbench_test.jsonl")
CATEGORIES = Path("data/manifest/categories.csv")
REQUIRED = ("id", "category", "diagnosis", "dermnet_image_path", "cot", "cot_sha256")


class DermBenchCase(BaseModel):
    """One DermBench case with its reference narrative."""

    model_config = ConfigDict(frozen=True)

    id: str
    category: str
    diagnosis: str
    dermnet_image_path: str
    cot: str
    cot_sha256: str
    reference_text: str
    image_path: str | None = None  # absolute path of the real image, when a DermNet root was given
    split: str | None = None
    source: str | None = None

    @property
    def has_real_image(self) -> bool:
        return self.image_path is not None


def is_dermbench_root(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def read_categories(root: Path) -> list[str]:
    """The category names listed in the release's categories.csv (empty if absent)."""
    path = root / CATEGORIES
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [row["category"] for row in csv.DictReader(fh) if row.get("category")]


def _parse_case(
    obj: dict[str, Any], file: str, line: int, root: Path, dermnet_root: Path | None,
    categories: set[str],
) -> DermBenchCase | list[RowError]:
    rid = row_id(obj)
    errors = [RowError(file, line, k, "missing or not a string", rid)
              for k in REQUIRED if not isinstance(obj.get(k), str) or not obj[k]]
    if errors:
        return errors
    if categories and obj["category"] not in categories:
        errors.append(RowError(file, line, "category", f"unknown category {obj['category']!r}", rid))
    text = ""
    try:
        cot_path = resolve_under(root, obj["cot"])
        data = cot_path.read_bytes()
    except ImageError as exc:  # same path rules as images: stay inside the release
        errors.append(RowError(file, line, "cot", str(exc).replace("image path", "path"), rid))
    except OSError as exc:
        errors.append(RowError(file, line, "cot", f"cannot read reference narrative: {exc.strerror}", rid))
    else:
        digest = hashlib.sha256(data).hexdigest()
        if digest != obj["cot_sha256"].lower():
            errors.append(RowError(file, line, "cot_sha256",
                                   f"sha256 mismatch for {obj['cot']}: manifest {obj['cot_sha256'][:12]}..., "
                                   f"file {digest[:12]}...", rid))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(RowError(file, line, "cot", f"{obj['cot']} is not valid UTF-8", rid))
        if len(text) > MAX_TEXT_CHARS:
            errors.append(RowError(file, line, "cot", f"reference is {len(text):,} characters, over the limit", rid))
    image_path = None
    if dermnet_root is not None:
        try:
            resolved = resolve_under(dermnet_root, obj["dermnet_image_path"])
            check_image_file(resolved)
            image_path = str(resolved)
        except ImageError as exc:
            errors.append(RowError(file, line, "dermnet_image_path", str(exc), rid))
    if errors:
        return errors
    return DermBenchCase(
        id=rid, category=obj["category"], diagnosis=obj["diagnosis"],
        dermnet_image_path=obj["dermnet_image_path"], cot=obj["cot"], cot_sha256=obj["cot_sha256"],
        reference_text=text, image_path=image_path, split=obj.get("split"), source=obj.get("source"),
    )


def load_dermbench(root: Path | str, dermnet_root: Path | str | None = None) -> LoadResult[DermBenchCase]:
    """Load and verify the release at ``root`` (sha256 of every reference is checked)."""
    root = Path(root)
    dn = Path(dermnet_root) if dermnet_root is not None else None
    categories = set(read_categories(root))
    result = load_jsonl(root / MANIFEST, lambda o, f, n: _parse_case(o, f, n, root, dn, categories),
                        id_of=lambda c: c.id)
    if dn is not None and not dn.is_dir():
        result.source_errors.append(RowError(str(dn), 0, "<dermnet_root>", "DermNet root is not a folder"))
    return result
