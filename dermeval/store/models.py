"""The scored-narrative store: SQLModel tables (schema changes go through Alembic migrations).

Every score row is keyed by (narrative, evaluator version), so ingesting the same
narrative with the same evaluator twice leaves one row. ``model`` is kept on the score
row too (denormalised) because every dashboard query filters or groups by it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def now() -> datetime:
    return datetime.now(UTC)


class CandidateModel(SQLModel, table=True):
    """An MLLM under watch."""

    __tablename__ = "candidate_models"
    name: str = Field(primary_key=True, max_length=200)
    first_seen: datetime = Field(default_factory=now)


class Case(SQLModel, table=True):
    __tablename__ = "cases"
    id: str = Field(primary_key=True, max_length=200)
    category: str | None = Field(default=None, max_length=200)
    fitzpatrick: int | None = None
    image: str | None = Field(default=None, max_length=500)
    image_source: str | None = Field(default=None, max_length=50)
    skin_lightness: float | None = None  # mean L* of the image border (the skin around the lesion)


class Batch(SQLModel, table=True):
    __tablename__ = "batches"
    id: str = Field(primary_key=True, max_length=200)
    source: str = Field(max_length=500)
    week: int | None = Field(default=None, index=True)
    rows_in: int = 0
    rows_rejected: int = 0
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None


class Narrative(SQLModel, table=True):
    __tablename__ = "narratives"
    id: str = Field(primary_key=True, max_length=300)
    case_id: str | None = Field(default=None, foreign_key="cases.id", max_length=200, index=True)
    model: str = Field(foreign_key="candidate_models.name", max_length=200)
    batch_id: str = Field(foreign_key="batches.id", max_length=200, index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    words: int = 0
    hedges: int = 0
    referral_mentions: int = 0


class Score(SQLModel, table=True):
    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("narrative_id", "evaluator_version", name="uq_score_narrative_evaluator"),
        Index("ix_scores_batch_model", "batch_id", "model"),
        Index("ix_scores_model_evaluator", "model", "evaluator_version"),
        Index("ix_scores_review", "needs_review", "batch_id"),
        Index("ix_scores_review_queue", "evaluator_version", "needs_review", "overall"),
    )
    id: int | None = Field(default=None, primary_key=True)
    narrative_id: str = Field(foreign_key="narratives.id", max_length=300)
    evaluator_version: str = Field(max_length=200)
    batch_id: str = Field(foreign_key="batches.id", max_length=200)
    model: str = Field(max_length=200)
    accuracy: float
    safety: float
    medical_groundedness: float
    clinical_coverage: float
    reasoning_coherence: float
    description_precision: float
    overall: float
    u_accuracy: float
    u_safety: float
    u_medical_groundedness: float
    u_clinical_coverage: float
    u_reasoning_coherence: float
    u_description_precision: float
    needs_review: bool = False
    # novelty (1 = the calibration split's out-of-distribution threshold); NULL for rows scored before 0005
    novelty_text: float | None = None
    novelty_image: float | None = None
    # the reference-based judge, where the case has an expert reference (see dermeval/monitor/judging.py):
    # its overall score and the largest per-dimension |DermEval - judge|; NULL where not judged (and before 0006)
    judge_overall: float | None = None
    judge_gap: float | None = None
    critique: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # JSON: dimension -> the sentences that drove its score
    evidence: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    scored_at: datetime = Field(default_factory=now)


class DriftResult(SQLModel, table=True):
    __tablename__ = "drift_results"
    __table_args__ = (Index("ix_drift_batch", "batch_id"),)
    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=200)
    evaluator_version: str = Field(default="", max_length=200)  # the evaluator whose scores were compared
    reference: str = Field(max_length=500)  # which batches formed the reference window
    kind: str = Field(max_length=50)  # score | descriptor | embedding | image
    feature: str = Field(max_length=200)
    model: str | None = Field(default=None, max_length=200)  # the MLLM, for per-model features
    method: str = Field(max_length=50)
    statistic: float
    threshold: float
    drifted: bool
    reference_mean: float | None = None
    current_mean: float | None = None
    report_path: str | None = Field(default=None, max_length=500)
    created: datetime = Field(default_factory=now)


ALERT_STATUSES = ("open", "acknowledged", "resolved")


class Alert(SQLModel, table=True):
    """An alert raised on a batch by one evaluator version; open -> acknowledged -> resolved, with who and why."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_status", "status"), Index("ix_alerts_evaluator", "evaluator_version"))
    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=200)
    evaluator_version: str = Field(default="", max_length=200)
    kind: str = Field(max_length=50)  # drift | trust_drop
    model: str | None = Field(default=None, max_length=200)
    feature: str | None = Field(default=None, max_length=200)
    message: str = Field(sa_column=Column(Text, nullable=False))
    value: float | None = None
    threshold: float | None = None
    status: str = Field(default="open", max_length=20)
    created: datetime = Field(default_factory=now)
    acknowledged_by: str | None = Field(default=None, max_length=200)
    acknowledged_at: datetime | None = None
    acknowledged_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    resolved_by: str | None = Field(default=None, max_length=200)
    resolved_at: datetime | None = None
    resolved_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class TrustSummary(SQLModel, table=True):
    """Per batch, MLLM and dimension: mean with 95% CI, and the review / safety-floor shares."""

    __tablename__ = "trust_summaries"
    __table_args__ = (
        UniqueConstraint("batch_id", "model", "dimension", "evaluator_version", name="uq_trust"),
        Index("ix_trust_model_dimension", "model", "dimension"),
        Index("ix_trust_evaluator_week", "evaluator_version", "week"),
    )
    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=200)
    week: int | None = None
    model: str = Field(max_length=200)
    dimension: str = Field(max_length=50)
    evaluator_version: str = Field(max_length=200)
    n: int
    mean: float
    ci_low: float
    ci_high: float
    share_needs_review: float
    share_below_safety_floor: float
    rank: int | None = None  # rank of the MLLM on this dimension in this batch (1 = best)
    rank_stability: float | None = None  # share of bootstrap resamples giving the same rank


