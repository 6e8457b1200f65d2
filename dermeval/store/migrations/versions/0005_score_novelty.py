"""Score rows keep the evaluator's novelty: how far the narrative and its image lie from its training data.

The review queue ranks by it (an out-of-distribution narrative is worth an expert's rating).
Rows written before this revision have none (NULL) and rank as if in distribution.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('novelty_text', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('novelty_image', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_column('novelty_image')
        batch_op.drop_column('novelty_text')
