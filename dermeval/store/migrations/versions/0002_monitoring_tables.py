"""Drift results, alerts, trust summaries, promotion events; indexes for the dashboard's queries.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('promotion_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('event', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('time', 'event', 'version', 'model', name='uq_promotion_event')
    )

    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('feature', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('created', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_status', ['status'], unique=False)

    op.create_table('drift_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('feature', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('statistic', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('drifted', sa.Boolean(), nullable=False),
    sa.Column('reference_mean', sa.Float(), nullable=True),
    sa.Column('current_mean', sa.Float(), nullable=True),
    sa.Column('report_path', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('created', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.create_index('ix_drift_batch', ['batch_id'], unique=False)

    op.create_table('trust_summaries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('week', sa.Integer(), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('dimension', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('evaluator_version', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('mean', sa.Float(), nullable=False),
    sa.Column('ci_low', sa.Float(), nullable=False),
    sa.Column('ci_high', sa.Float(), nullable=False),
    sa.Column('share_needs_review', sa.Float(), nullable=False),
    sa.Column('share_below_safety_floor', sa.Float(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('rank_stability', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_id', 'model', 'dimension', 'evaluator_version', name='uq_trust')
    )
    with op.batch_alter_table('trust_summaries', schema=None) as batch_op:
        batch_op.create_index('ix_trust_model_dimension', ['model', 'dimension'], unique=False)
        batch_op.create_index('ix_trust_evaluator_week', ['evaluator_version', 'week'], unique=False)

    op.create_table('score_rollups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('week', sa.Integer(), nullable=True),
    sa.Column('evaluator_version', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('fitzpatrick', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    *[sa.Column(f'sum_{d}', sa.Float(), nullable=False) for d in (
        'accuracy', 'safety', 'medical_groundedness', 'clinical_coverage', 'reasoning_coherence',
        'description_precision', 'overall')],
    sa.Column('n_needs_review', sa.Integer(), nullable=False),
    sa.Column('n_below_safety_floor', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_id', 'evaluator_version', 'model', 'category', 'fitzpatrick', name='uq_rollup')
    )
    with op.batch_alter_table('score_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_rollup_model', ['model', 'evaluator_version'], unique=False)

    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.create_index('ix_scores_review', ['needs_review', 'batch_id'], unique=False)
        batch_op.create_index('ix_scores_review_queue', ['evaluator_version', 'needs_review', 'overall'],
                              unique=False)
        batch_op.create_index('ix_scores_batch_model', ['batch_id', 'model'], unique=False)
        batch_op.create_index('ix_scores_model_evaluator', ['model', 'evaluator_version'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('score_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_rollup_model')
    op.drop_table('score_rollups')
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_index('ix_scores_review_queue')
        batch_op.drop_index('ix_scores_review')
        batch_op.drop_index('ix_scores_model_evaluator')
        batch_op.drop_index('ix_scores_batch_model')
    with op.batch_alter_table('trust_summaries', schema=None) as batch_op:
        batch_op.drop_index('ix_trust_evaluator_week')
        batch_op.drop_index('ix_trust_model_dimension')
    op.drop_table('trust_summaries')
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.drop_index('ix_drift_batch')
    op.drop_table('drift_results')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_status')
    op.drop_table('alerts')
    op.drop_table('promotion_events')
