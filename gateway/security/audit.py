"""The append-only, hash-chained audit trail (DESIGN.md, "Audit trail").

Each entry's hash is an HMAC, under the audit key named by the entry, of its own fields,
its id and the previous entry's hash; so an edit, a removal or a swap breaks the chain.
Appends are serialized (PostgreSQL advisory transaction lock; SQLite BEGIN IMMEDIATE),
and after each the new head is written to a checkpoint file outside the database, so
removing the newest entries is detected too.
"""

from __future__ import annotations

import datetime as dt
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from sqlalchemy import Connection, Engine, func, insert, select, text

from gateway.replica.dbtypes import utcnow
from gateway.security.keys import KeyRing
from gateway.portal.models import AuditEntry

GENESIS = "0" * 64
ADVISORY_LOCK_ID = 0x6761_7564  # "gaud": one chain per portal database
CHAINED_FIELDS = ("at", "action", "actor_user_id", "actor_role", "source_system",
                  "student_source_id", "target", "ip", "detail", "key_id")


@dataclass(frozen=True)
class Event:
    """What happened, by whom, to which student; never a password or a record's content."""

    action: str
    actor_user_id: int | None = None
    actor_role: str | None = None
    source_system: str | None = None
    student_source_id: str | None = None
    target: str | None = None
    ip: str | None = None
    detail: Mapping[str, Any] | None = None


def append(engine: Engine, ring: KeyRing, checkpoint: Path, event: Event, at: dt.datetime | None = None) -> int:
    """Append one entry in its own transaction and return its id.

    Call it after committing the change it records: it opens its own connection. The
    checkpoint file stays locked from before the chain's head is read until the new head
    is written to it, so verification never sees a committed entry the checkpoint lacks.
    """
    with _locked_checkpoint(checkpoint, fcntl.LOCK_EX) as handle, engine.connect() as connection:
        _serialize(connection)
        head = connection.execute(
            select(AuditEntry.id, AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1)
        ).first()
        entry_id, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS)
        fields = _fields(event, at or utcnow(), ring.active)
        entry_hash = _hash(ring.active_key, entry_id, prev_hash, fields)
        _insert(connection, {"id": entry_id, "prev_hash": prev_hash, "entry_hash": entry_hash, **fields})
        connection.commit()
        _advance_checkpoint(handle, entry_id, entry_hash)
    return entry_id


def _insert(connection: Connection, row: Mapping[str, Any]) -> None:
    """On PostgreSQL through audit_append(), which checks the link: the web role may not INSERT."""
    if connection.dialect.name == "postgresql":
        at = row["at"].astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
        connection.execute(text("SELECT audit_append(CAST(:entry AS json))"),
                           {"entry": json.dumps({**row, "at": at}, default=str)})
    else:
        connection.execute(insert(AuditEntry).values(**row))


def _serialize(connection: Connection) -> None:
    """Take the chain's write lock before reading its head (one chain, many workers)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
    else:
        # Read by the begin listener of gateway.db: the transaction takes SQLite's write lock.
        connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")


def _fields(event: Event, at: dt.datetime, key_id: str) -> dict[str, Any]:
    return {
        "at": at, "action": event.action, "actor_user_id": event.actor_user_id,
        "actor_role": event.actor_role, "source_system": event.source_system,
        "student_source_id": event.student_source_id, "target": event.target,
        "ip": event.ip, "detail": dict(event.detail or {}), "key_id": key_id,
    }


def _hash(key: bytes, entry_id: int, prev_hash: str, fields: Mapping[str, Any]) -> str:
    at = fields["at"].astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    material = [entry_id, prev_hash, *[at if name == "at" else fields[name] for name in CHAINED_FIELDS]]
    payload = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


@contextlib.contextmanager
def _locked_checkpoint(path: Path, mode: int) -> Iterator[TextIO]:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, mode)
        yield handle


def write_checkpoint(path: Path, entry_id: int, entry_hash: str) -> None:
    """Record the newest head outside the database; never move it backwards."""
    with _locked_checkpoint(path, fcntl.LOCK_EX) as handle:
        _advance_checkpoint(handle, entry_id, entry_hash)


def _advance_checkpoint(handle: TextIO, entry_id: int, entry_hash: str) -> None:
    handle.seek(0)
    current = _parse_checkpoint(handle.read())
    if current is None or current[0] < entry_id:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"id": entry_id, "hash": entry_hash}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_checkpoint(path: Path) -> tuple[int, str] | None:
    try:
        return _parse_checkpoint(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _parse_checkpoint(text_value: str) -> tuple[int, str] | None:
    if not text_value.strip():
        return None
    data = json.loads(text_value)
    return int(data["id"]), str(data["hash"])


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    problem: str | None = None
    entry_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problem": self.problem, "entry_id": self.entry_id}


def verify(engine: Engine, ring: KeyRing, checkpoint: Path) -> Verification:
    """Check every row: none below id 1, the whole chain, then the checkpoint; report the first problem.

    The checkpoint and the newest id are read together under the checkpoint's lock, so an
    append in flight is either wholly in this check or wholly after it. Call it holding no
    write transaction on the portal database: an append holding that lock may wait for it.
    """
    with engine.connect() as connection:
        mark, newest = _snapshot(connection, checkpoint)
        broken, _ = _walk(connection, ring, newest)
        if not broken.ok:
            return broken
        head_hash = _hash_of(connection, mark[0]) if mark else None
    return _check_checkpoint(checkpoint, mark, broken.checked, head_hash)


def _walk(connection: Connection, ring: KeyRing, newest: int) -> tuple[Verification, str]:
    """The chain alone, up to ``newest``: its first problem, or ok with the count and the head's hash."""
    outside = connection.execute(select(func.min(AuditEntry.id)).where(AuditEntry.id < 1)).scalar()
    if outside is not None:
        return Verification(False, 0, f"entry {outside} is outside the chain (ids start at 1)", outside), GENESIS
    expected_id, prev_hash, checked = 1, GENESIS, 0
    for entry in _entries(connection, newest):
        problem = _check_entry(entry, expected_id, prev_hash, ring)
        if problem:
            return Verification(False, checked, problem, entry["id"]), prev_hash
        expected_id, prev_hash, checked = entry["id"] + 1, entry["entry_hash"], checked + 1
    return Verification(True, checked), prev_hash


