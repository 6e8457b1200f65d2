"""Expert ratings in the store: submit (from the dashboard or a file), read back, measure agreement.

Rows are only ever added. A reviewer's latest row for a narrative is their rating; a "skipped"
row takes the narrative out of that reviewer's queue without rating it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from dermeval.formats.common import RowError, iter_jsonl
from dermeval.schema import DIMENSIONS, ScoreError, normalise_scores
from dermeval.store.models import ExpertRating, Narrative, now

MAX_COMMENT = 5000
MAX_REVIEWER = 200


class ReviewError(ValueError):
    """A rating that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Rating:
    narrative_id: str
    reviewer: str
    scores: dict[str, float] | None  # None: skipped
    comment: str = ""
    source: str = "dashboard"

    @property
    def decision(self) -> str:
        return "skipped" if self.scores is None else "rated"


def check_rating(r: Rating) -> Rating:
    """The rating, checked: a named reviewer, six scores on the 0-5 scale (or a skip), a bounded comment."""
    reviewer = (r.reviewer or "").strip()
    if not reviewer:
        raise ReviewError("reviewer: a signed-in reviewer is required")
    if len(reviewer) > MAX_REVIEWER or "\x00" in reviewer:
        raise ReviewError(f"reviewer: at most {MAX_REVIEWER} characters, no NUL")
    if not r.narrative_id or not isinstance(r.narrative_id, str):
        raise ReviewError("narrative_id: missing")
    if not isinstance(r.comment, str) or len(r.comment) > MAX_COMMENT or "\x00" in r.comment:
        raise ReviewError(f"comment: a string of at most {MAX_COMMENT} characters, no NUL")
    scores = None
    if r.scores is not None:
        try:
            scores = normalise_scores(r.scores)
        except ScoreError as exc:
            raise ReviewError(str(exc)) from None
    return Rating(r.narrative_id, reviewer, scores, r.comment.strip(), r.source)


def submit(engine: Engine, ratings: list[Rating]) -> list[int]:
    """Store checked ratings in one transaction; every narrative must be in the store. Returns the row ids."""
    checked = [check_rating(r) for r in ratings]
    ids = sorted({r.narrative_id for r in checked})
    with engine.begin() as conn:
        known = set(conn.execute(select(Narrative.__table__.c.id).where(Narrative.__table__.c.id.in_(ids))).scalars())
        missing = [i for i in ids if i not in known]
        if missing:
            raise ReviewError(f"narrative_id: not in the store: {', '.join(missing[:5])}"
                              + (f" (+{len(missing) - 5})" if len(missing) > 5 else ""))
        out = []
        for r in checked:
            row = {"narrative_id": r.narrative_id, "reviewer": r.reviewer, "decision": r.decision,
                   "comment": r.comment, "source": r.source[:200], "created": now(),
                   **{d: (r.scores or {}).get(d) for d in DIMENSIONS}}
            res = conn.execute(ExpertRating.__table__.insert().values(**row))
            out.append(int(res.inserted_primary_key[0]))
    return out


def read_file(path: Path, reviewer: str | None = None) -> tuple[list[Rating], list[RowError]]:
    """Ratings collected elsewhere, one JSON object per line:
    ``{"narrative_id", "reviewer"?, "scores": {six} | null (skipped), "comment"?}``.
    ``reviewer`` fills rows that name none. Bad rows come back as errors by line; the rest load."""
    good: list[Rating] = []
    bad: list[RowError] = []
    source = f"file:{path.name}"
    for line, obj in iter_jsonl(path):
        if isinstance(obj, RowError):
            bad.append(obj)
            continue
        rid = obj.get("narrative_id", obj.get("id"))
        try:
            if not isinstance(rid, str) or not rid:
                raise ReviewError("narrative_id: missing or not a string")
            scores = obj.get("scores")
            if scores is not None and not isinstance(scores, dict):
                raise ReviewError("scores: must be an object of six dimension scores, or null for a skip")
            good.append(check_rating(Rating(rid, obj.get("reviewer") or reviewer or "", scores,
                                            obj.get("comment") or "", source)))
        except ReviewError as exc:
            field, _, msg = str(exc).partition(": ")
            bad.append(RowError(str(path), line, field, msg or str(exc), rid if isinstance(rid, str) else None))
    return good, bad


