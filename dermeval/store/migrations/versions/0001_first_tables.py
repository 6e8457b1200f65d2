"""The first tables: watched MLLMs, cases, batches, narratives and their scores.

Revision ID: 0001
Revises: None
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batches',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('week', sa.Integer(), nullable=True),
    sa.Column('rows_in', sa.Integer(), nullable=False),
    sa.Column('rows_rejected', sa.Integer(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batches_week'), ['week'], unique=False)

    op.create_table('candidate_models',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('first_seen', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )

    op.create_table('cases',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('fitzpatrick', sa.Integer(), nullable=True),
    sa.Column('image', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('image_source', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
    sa.Column('skin_lightness', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )

    op.create_table('narratives',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('case_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('words', sa.Integer(), nullable=False),
    sa.Column('hedges', sa.Integer(), nullable=False),
    sa.Column('referral_mentions', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.ForeignKeyConstraint(['model'], ['candidate_models.name'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('narratives', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_narratives_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_narratives_case_id'), ['case_id'], unique=False)

    op.create_table('scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('narrative_id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('evaluator_version', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('batch_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=False),
    sa.Column('safety', sa.Float(), nullable=False),
    sa.Column('medical_groundedness', sa.Float(), nullable=False),
    sa.Column('clinical_coverage', sa.Float(), nullable=False),
    sa.Column('reasoning_coherence', sa.Float(), nullable=False),
    sa.Column('description_precision', sa.Float(), nullable=False),
    sa.Column('overall', sa.Float(), nullable=False),
    sa.Column('u_accuracy', sa.Float(), nullable=False),
    sa.Column('u_safety', sa.Float(), nullable=False),
    sa.Column('u_medical_groundedness', sa.Float(), nullable=False),
    sa.Column('u_clinical_coverage', sa.Float(), nullable=False),
    sa.Column('u_reasoning_coherence', sa.Float(), nullable=False),
    sa.Column('u_description_precision', sa.Float(), nullable=False),
    sa.Column('needs_review', sa.Boolean(), nullable=False),
    sa.Column('critique', sa.Text(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('scored_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], ),
    sa.ForeignKeyConstraint(['narrative_id'], ['narratives.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('narrative_id', 'evaluator_version', name='uq_score_narrative_evaluator')
    )


def downgrade() -> None:
    op.drop_table('scores')
    with op.batch_alter_table('narratives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_narratives_batch_id'))
    with op.batch_alter_table('narratives', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_narratives_case_id'))
    op.drop_table('narratives')
    op.drop_table('cases')
    op.drop_table('candidate_models')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batches_week'))
    op.drop_table('batches')
