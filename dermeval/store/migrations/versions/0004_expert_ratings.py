"""Expert ratings: reviewers' own six scores per stored narrative, append-only, with who and when.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

DIMS = ('accuracy', 'safety', 'medical_groundedness', 'clinical_coverage', 'reasoning_coherence',
        'description_precision')


def upgrade() -> None:
    op.create_table('expert_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('narrative_id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('reviewer', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('decision', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    *[sa.Column(d, sa.Float(), nullable=True) for d in DIMS],
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['narrative_id'], ['narratives.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('expert_ratings', schema=None) as batch_op:
        batch_op.create_index('ix_expert_ratings_narrative_reviewer', ['narrative_id', 'reviewer'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('expert_ratings', schema=None) as batch_op:
        batch_op.drop_index('ix_expert_ratings_narrative_reviewer')
    op.drop_table('expert_ratings')
