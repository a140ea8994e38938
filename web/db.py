"""Database sessions of a request: the replica only through the read-only engine."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import create_ro_engine, create_rw_engine, session_factory
from gateway.settings import Settings

EXTENSION = "gateway.db"


def init_app(app: Flask, settings: Settings) -> None:
    portal_engine = create_rw_engine(settings.portal.web)
    if portal_engine.dialect.name == "sqlite":
        # Several gunicorn workers share one SQLite file. A request reads, then writes (its
        # session's last activity, a throttle, an audit entry); a deferred transaction that
        # must upgrade after another worker committed fails at once with "database is
        # locked". Taking the write lock at BEGIN makes workers wait their turn instead.
        portal_engine = portal_engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")  # type: ignore[assignment]
    app.extensions[EXTENSION] = {
        # The web never writes the replica: this engine refuses at three layers.
        "replica": session_factory(create_ro_engine(settings.replica.web)),
        "portal": session_factory(portal_engine),
    }
    app.teardown_appcontext(_close_sessions)


def replica() -> Session:
    """This request's read-only replica session."""
    return _session("replica")


def portal() -> Session:
    """This request's portal session (accounts, sessions, audit trail)."""
    return _session("portal")


def _session(name: str) -> Session:
    key = f"db_{name}"
    if key not in g:
        factories: dict[str, sessionmaker[Session]] = current_app.extensions[EXTENSION]
        setattr(g, key, factories[name]())
    return getattr(g, key)


def _close_sessions(error: BaseException | None) -> None:
    for name in ("replica", "portal"):
        session = g.pop(f"db_{name}", None)
        if session is not None:
            session.close()
