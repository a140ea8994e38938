"""Outgoing mail: SMTP from ``[mail]``, or an outbox folder (the default, so demos work offline)."""

from __future__ import annotations

import secrets
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from gateway.replica.dbtypes import utcnow
from gateway.security.keys import load_secret
from gateway.settings import Settings


def send(settings: Settings, to: Sequence[str], subject: str, body: str) -> Path | None:
    """Send one plain-text message; in outbox mode return the file written."""
    recipients = [address for address in to if address]
    if not recipients:
        return None
    message = EmailMessage()
    message["From"] = settings.mail.from_address
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.mail.from_address.partition("@")[2] or None)
    message.set_content(body)
    if settings.mail.mode == "outbox":
        return _to_outbox(settings.mail.outbox_dir, message)
    _by_smtp(settings, message)
    return None


def _to_outbox(folder: Path, message: EmailMessage) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{utcnow().strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(4)}.eml"  # sorts by time
    path.write_bytes(bytes(message))
    return path


def _by_smtp(settings: Settings, message: EmailMessage) -> None:
    mail = settings.mail
    with smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=30) as client:
        if mail.smtp_starttls:
            client.starttls(context=ssl.create_default_context())
        if mail.smtp_username:
            client.login(mail.smtp_username, load_secret(settings, "smtp").reveal())
        client.send_message(message)


def outbox_messages(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.eml")) if folder.is_dir() else []
