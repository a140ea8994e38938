"""source resource ids: an API item's server id -> the natural key it was read with (Ed-Fi /deletes)

Revision ID: 0004
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('source_resource_ids',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connector', sa.String(length=64), nullable=False),
    sa.Column('resource', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_resource_ids')),
    sa.UniqueConstraint('connector', 'resource', 'resource_id', name='uq_source_resource_ids_item')
    )


def downgrade() -> None:
    op.drop_table('source_resource_ids')
