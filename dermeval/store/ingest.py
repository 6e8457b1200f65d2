"""Idempotent writes: inserting what is already there changes nothing.

Every insert is ``INSERT ... ON CONFLICT DO NOTHING`` on the natural key, so a batch that
is re-run (after a crash, a kill -9, or by mistake) ends with exactly one row per
narrative and evaluator version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Integer, case, cast, func, literal, select, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from dermeval.schema import DIMENSIONS
from dermeval.store.models import (
    ALERT_STATUSES,
    Alert,
    Batch,
    CandidateModel,
    Case,
    DriftResult,
    Narrative,
    PromotionEvent,
    Score,
    ScoreRollup,
    TrustSummary,
    now,
)


def _insert(conn: Connection, model: type[SQLModel], rows: Sequence[dict[str, Any]],
            keys: Sequence[str]) -> int:
    """Insert rows, skipping those whose ``keys`` are already stored; returns how many were new."""
    if not rows:
        return 0
    table = model.__table__
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    new = 0
    for start in range(0, len(rows), 500):
        stmt = insert(table).on_conflict_do_nothing(index_elements=list(keys)).returning(table.c[keys[0]])
        new += len(conn.execute(stmt, list(rows[start:start + 500])).all())
    return new


def upsert_batch(conn: Connection, batch: dict[str, Any]) -> None:
    existing = conn.execute(select(Batch.__table__).where(Batch.__table__.c.id == batch["id"])).first()
    if existing is None:
        _insert(conn, Batch, [batch], ["id"])
    else:
        conn.execute(Batch.__table__.update().where(Batch.__table__.c.id == batch["id"]).values(
            {k: v for k, v in batch.items() if k != "id"}))


def add_models(conn: Connection, names: Iterable[str]) -> None:
    _insert(conn, CandidateModel, [{"name": n} for n in sorted(set(names))], ["name"])


def add_cases(conn: Connection, cases: Sequence[dict[str, Any]]) -> None:
    _insert(conn, Case, cases, ["id"])


def add_narratives(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    _insert(conn, Narrative, rows, ["id"])


# Row field -> the store column it lands in: one rule for SQLite and PostgreSQL, checked before
# any insert (SQLite would store a 10,000-character id; PostgreSQL would abort the whole chunk).
STORED_FIELDS = {"id": Narrative.__table__.c.id, "case_id": Case.__table__.c.id,
                 "model": CandidateModel.__table__.c.name, "category": Case.__table__.c.category,
                 "image": Case.__table__.c.image, "image_source": Case.__table__.c.image_source}


def store_problems(row: dict[str, Any], text_field: str = "diagnostic_text") -> list[str]:
    """What in a batch row the store cannot hold: an over-long key or name, a NUL character."""
    out = []
    for name, column in STORED_FIELDS.items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > column.type.length:
            out.append(f"{name}: {len(value):,} characters, over the store's {column.type.length}")
    for name in (*STORED_FIELDS, text_field):
        value = row.get(name)
        if isinstance(value, str) and "\x00" in value:
            out.append(f"{name}: holds a NUL character (\\u0000), which is not text")
    return out


def narrative_conflicts(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Rows whose id is already stored for another narrative: ``{id: what differs}``.

    A narrative id names one text by one MLLM; a new batch that reuses it for other content
    would otherwise be read as "already scored" and its narrative silently dropped.
    """
    t = Narrative.__table__
    wanted = {r["id"]: r for r in rows}
    out: dict[str, str] = {}
    ids = list(wanted)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for rid, stored_text, model, batch in conn.execute(
                select(t.c.id, t.c.text, t.c.model, t.c.batch_id).where(t.c.id.in_(chunk))):
            new = wanted[rid]
            what = [name for name, old, now in (("text", stored_text, new["text"]), ("MLLM", model, new["model"]))
                    if old != now]
            if what:
                out[rid] = (f"id already stored (batch {batch}) with another {' and '.join(what)}; "
                            "a narrative id names one text by one MLLM: give this row a new id")
    return out


