"""The user guidelines (policy III): published versions, and who accepted which."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.portal.models import GuidelineAcceptance, GuidelineVersion

DEFAULT_GUIDELINES = """\
By using the Parent & Student Portal you agree to these guidelines:

1. Never share your password with anyone, not even with your children.
2. Never set a browser or device to log in to the portal automatically.
3. Never try to change any information in the portal.
4. Never look at, or try to look at, another student's information.
5. If you suspect a security problem, report it to the Student Accounting Department
   through the portal's "Report a problem" page, and do not show it to anyone else.
6. A person identified as a security risk is denied access to the portal.
"""


def current(session: Session) -> GuidelineVersion | None:
    return session.scalars(select(GuidelineVersion).order_by(GuidelineVersion.version.desc()).limit(1)).first()


def publish(session: Session, body: str, published_by: int | None = None) -> GuidelineVersion:
    """A new version: every user must accept it before any other page."""
    latest = session.scalar(select(func.max(GuidelineVersion.version))) or 0
    version = GuidelineVersion(version=latest + 1, body=body.strip() + "\n", published_by_id=published_by)
    session.add(version)
    session.flush()
    return version


def ensure_published(session: Session) -> GuidelineVersion:
    return current(session) or publish(session, DEFAULT_GUIDELINES)


def has_accepted_current(session: Session, user_id: int) -> bool:
    """Whether the user accepted the version in force (the default one, if none was published).

    One query: it runs before every page.
    """
    latest = select(GuidelineVersion.id).order_by(GuidelineVersion.version.desc()).limit(1).scalar_subquery()
    accepted = select(GuidelineAcceptance.id).where(GuidelineAcceptance.user_id == user_id,
                                                    GuidelineAcceptance.version_id == latest).exists()
    version_id, found = session.execute(select(latest, accepted)).one()
    if version_id is None:
        ensure_published(session)
        return False
    return bool(found)


def accept(session: Session, user_id: int, version_id: int) -> None:
    if session.scalars(select(GuidelineAcceptance.id).where(GuidelineAcceptance.user_id == user_id,
                                                            GuidelineAcceptance.version_id == version_id)).first() is None:
        session.add(GuidelineAcceptance(user_id=user_id, version_id=version_id))
