"""The canary set: a fixed rated set every evaluator version scores, so a change of evaluator shows.

When the watched MLLMs' scores move, either they changed or the evaluator did. The canary's
narratives never change, so its scores move only when the evaluator does: per version, its
mean scores and its deviation from the canary's own ratings, and how far each version moved
the canary against the version that scored it before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from dermeval.formats.common import RowError, iter_jsonl
from dermeval.schema import DIMENSIONS, normalise_scores
from dermeval.store.models import Score

CANARY_BATCH = "canary"


def canary_ratings(path: Path) -> dict[str, dict[str, float]]:
    """``{narrative id: six scores}`` of the canary file's rated rows (unreadable rows are left out)."""
    out = {}
    for _, obj in iter_jsonl(path):
        if isinstance(obj, RowError) or not isinstance(obj.get("scores"), dict):
            continue
        try:
            out[str(obj["id"])] = normalise_scores(obj["scores"])
        except (KeyError, ValueError):
            continue
    return out


def canary_report(engine: Engine, path: Path | None) -> list[dict[str, Any]]:
    """One row per evaluator version that scored the canary, in the order they first did."""
    if path is None or not Path(path).is_file():
        return []
    truth = canary_ratings(Path(path))
    s = Score.__table__
    q = (select(s.c.evaluator_version, s.c.narrative_id, *[s.c[d] for d in DIMENSIONS], s.c.overall, s.c.scored_at)
         .where(s.c.batch_id == CANARY_BATCH).order_by(s.c.scored_at, s.c.id))
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).mappings().all())
    if df.empty:
        return []
    rows, previous = [], None
    for version in df["evaluator_version"].drop_duplicates():  # rows come oldest first: first-scored order
        mine = df[df["evaluator_version"] == version].set_index("narrative_id")
        rated = [n for n in mine.index if n in truth]
        row: dict[str, Any] = {"evaluator_version": version, "n": int(len(mine)), "n_rated": len(rated),
                               "mean_overall": round(float(mine["overall"].mean()), 3)}
        for d in DIMENSIONS:
            err = [abs(float(mine.at[n, d]) - truth[n][d]) for n in rated]
            row[f"mae_{d}"] = round(float(np.mean(err)), 3) if err else None
        overall_err = [abs(float(mine.at[n, "overall"]) - float(np.mean(list(truth[n].values())))) for n in rated]
        row["mae_overall"] = round(float(np.mean(overall_err)), 3) if overall_err else None
        if previous is not None:
            shared = mine.index.intersection(previous.index)
            moved = (mine.loc[shared, "overall"] - previous.loc[shared, "overall"]).abs()
            row["moved_vs_previous"] = round(float(moved.mean()), 3) if len(shared) else None
        else:
            row["moved_vs_previous"] = None
        rows.append(row)
        previous = mine
    return rows
