"""Expert ratings as DermEval records: the ``feedback`` source that ``prepare`` merges.

One record per narrative with at least ``min_reviewers`` current ratings: the consensus (the
mean of the reviewers' latest ratings) as ``scores``, each reviewer's own under ``raters``, the
image (copied beside the file, so the dataset is self-contained and DVC versions it whole) and
the narrative's provenance (``feedback``: the batch, how many reviewers). Sorted and key-ordered:
the same ratings give a byte-identical file, so ``dvc repro`` retrains only when ratings change.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from dermeval.formats.common import write_jsonl
from dermeval.portable import resolve_path
from dermeval.review.ratings import latest
from dermeval.schema import DIMENSIONS
from dermeval.store.models import Case, Narrative


def export_records(engine: Engine, out: Path, *, min_reviewers: int = 1, project: Path | None = None) -> dict[str, Any]:
    """Write ``out`` (records JSONL) with its images under ``out``'s folder; returns a summary. Image
    paths the store keeps relative are read under ``project`` (default: the working folder)."""
    ratings = latest(engine)
    folder = out.parent
    rows: list[dict[str, Any]] = []
    images: dict[str, Path] = {}
    if len(ratings):
        n, c = Narrative.__table__, Case.__table__
        ids = sorted(set(ratings["narrative_id"]))
        with engine.connect() as conn:
            info = {r["id"]: r for r in conn.execute(
                select(n.c.id, n.c.text, n.c.model, n.c.batch_id, n.c.case_id, c.c.category, c.c.fitzpatrick,
                       c.c.image, c.c.image_source)
                .select_from(n.outerjoin(c, n.c.case_id == c.c.id)).where(n.c.id.in_(ids))).mappings()}
        for nid, group in ratings.groupby("narrative_id", sort=True):
            if len(group) < min_reviewers or nid not in info:
                continue
            meta = info[nid]
            raters = {str(r["reviewer"]): {d: float(r[d]) for d in DIMENSIONS}
                      for _, r in group.sort_values("reviewer").iterrows()}
            consensus = {d: round(sum(v[d] for v in raters.values()) / len(raters), 3) for d in DIMENSIONS}
            row = {"id": nid, "diagnostic_text": meta["text"], "scores": consensus, "raters": raters,
                   "model": meta["model"], "case_id": meta["case_id"], "category": meta["category"],
                   "fitzpatrick": meta["fitzpatrick"], "image_source": meta["image_source"],
                   "feedback": {"batch": meta["batch_id"], "reviewers": len(raters)}}
            if meta["image"]:
                src = resolve_path(meta["image"], project)
                if src is not None and src.is_file():
                    name = f"images/{hashlib.sha256(str(meta['image']).encode()).hexdigest()[:16]}{src.suffix}"
                    images[name] = src
                    row["image"] = name
            rows.append({k: v for k, v in row.items() if v is not None})
    for name, src in images.items():
        target = folder / name
        if not target.is_file() or target.stat().st_size != src.stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    write_jsonl(out, rows)
    summary = {"records": len(rows), "reviewers": sorted({r for row in rows for r in row["raters"]}),
               "batches": sorted({row["feedback"]["batch"] for row in rows}),
               "ratings": int(sum(len(row["raters"]) for row in rows))}
    return summary
