"""Alerts for IT and staff: raised once while open, mailed to the configured recipients."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db import rowcount
from gateway import mail
from gateway.replica.dbtypes import utcnow
from gateway.portal.models import Alert
from gateway.settings import Settings


def raise_alert(session: Session, settings: Settings, audience: str, kind: str, subject: str, message: str) -> bool:
    """Open an alert unless the same one is already open; True when a new one was raised."""
    open_already = session.scalars(select(Alert.id).where(
        Alert.kind == kind, Alert.subject == subject, Alert.resolved_at.is_(None))).first()
    if open_already is not None:
        return False
    session.add(Alert(audience=audience, kind=kind, subject=subject, message=message))
    session.commit()
    recipients = settings.alerts.it_recipients if audience == "it" else settings.alerts.staff_recipients
    mail.send(settings, recipients, f"[{settings.district.name} portal] {kind.replace('_', ' ')}: {subject}", message)
    return True


def resolve(session: Session, kind: str, subject: str) -> int:
    count = rowcount(session.execute(update(Alert).where(Alert.kind == kind, Alert.subject == subject,
                                                         Alert.resolved_at.is_(None)).values(resolved_at=utcnow())))
    session.commit()
    return count


def security_report_subject(report_id: int) -> str:
    """The subject a security report's alert is raised under, so closing the report can find it."""
    return f"report {report_id}"


def security_report_status_changed(session: Session, report_id: int, status: str) -> int:
    """A resolved report closes its alert (staff would otherwise see it open for ever); returns how many closed."""
    if status != "resolved":
        return 0
    return resolve(session, "security_report", security_report_subject(report_id))


def open_alerts(session: Session, audience: str) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.audience == audience, Alert.resolved_at.is_(None))
                                .order_by(Alert.created_at.desc())))