class ScoreRollup(SQLModel, table=True):
    """Sums per (batch, evaluator, MLLM, category, skin type): filtered dashboard series without a scan."""

    __tablename__ = "score_rollups"
    __table_args__ = (
        UniqueConstraint("batch_id", "evaluator_version", "model", "category", "fitzpatrick", name="uq_rollup"),
        Index("ix_rollup_model", "model", "evaluator_version"),
    )
    id: int | None = Field(default=None, primary_key=True)
    batch_id: str = Field(foreign_key="batches.id", max_length=200)
    week: int | None = None
    evaluator_version: str = Field(max_length=200)
    model: str = Field(max_length=200)
    category: str = Field(default="", max_length=200)
    fitzpatrick: int = 0  # 0 = unknown
    n: int
    sum_accuracy: float
    sum_safety: float
    sum_medical_groundedness: float
    sum_clinical_coverage: float
    sum_reasoning_coherence: float
    sum_description_precision: float
    sum_overall: float
    n_needs_review: int
    n_below_safety_floor: int


class PromotionEvent(SQLModel, table=True):
    """A copy of the registry's audit log, for the dashboard."""

    __tablename__ = "promotion_events"
    __table_args__ = (UniqueConstraint("time", "event", "version", "model", name="uq_promotion_event"),)
    id: int | None = Field(default=None, primary_key=True)
    time: str = Field(max_length=40)
    event: str = Field(max_length=40)
    model: str = Field(max_length=200)
    version: str | None = Field(default=None, max_length=40)
    by: str | None = Field(default=None, max_length=200)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class ExpertRating(SQLModel, table=True):
    """One reviewer's rating of one stored narrative (or the record that they skipped it).

    Append-only: a reviewer who changes their mind adds a row; the latest row per
    (narrative, reviewer) is their rating. Who and when are kept on every row.
    """

    __tablename__ = "expert_ratings"
    __table_args__ = (Index("ix_expert_ratings_narrative_reviewer", "narrative_id", "reviewer"),)
    id: int | None = Field(default=None, primary_key=True)
    narrative_id: str = Field(foreign_key="narratives.id", max_length=300)
    reviewer: str = Field(max_length=200)
    decision: str = Field(max_length=20)  # rated | skipped
    accuracy: float | None = None
    safety: float | None = None
    medical_groundedness: float | None = None
    clinical_coverage: float | None = None
    reasoning_coherence: float | None = None
    description_precision: float | None = None
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    source: str = Field(default="dashboard", max_length=200)  # dashboard | file:<name>
    created: datetime = Field(default_factory=now)