def add_scores(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Store score rows; returns how many were new (a concurrent monitor may have stored some first)."""
    return _insert(conn, Score, rows, ["narrative_id", "evaluator_version"])


def scored_ids(conn: Connection, ids: Sequence[str], evaluator_version: str) -> set[str]:
    t = Score.__table__
    out: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        out.update(r[0] for r in conn.execute(select(t.c.narrative_id).where(
            t.c.evaluator_version == evaluator_version, t.c.narrative_id.in_(chunk))))
    return out


def replace_batch_results(conn: Connection, batch_id: str, evaluator_version: str,
                          trust: Sequence[dict[str, Any]], drift: Sequence[dict[str, Any]]) -> None:
    """Trust summaries and drift results of a batch are recomputed as a whole: replace them.

    On PostgreSQL two monitors finishing the same batch take turns (a transaction-scoped
    advisory lock per batch and evaluator), so the second replaces the first's rows instead of
    colliding with them; SQLite serialises writers by itself.
    """
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"{batch_id}\0{evaluator_version}".encode()).digest()[:8], "big") >> 1
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    tt, dt = TrustSummary.__table__, DriftResult.__table__
    conn.execute(tt.delete().where(tt.c.batch_id == batch_id, tt.c.evaluator_version == evaluator_version))
    conn.execute(dt.delete().where(dt.c.batch_id == batch_id, dt.c.evaluator_version == evaluator_version))
    if trust:
        conn.execute(tt.insert(), list(trust))
    if drift:
        conn.execute(dt.insert(), [{**d, "evaluator_version": evaluator_version} for d in drift])


def add_alerts(conn: Connection, batch_id: str, evaluator_version: str, alerts: Sequence[dict[str, Any]]) -> None:
    """Alerts of a rerun batch replace that batch's open alerts by the same evaluator version.

    Acknowledged and resolved alerts stay, and so does every alert another evaluator version
    raised: a new champion's run adds its own view, it does not erase its predecessor's.
    """
    t = Alert.__table__
    mine = (t.c.batch_id == batch_id) & (t.c.evaluator_version == evaluator_version)
    conn.execute(t.delete().where(mine, t.c.status == "open"))
    # An alert someone already acknowledged or resolved is not raised again by a rerun.
    handled = {(r.kind, r.model, r.feature) for r in conn.execute(
        select(t.c.kind, t.c.model, t.c.feature).where(mine, t.c.status != "open"))}
    fresh = [{**a, "evaluator_version": evaluator_version} for a in alerts
             if (a["kind"], a.get("model"), a.get("feature")) not in handled]
    if fresh:
        conn.execute(t.insert(), fresh)


class AlertError(ValueError):
    """An alert cannot take that step (unknown id, already resolved, no reason)."""


def set_alert_status(conn: Connection, alert_id: int, status: str, by: str, reason: str) -> dict[str, Any]:
    """Move an alert on: ``acknowledged`` (seen, being handled) or ``resolved`` (closed), with who and why."""
    t = Alert.__table__
    if status not in ALERT_STATUSES[1:]:
        raise AlertError(f"an alert can be acknowledged or resolved, not {status!r}")
    if not reason.strip() or not by.strip():
        raise AlertError("who and why are required")
    row = conn.execute(t.select().where(t.c.id == alert_id)).mappings().first()
    if row is None:
        raise AlertError(f"no alert {alert_id}")
    if row["status"] == "resolved":
        raise AlertError(f"alert {alert_id} is already resolved (by {row['resolved_by']})")
    if row["status"] == status:
        raise AlertError(f"alert {alert_id} is already {status}")
    prefix = "acknowledged" if status == "acknowledged" else "resolved"
    values = {"status": status, f"{prefix}_by": by[:200], f"{prefix}_at": now(), f"{prefix}_reason": reason}
    conn.execute(t.update().where(t.c.id == alert_id).values(**values))
    return {**dict(row), **values}


def add_promotion_events(conn: Connection, events: Sequence[dict[str, Any]]) -> None:
    rows = [{"time": e["time"], "event": e["event"], "model": e.get("model", ""), "version": e.get("version"),
             "by": e.get("by"), "reason": e.get("reason") or ""} for e in events]
    _insert(conn, PromotionEvent, rows, ["time", "event", "version", "model"])


def rebuild_rollups(conn: Connection, batch_id: str, evaluator_version: str, week: int | None,
                    safety_floor: float) -> None:
    """Recompute the batch's sums per (MLLM, category, skin type) in the database."""
    r, s, n, c = ScoreRollup.__table__, Score.__table__, Narrative.__table__, Case.__table__
    conn.execute(r.delete().where(r.c.batch_id == batch_id, r.c.evaluator_version == evaluator_version))
    category = func.coalesce(c.c.category, literal(""))
    fitz = func.coalesce(c.c.fitzpatrick, literal(0))
    cols = [literal(batch_id), literal(week, Integer), literal(evaluator_version), s.c.model, category, fitz,
            func.count()]
    cols += [func.sum(s.c[d]) for d in (*DIMENSIONS, "overall")]
    cols += [func.sum(cast(s.c.needs_review, Integer)),
             func.sum(case((s.c.safety < safety_floor, 1), else_=0))]
    q = (select(*cols).select_from(s.join(n, s.c.narrative_id == n.c.id).outerjoin(c, n.c.case_id == c.c.id))
         .where(s.c.batch_id == batch_id, s.c.evaluator_version == evaluator_version)
         .group_by(s.c.model, category, fitz))
    names = ["batch_id", "week", "evaluator_version", "model", "category", "fitzpatrick", "n",
             *[f"sum_{d}" for d in (*DIMENSIONS, "overall")], "n_needs_review", "n_below_safety_floor"]
    conn.execute(r.insert().from_select(names, q))
