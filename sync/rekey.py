"""Key rotations that rewrite stored data: sync-owned, run under every sync lease.

The new key ring (old keys kept, new key active) is written to its file *before* any
row is rewritten, so a crash midway leaves every value readable; each database is then
rewritten in one transaction. Blind indexes and row hashes are recomputed from the
decrypted plaintext, so rerunning a rotation always repairs a half-finished one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import Column, Connection, Engine, MetaData, Table, bindparam, select, update

from gateway.security.crypto import FieldCipher, email_index, row_hash
from gateway.replica.dbtypes import BLIND_INDEX, ENCRYPTED
from gateway.security.keys import KeyRing
from gateway.portal.models import PortalBase
from gateway.replica.tables import ReplicaBase
from gateway.replica.schema import encryption_context, hashed_columns, plaintext_of
from sync.locks import Lease, sync_lock_name

BATCH = 1000
RowRewrite = Callable[[dict[str, Any]], dict[str, Any]]


@contextmanager
def all_sync_leases(engine: Engine, connectors: Sequence[str], ttl_seconds: int) -> Iterator[None]:
    """Hold every connector's sync lease (in name order, so two rotations cannot deadlock)."""
    with ExitStack() as stack:
        for name in sorted(connectors):
            stack.enter_context(Lease(engine, sync_lock_name(name), ttl_seconds))
        stack.enter_context(Lease(engine, "replica:rekey", ttl_seconds))
        yield


def reencrypt(databases: Sequence[tuple[Engine, MetaData]], cipher: FieldCipher) -> dict[str, int]:
    """Rewrite every encrypted value not yet under the active field key."""

    def rewrite_for(table: Table) -> RowRewrite | None:
        columns = _columns(table, ENCRYPTED)
        if not columns:
            return None

        def rewrite(row: dict[str, Any]) -> dict[str, Any]:
            changed = {}
            for column in columns:
                token = row[column.name]
                if token is not None and not cipher.is_current(token):
                    context = encryption_context(table.name, column.name)
                    changed[column.name] = cipher.encrypt(cipher.decrypt(token, context), context)
            return changed

        return rewrite

    return _rewrite_all(databases, rewrite_for)


def recompute_blind_indexes(databases: Sequence[tuple[Engine, MetaData]], cipher: FieldCipher, ring: KeyRing) -> dict[str, int]:
    """Recompute every blind index under the active blind-index key."""

    def rewrite_for(table: Table) -> RowRewrite | None:
        sources = {column.name: str(column.info["of"]) for column in _columns(table, BLIND_INDEX)}
        if not sources:
            return None

        def rewrite(row: dict[str, Any]) -> dict[str, Any]:
            changed = {}
            for index_column, of in sources.items():
                email = cipher.decrypt_optional(row[of], encryption_context(table.name, of))
                value = email_index(ring, email)
                if value != row[index_column]:
                    changed[index_column] = value
            return changed

        return rewrite

    return _rewrite_all(databases, rewrite_for)


def recompute_row_hashes(engine: Engine, cipher: FieldCipher, ring: KeyRing) -> dict[str, int]:
    """Recompute every canonical row's hash under the active row-hash key."""

    def rewrite_for(table: Table) -> RowRewrite | None:
        if "row_hash" not in table.columns or not hashed_columns(table):
            return None

        def rewrite(row: dict[str, Any]) -> dict[str, Any]:
            value = row_hash(ring, plaintext_of(table, row, cipher))
            return {"row_hash": value} if value != row["row_hash"] else {}

        return rewrite

    return _rewrite_all([(engine, ReplicaBase.metadata)], rewrite_for)


def values_under_other_keys(databases: Sequence[tuple[Engine, MetaData]], cipher: FieldCipher) -> int:
    """How many encrypted values still name a key other than the active one."""
    stale = 0
    for engine, metadata in databases:
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                for column in _columns(table, ENCRYPTED):
                    for (token,) in connection.execute(select(column).where(column.is_not(None))):
                        stale += not cipher.is_current(token)
    return stale


def replica_and_portal(replica: Engine, portal: Engine) -> list[tuple[Engine, MetaData]]:
    return [(replica, ReplicaBase.metadata), (portal, PortalBase.metadata)]


def _columns(table: Table, kind: str) -> list[Column[Any]]:
    return [column for column in table.columns if column.info.get("storage") == kind]


def _rewrite_all(databases: Sequence[tuple[Engine, MetaData]], rewrite_for: Callable[[Table], RowRewrite | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for engine, metadata in databases:
        with engine.connect() as connection:
            connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            for table in metadata.sorted_tables:
                rewrite = rewrite_for(table)
                if rewrite is not None:
                    counts[table.name] = _rewrite_table(connection, table, rewrite)
            connection.commit()
    return counts


def _rewrite_table(connection: Connection, table: Table, rewrite: RowRewrite) -> int:
    """Walk the table by id in batches, updating the rows whose rewrite changes something."""
    rewritten, last_id = 0, 0
    while True:
        rows = connection.execute(
            select(table).where(table.c.id > last_id).order_by(table.c.id).limit(BATCH)
        ).mappings().all()
        if not rows:
            return rewritten
        last_id = rows[-1]["id"]
        changes = [(row["id"], rewrite(dict(row))) for row in rows]
        for row_id, changed in changes:
            if changed:
                values: dict[str, Any] = {name: bindparam(f"new_{name}") for name in changed}
                connection.execute(
                    update(table).where(table.c.id == bindparam("row_id")).values(values),
                    [{"row_id": row_id, **{f"new_{k}": v for k, v in changed.items()}}],
                )
                rewritten += 1