def latest(engine: Engine, *, include_skips: bool = False) -> pd.DataFrame:
    """Each reviewer's latest row per narrative (their current rating), oldest first."""
    t = ExpertRating.__table__
    last = (select(t.c.narrative_id, t.c.reviewer, func.max(t.c.id).label("id"))
            .group_by(t.c.narrative_id, t.c.reviewer).subquery())
    q = select(t).join(last, t.c.id == last.c.id).order_by(t.c.id)
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q).mappings().all())
    if df.empty:
        return pd.DataFrame(columns=[c.name for c in t.columns])
    return df if include_skips else df[df["decision"] == "rated"].reset_index(drop=True)


def icc_2_1(matrix: np.ndarray) -> float:
    """ICC(2,1) (two-way random effects, absolute agreement, one rater) on a complete
    narratives x raters matrix; NaN when it is undefined (fewer than 2 of either)."""
    n, k = matrix.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = matrix.mean()
    ms_r = k * ((matrix.mean(1) - grand) ** 2).sum() / (n - 1)
    ms_c = n * ((matrix.mean(0) - grand) ** 2).sum() / (k - 1)
    resid = matrix - matrix.mean(1, keepdims=True) - matrix.mean(0, keepdims=True) + grand
    ms_e = (resid ** 2).sum() / ((n - 1) * (k - 1))
    denom = ms_r + (k - 1) * ms_e + k * (ms_c - ms_e) / n
    return float((ms_r - ms_e) / denom) if denom > 0 else float("nan")


def agreement(ratings: pd.DataFrame) -> dict[str, Any]:
    """Inter-reviewer agreement per dimension, and each reviewer against the others' consensus.

    Per dimension: ICC(2,1) over the narratives rated by the two most frequent co-raters' set
    (a complete matrix is needed), and the mean absolute difference between every pair of
    reviewers on a shared narrative. Per reviewer: MAE of their scores against the mean of the
    *other* reviewers of the same narrative (leave-one-out consensus), per dimension.
    """
    out: dict[str, Any] = {"n_ratings": int(len(ratings)), "n_narratives": int(ratings["narrative_id"].nunique())
                           if len(ratings) else 0, "n_reviewers": int(ratings["reviewer"].nunique())
                           if len(ratings) else 0, "dimensions": {}, "reviewers": {}}
    if ratings.empty:
        return out
    multi = ratings.groupby("narrative_id").filter(lambda g: len(g) >= 2)
    out["n_multi_rated"] = int(multi["narrative_id"].nunique()) if len(multi) else 0
    for d in DIMENSIONS:
        wide = multi.pivot_table(index="narrative_id", columns="reviewer", values=d, aggfunc="first")
        pairs = []
        for _, row in wide.iterrows():
            v = row.dropna().to_numpy(float)
            pairs += [abs(a - b) for i, a in enumerate(v) for b in v[i + 1:]]
        top = wide.count().sort_values(ascending=False).index[:2] if wide.shape[1] >= 2 else []
        complete = wide[list(top)].dropna().to_numpy(float) if len(top) == 2 else np.zeros((0, 2))
        out["dimensions"][d] = {"icc": _num(icc_2_1(complete)), "icc_n": int(len(complete)),
                                "pairwise_mae": _num(float(np.mean(pairs)) if pairs else float("nan")),
                                "pairs": len(pairs)}
    for reviewer, mine in multi.groupby("reviewer"):
        per = {}
        for d in DIMENSIONS:
            errs = []
            for nid, score in zip(mine["narrative_id"], mine[d], strict=True):
                others = multi[(multi["narrative_id"] == nid) & (multi["reviewer"] != reviewer)][d]
                if len(others):
                    errs.append(abs(float(score) - float(others.mean())))
            per[d] = _num(float(np.mean(errs)) if errs else float("nan"))
        out["reviewers"][str(reviewer)] = {"n": int(len(mine)), "mae_vs_consensus": per}
    return out


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 4)
