"""Whether the portal database can take a write: what /healthz reports beyond "it answers"."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.portal.models import HealthProbe
from gateway.replica.dbtypes import utcnow


def takes_writes(session: Session) -> bool:
    """Insert a probe row and roll it back: a read-only file or mount, a read-only transaction
    mode or lost permissions say no (a full disk only where the insert itself needs space).

    Nothing is kept either way; the session is left with no open transaction.
    """
    try:
        session.execute(insert(HealthProbe).values(at=utcnow()))
        return True
    except SQLAlchemyError:
        return False
    finally:
        session.rollback()
