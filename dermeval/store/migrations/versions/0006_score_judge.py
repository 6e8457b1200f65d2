"""Score rows keep the reference-based judge's view where the case has an expert reference.

``judge_overall`` is the judge's overall score and ``judge_gap`` the largest per-dimension
absolute difference between DermEval's score and the judge's. The review queue ranks by the gap
(two evaluators disagreeing: an expert rating settles which is wrong). Rows without a reference,
and rows written before this revision, have none (NULL) and count as no disagreement.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('judge_overall', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('judge_gap', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_column('judge_gap')
        batch_op.drop_column('judge_overall')
