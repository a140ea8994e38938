"""Outgoing mail: SMTP from ``[mail]``, or an outbox folder (the default, so demos work offline)."""

from __future__ import annotations

import logging
import secrets
import smtplib
import ssl
import threading
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from gateway.replica.dbtypes import utcnow
from gateway.security.keys import load_secret
from gateway.settings import Settings

log = logging.getLogger(__name__)


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


def send_in_background(settings: Settings, to: Sequence[str], subject: str, body: str) -> None:
    """Send without making the caller wait for the mail server.

    For answers that must not say whether an account exists (password reset, username
    reminder): the SMTP conversation (tenths of a second) runs in a daemon thread, so a
    request that mails answers as fast as one that does not, and the answer's time says
    nothing. Outbox mode writes its local file at once (no server to wait for). A
    message lost because the worker stopped mid-send is a link the person asks for again;
    nothing else depends on it, so it is not queued in the database.
    """
    if settings.mail.mode == "outbox":
        send(settings, to, subject, body)
        return
    threading.Thread(target=_send_logged, args=(settings, list(to), subject, body), name="mail", daemon=True).start()


def _send_logged(settings: Settings, to: list[str], subject: str, body: str) -> None:
    try:
        send(settings, to, subject, body)  # looked up at call time, through the module
    except (OSError, smtplib.SMTPException) as error:  # no caller left to tell: the log says it (never the body)
        log.error("mail %r could not be sent: %s", subject, type(error).__name__)


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
