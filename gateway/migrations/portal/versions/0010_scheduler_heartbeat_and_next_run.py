"""scheduler heartbeats; each sync job's next run time on its own row

Revision ID: 0010
Revises: 0005
Created: 2026-12-01 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.replica.dbtypes

revision = '0010'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scheduler_heartbeats',
    sa.Column('holder', sa.String(length=255), nullable=False),
    sa.Column('started_at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_poll_at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('holder', name=op.f('pk_scheduler_heartbeats'))
    )
    with op.batch_alter_table('sync_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_run_at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_jobs', schema=None) as batch_op:
        batch_op.drop_column('next_run_at')
    op.drop_table('scheduler_heartbeats')
