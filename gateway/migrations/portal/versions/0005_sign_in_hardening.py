"""sign-in hardening: normalised usernames, second-factor state on the server, revoked reset links

Revision ID: 0005
Revises: 0004
Created: 2026-12-01 16:40:00
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

import gateway.replica.dbtypes
from gateway.errors import GatewayError

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _normalise(name: str) -> str:
    # A copy of gateway.portal.accounts.normalize_username as it was at this revision:
    # a migration must not change when the service's code changes later.
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
        once = "".join(ch for ch in folded if not ch.isspace() and unicodedata.category(ch) != "Cf")
        if once == name:
            break
        name = once
    return name


def _backfill_username_keys() -> None:
    connection = op.get_bind()
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("username", sa.String),
                     sa.column("username_key", sa.String))
    keys: dict[str, list[str]] = defaultdict(list)
    for user_id, username in connection.execute(sa.select(users.c.id, users.c.username)).all():
        key = _normalise(username)[:64]
        keys[key].append(username)
        connection.execute(users.update().where(users.c.id == user_id).values(username_key=key))
    clashes = {key: names for key, names in keys.items() if len(names) > 1}
    if clashes:
        listed = "; ".join(f"{' / '.join(map(repr, names))}" for names in clashes.values())
        raise GatewayError(f"these accounts' usernames are one name once spaces and letter case are ignored: {listed}. "
                           "Rename all but one of each (UPDATE users SET username = ... WHERE id = ...), then migrate again.")


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('username_key', sa.String(length=64), nullable=True))
    _backfill_username_keys()
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('username_key', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_users_username_key'), ['username_key'])

    with op.batch_alter_table('recovery_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=True))

    op.create_table('second_factor_challenges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('enrol_secret', sa.Text(), nullable=True),
    sa.Column('ended_at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_second_factor_challenges_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_second_factor_challenges')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_second_factor_challenges_token_hash'))
    )
    with op.batch_alter_table('second_factor_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_second_factor_challenges_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('second_factor_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_second_factor_challenges_user_id'))
    op.drop_table('second_factor_challenges')
    with op.batch_alter_table('recovery_tokens', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_username_key'), type_='unique')
        batch_op.drop_column('username_key')
