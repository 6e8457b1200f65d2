"""Drift results and alerts carry the evaluator version; alerts get a lifecycle (who acknowledged, resolved, why).

Rows written before this revision belong to no known version: they keep an empty
``evaluator_version`` and stay readable (nothing is deleted).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evaluator_version', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      nullable=False, server_default=''))
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evaluator_version', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('acknowledged_by', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      nullable=True))
        batch_op.add_column(sa.Column('acknowledged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('resolved_reason', sa.Text(), nullable=True))
        batch_op.create_index('ix_alerts_evaluator', ['evaluator_version'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_evaluator')
        for column in ('resolved_reason', 'resolved_at', 'resolved_by', 'acknowledged_reason', 'acknowledged_at',
                       'acknowledged_by', 'evaluator_version'):
            batch_op.drop_column(column)
    with op.batch_alter_table('drift_results', schema=None) as batch_op:
        batch_op.drop_column('evaluator_version')