def accept_head(engine: Engine, ring: KeyRing, checkpoint: Path) -> tuple[int | None, Verification]:
    """Move the checkpoint to the chain's head after a person has checked the entries past it.

    For an append that committed but died before writing the checkpoint. Refused (the
    verification is returned, not ok) unless every entry verifies under the audit keys.
    Returns the checkpoint's previous entry id and the chain's verification.
    """
    with _locked_checkpoint(checkpoint, fcntl.LOCK_EX) as handle, engine.connect() as connection:
        newest = connection.execute(select(func.coalesce(func.max(AuditEntry.id), 0))).scalar_one()
        chain, head_hash = _walk(connection, ring, newest)
        previous = _parse_checkpoint(handle.read())
        if chain.ok and chain.checked:
            _advance_checkpoint(handle, chain.checked, head_hash)
    return (previous[0] if previous else None), chain


def _snapshot(connection: Connection, checkpoint: Path) -> tuple[tuple[int, str] | None, int]:
    if not checkpoint.exists():
        return None, connection.execute(select(func.coalesce(func.max(AuditEntry.id), 0))).scalar_one()
    with _locked_checkpoint(checkpoint, fcntl.LOCK_SH) as handle:
        newest = connection.execute(select(func.coalesce(func.max(AuditEntry.id), 0))).scalar_one()
        return _parse_checkpoint(handle.read()), newest


def _entries(connection: Connection, newest: int, batch: int = 5000) -> Iterator[Mapping[str, Any]]:
    last = 0
    while True:
        rows = connection.execute(
            select(AuditEntry.__table__).where(AuditEntry.id > last, AuditEntry.id <= newest)
            .order_by(AuditEntry.id).limit(batch)
        ).mappings().all()
        if not rows:
            return
        yield from cast(Sequence[Mapping[str, Any]], rows)  # RowMappings keyed by column name
        last = rows[-1]["id"]


def _check_entry(entry: Mapping[str, Any], expected_id: int, prev_hash: str, ring: KeyRing) -> str | None:
    if entry["id"] != expected_id:
        return f"entries {expected_id}..{entry['id'] - 1} are missing"
    if entry["prev_hash"] != prev_hash:
        return f"entry {entry['id']} does not follow entry {expected_id - 1} (removed or reordered)"
    key = ring.keys.get(entry["key_id"])
    if key is None:
        return f"entry {entry['id']} names audit key {entry['key_id']!r}, which the key ring lacks"
    fields = {name: entry[name] for name in CHAINED_FIELDS}
    if not hmac.compare_digest(_hash(key, entry["id"], entry["prev_hash"], fields), entry["entry_hash"]):
        return f"entry {entry['id']} was altered"
    return None


def _hash_of(connection: Connection, entry_id: int) -> str | None:
    return connection.execute(select(AuditEntry.entry_hash).where(AuditEntry.id == entry_id)).scalar()


def _check_checkpoint(checkpoint: Path, mark: tuple[int, str] | None, checked: int,
                      head_hash: str | None) -> Verification:
    if mark is None:
        if checked:
            return Verification(False, checked, f"checkpoint file {checkpoint} is missing")
        return Verification(True, 0)
    mark_id, mark_hash = mark
    if mark_id > checked:
        return Verification(False, checked, f"the newest entries were removed: checkpoint names entry {mark_id}, the chain ends at {checked}", mark_id)
    if head_hash != mark_hash:
        return Verification(False, checked, f"entry {mark_id} differs from the checkpoint", mark_id)
    if checked > mark_id:
        return Verification(False, mark_id, f"entries {mark_id + 1}..{checked} are past the checkpoint's head "
                                            f"(entry {mark_id}): appended around the gateway, or by an append that "
                                            "died before its checkpoint; check them, then gateway audit accept-head",
                            mark_id + 1)
    return Verification(True, checked)


def rotate_key(engine: Engine, ring: KeyRing, checkpoint: Path, actor: str | None = None) -> KeyRing:
    """Start a new chain segment: the old key signs an entry naming the new key's id (and who rotated it)."""
    new_ring = ring.rotated()
    detail = {"new_key_id": new_ring.active, **({"actor": actor} if actor else {})}
    append(engine, ring, checkpoint, Event("audit.key_rotated", actor_role="cli" if actor else None, detail=detail))
    return new_ring
