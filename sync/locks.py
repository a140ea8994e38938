"""One run per connector at a time, across processes and hosts: a lease in the portal DB.

A lease is a row naming its holder (``host:pid:token``) and an expiry. Taking it is one
atomic statement (an INSERT, or an UPDATE of an expired row), so two schedulers on two
hosts cannot both win. A holder that dies stops renewing and its lease lapses after the
TTL; on its own host, a dead holder's lease is taken over at once.

Where the portal is on PostgreSQL, the lease is also a session advisory lock held on a
connection of its own: PostgreSQL releases it the moment the holder's connection dies,
on whichever host, so the next run need not wait for the TTL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import socket
from types import TracebackType

from sqlalchemy import Connection, Engine, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.replica.dbtypes import utcnow
from gateway.errors import LockHeld
from gateway.portal.models import Lock


SYNC_PREFIX = "sync:"


def sync_lock_name(connector: str) -> str:
    return f"{SYNC_PREFIX}{connector}"


def running_connectors(session: Session) -> set[str]:
    """Connectors whose sync lease is held and not expired: a run of each is going."""
    names = session.scalars(select(Lock.name).where(Lock.name.startswith(SYNC_PREFIX), Lock.expires_at > utcnow()))
    return {name.removeprefix(SYNC_PREFIX) for name in names}


def _died_here(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_try_advisory_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Lease:
    """``with Lease(engine, name, ttl):`` holds ``name`` or raises ``LockHeld`` at once."""

    def __init__(self, engine: Engine, name: str, ttl_seconds: int, holder: str | None = None) -> None:
        self.engine = engine
        self.name = name
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self.holder = holder or new_holder()
        self._advisory: Connection | None = None

    def acquire(self) -> None:
        if self.engine.dialect.name == "postgresql":
            self._acquire_advisory()
            return
        now = utcnow()
        with self.engine.connect() as connection:
            connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            taken = connection.execute(
                update(Lock)
                .where(Lock.name == self.name, Lock.expires_at < now)
                .values(holder=self.holder, acquired_at=now, expires_at=now + self.ttl)
            ).rowcount
            if not taken:
                try:
                    connection.execute(
                        insert(Lock).values(name=self.name, holder=self.holder, acquired_at=now, expires_at=now + self.ttl)
                    )
                except IntegrityError:
                    connection.rollback()
                    self._take_over_or_raise(self.current_holder() or "another process")
                    return
            connection.commit()

    def _take_over_or_raise(self, holder: str) -> None:
        """Take the lease of a holder that died on this host; otherwise it is really held."""
        if not _died_here(holder):
            raise LockHeld(self.name, holder)
        now = utcnow()
        with self.engine.begin() as connection:
            taken = connection.execute(
                update(Lock).where(Lock.name == self.name, Lock.holder == holder)
                .values(holder=self.holder, acquired_at=now, expires_at=now + self.ttl)
            ).rowcount
        if not taken:
            raise LockHeld(self.name, self.current_holder() or "another process")

    def _acquire_advisory(self) -> None:
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": advisory_key(self.name)}).scalar():
            connection.close()
            raise LockHeld(self.name, self.current_holder() or "another process")
        self._advisory = connection
        # Holding the advisory lock proves any lease row left behind belongs to a dead holder.
        now = utcnow()
        with self.engine.begin() as writer:
            values = {"holder": self.holder, "acquired_at": now, "expires_at": now + self.ttl}
            if not writer.execute(update(Lock).where(Lock.name == self.name).values(**values)).rowcount:
                writer.execute(insert(Lock).values(name=self.name, **values))

    def renew(self) -> None:
        """Push the expiry forward; raises ``LockHeld`` if the lease was lost meanwhile."""
        with self.engine.begin() as connection:
            renewed = connection.execute(
                update(Lock).where(Lock.name == self.name, Lock.holder == self.holder).values(expires_at=utcnow() + self.ttl)
            ).rowcount
        if not renewed:
            raise LockHeld(self.name, self.current_holder() or "nobody (it lapsed)")

    def release(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(Lock).where(Lock.name == self.name, Lock.holder == self.holder))
        if self._advisory is not None:
            self._advisory.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": advisory_key(self.name)})
            self._advisory.close()
            self._advisory = None

    def current_holder(self) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(select(Lock.holder).where(Lock.name == self.name)).scalar()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
