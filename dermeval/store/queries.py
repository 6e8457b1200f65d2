"""The read queries of the dashboard; aggregates are computed in the database.

Each returns a pandas DataFrame (or a dict) and reads only indexed or pre-aggregated
tables (trust summaries, rollups), so a page renders quickly with millions of scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine

from dermeval.schema import DIMENSIONS
from dermeval.store.models import (
    Alert,
    Batch,
    Case,
    DriftResult,
    Narrative,
    PromotionEvent,
    Score,
    ScoreRollup,
    TrustSummary,
)

TABLES = {"batches": Batch, "narratives": Narrative, "scores": Score, "drift_results": DriftResult,
          "alerts": Alert, "trust_summaries": TrustSummary, "promotion_events": PromotionEvent}


def _df(engine: Engine, q) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(q).mappings().all())


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(m.__table__)).scalar_one())
                for name, m in TABLES.items()}


def evaluator_versions(engine: Engine) -> list[str]:
    """Evaluator versions with trust summaries, most recently used first."""
    t = TrustSummary.__table__
    q = select(t.c.evaluator_version, func.max(t.c.id).label("last")).group_by(t.c.evaluator_version)
    df = _df(engine, q.order_by(func.max(t.c.id).desc()))
    return list(df["evaluator_version"]) if len(df) else []


def trust_over_time(engine: Engine, evaluator_version: str, dimension: str | None = None,
                    models: Sequence[str] | None = None) -> pd.DataFrame:
    t = TrustSummary.__table__
    q = select(t).where(t.c.evaluator_version == evaluator_version)
    if dimension:
        q = q.where(t.c.dimension == dimension)
    if models:
        q = q.where(t.c.model.in_(list(models)))
    return _df(engine, q.order_by(t.c.week, t.c.batch_id, t.c.model))


def filtered_series(engine: Engine, evaluator_version: str, *, categories: Sequence[str] | None = None,
                    skin_types: Sequence[int] | None = None, weeks: tuple[int, int] | None = None) -> pd.DataFrame:
    """Mean per (batch, MLLM) of every dimension, over the chosen categories and skin types.

    Without a category or skin-type filter the per-batch trust summaries already hold the
    answer (one row per MLLM and dimension), so the rollups are only read when filtering.
    """
    if not categories and not skin_types:
        return _from_trust(engine, evaluator_version, weeks)
    r = ScoreRollup.__table__
    sums = [func.sum(r.c[f"sum_{d}"]).label(f"sum_{d}") for d in (*DIMENSIONS, "overall")]
    q = (select(r.c.batch_id, func.min(r.c.week).label("week"), r.c.model, func.sum(r.c.n).label("n"), *sums,
                func.sum(r.c.n_needs_review).label("n_needs_review"),
                func.sum(r.c.n_below_safety_floor).label("n_below_safety_floor"))
         .where(r.c.evaluator_version == evaluator_version).group_by(r.c.batch_id, r.c.model))
    if categories:
        q = q.where(r.c.category.in_(list(categories)))
    if skin_types:
        q = q.where(r.c.fitzpatrick.in_([int(s) for s in skin_types]))
    if weeks:
        q = q.where(r.c.week.between(*weeks))
    df = _df(engine, q.order_by("week", r.c.batch_id, r.c.model))
    if len(df):
        for d in (*DIMENSIONS, "overall"):
            df[d] = df[f"sum_{d}"] / df["n"]
        df["share_needs_review"] = df["n_needs_review"] / df["n"]
        df["share_below_safety_floor"] = df["n_below_safety_floor"] / df["n"]
    return df


def _from_trust(engine: Engine, evaluator_version: str, weeks: tuple[int, int] | None) -> pd.DataFrame:
    t = TrustSummary.__table__
    q = select(t.c.batch_id, t.c.week, t.c.model, t.c.dimension, t.c.n, t.c.mean, t.c.share_needs_review,
               t.c.share_below_safety_floor).where(t.c.evaluator_version == evaluator_version)
    if weeks:
        q = q.where(t.c.week.between(*weeks))
    long = _df(engine, q)
    if not len(long):
        return long
    wide = long.pivot_table(index=["batch_id", "week", "model"], columns="dimension", values="mean").reset_index()
    extra = long[long["dimension"] == "overall"][["batch_id", "model", "n", "share_needs_review",
                                                  "share_below_safety_floor"]]
    wide = wide.merge(extra, on=["batch_id", "model"])
    wide.columns.name = None
    return wide.sort_values(["week", "batch_id", "model"]).reset_index(drop=True)


def slice_values(engine: Engine) -> dict[str, list]:
    r = ScoreRollup.__table__
    with engine.connect() as conn:
        cats = [x for (x,) in conn.execute(select(r.c.category).distinct().order_by(r.c.category)) if x]
        fitz = [x for (x,) in conn.execute(select(r.c.fitzpatrick).distinct().order_by(r.c.fitzpatrick)) if x]
    return {"categories": cats, "skin_types": fitz}


def alerts(engine: Engine, *, status: str | Sequence[str] | None = None, evaluator_version: str | None = None,
           limit: int = 200) -> pd.DataFrame:
    """Alerts newest first, optionally of some statuses and of one evaluator version."""
    a = Alert.__table__
    q = select(a)
    if status:
        q = q.where(a.c.status.in_([status] if isinstance(status, str) else list(status)))
    if evaluator_version is not None:
        q = q.where(a.c.evaluator_version == evaluator_version)
    return _df(engine, q.order_by(a.c.created.desc(), a.c.id.desc()).limit(limit))


def open_alerts(engine: Engine, evaluator_version: str | None = None, limit: int = 100) -> pd.DataFrame:
    """Alerts nobody has resolved yet (open or acknowledged), of one evaluator version if given."""
    return alerts(engine, status=("open", "acknowledged"), evaluator_version=evaluator_version, limit=limit)


def drift_by_batch(engine: Engine, evaluator_version: str | None = None) -> pd.DataFrame:
    """Per batch: features tested and drifted, and where the Evidently report is (one evaluator's view)."""
    d, b = DriftResult.__table__, Batch.__table__
    q = (select(d.c.batch_id, func.min(b.c.week).label("week"), func.count().label("features"),
                func.sum(case((d.c.drifted, 1), else_=0)).label("drifted"),
                func.max(d.c.report_path).label("report_path"))
         .select_from(d.join(b, d.c.batch_id == b.c.id)))
    if evaluator_version is not None:
        q = q.where(d.c.evaluator_version == evaluator_version)
    return _df(engine, q.group_by(d.c.batch_id).order_by("week"))


def drift_details(engine: Engine, batch_id: str, evaluator_version: str | None = None) -> pd.DataFrame:
    d = DriftResult.__table__
    q = select(d).where(d.c.batch_id == batch_id)
    if evaluator_version is not None:
        q = q.where(d.c.evaluator_version == evaluator_version)
    return _df(engine, q.order_by(d.c.drifted.desc(), d.c.statistic))


def review_queue(engine: Engine, evaluator_version: str, batch_id: str | None = None, limit: int = 50
                 ) -> pd.DataFrame:
    """Narratives flagged needs_review, lowest overall score first."""
    s = Score.__table__
    q = select(s.c.narrative_id, s.c.batch_id, s.c.model, s.c.overall, s.c.safety, s.c.accuracy).where(
        s.c.evaluator_version == evaluator_version, s.c.needs_review.is_(True))
    if batch_id:
        q = q.where(s.c.batch_id == batch_id)
    return _df(engine, q.order_by(s.c.overall).limit(limit))


def narrative_detail(engine: Engine, narrative_id: str, evaluator_version: str) -> dict | None:
    s, n, c = Score.__table__, Narrative.__table__, Case.__table__
    q = (select(s, n.c.text, n.c.case_id, c.c.image, c.c.category, c.c.fitzpatrick)
         .select_from(s.join(n, s.c.narrative_id == n.c.id).outerjoin(c, n.c.case_id == c.c.id))
         .where(s.c.narrative_id == narrative_id, s.c.evaluator_version == evaluator_version))
    with engine.connect() as conn:
        row = conn.execute(q).mappings().first()
    return dict(row) if row else None


def promotion_events(engine: Engine, limit: int = 200) -> pd.DataFrame:
    p = PromotionEvent.__table__
    return _df(engine, select(p).order_by(p.c.time.desc(), p.c.id.desc()).limit(limit))


def batch_source(engine: Engine, batch_id: str) -> str | None:
    b = Batch.__table__
    with engine.connect() as conn:
        return conn.execute(select(b.c.source).where(b.c.id == batch_id)).scalar_one_or_none()
