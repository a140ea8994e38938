"""audit chain guards (ids from 1, appends only at the head) and the health probe table

Revision ID: 0007
Revises: 0010
Created: 2026-12-01 16:40:00

On PostgreSQL, ``audit_append(json)`` (SECURITY DEFINER, owned by the tables' owner) is
the only way the web role can add an entry: it takes the chain's lock and refuses an
entry whose id or previous hash does not follow the head. ``gateway db grants`` then
grants the web role EXECUTE on it and no INSERT on the table. On SQLite a trigger
refuses the same unchained inserts (it cannot stop whoever may write the file).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gateway.replica.dbtypes
from gateway.errors import GatewayError

revision = '0007'
down_revision = '0010'  # 0004 as assigned; rebased onto main, whose head is 0010
branch_labels = None
depends_on = None

GENESIS = "0" * 64
ADVISORY_LOCK_ID = 0x6761_7564  # gateway.security.audit.ADVISORY_LOCK_ID, fixed here as the migration was written

POSTGRES_APPEND = f"""
CREATE FUNCTION audit_append(entry json) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    head_id integer;
    head_hash varchar;
BEGIN
    PERFORM pg_advisory_xact_lock({ADVISORY_LOCK_ID});
    SELECT id, entry_hash INTO head_id, head_hash FROM audit_log ORDER BY id DESC LIMIT 1;
    IF (entry->>'id')::integer IS DISTINCT FROM coalesce(head_id, 0) + 1
       OR entry->>'prev_hash' IS DISTINCT FROM coalesce(head_hash, '{GENESIS}') THEN
        RAISE EXCEPTION 'audit entry % does not follow the head of the chain (entry %)',
            entry->>'id', coalesce(head_id, 0) USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    INSERT INTO audit_log SELECT * FROM json_populate_record(NULL::audit_log, entry);
END
$$
"""

SQLITE_TRIGGER = f"""
CREATE TRIGGER audit_log_appends_at_the_head BEFORE INSERT ON audit_log
WHEN NEW.id IS NOT (SELECT coalesce(max(id), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT coalesce((SELECT entry_hash FROM audit_log ORDER BY id DESC LIMIT 1), '{GENESIS}')
BEGIN
    SELECT RAISE(ABORT, 'audit entries are appended only at the head of the chain');
END
"""


def upgrade() -> None:
    _refuse_rows_outside_the_chain()
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_check_constraint('chained_id', 'id >= 1')
    op.create_table('health_probes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', gateway.replica.dbtypes.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_health_probes'))
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_APPEND)
        op.execute("REVOKE ALL ON FUNCTION audit_append(json) FROM PUBLIC")
    else:
        op.execute(SQLITE_TRIGGER)


def _refuse_rows_outside_the_chain() -> None:
    """Rows below id 1 were never written by the gateway: keep them for inspection, never drop them here."""
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM audit_log WHERE id < 1")).scalar_one()
    if count:
        raise GatewayError(
            f"audit_log holds {count} row(s) with an id below 1, outside the hash chain (not written by the "
            "gateway): copy them out for your investigation (SELECT * FROM audit_log WHERE id < 1), delete "
            "them, then run gateway db upgrade again")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_append(json)")
    else:
        op.execute("DROP TRIGGER audit_log_appends_at_the_head")
    op.drop_table('health_probes')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_constraint('chained_id', type_='check')
