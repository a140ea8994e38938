"""Password reset and username reminders, sent only to the email the account holds.

The answer to a request never says whether an account exists. A reset link is single use
(claimed by one conditional update, so of parallel requests exactly one sets a password),
expires after ``[security] recovery_link_minutes``, is stored only as a hash, and using it
ends every session of the account. Only the newest link of an account works: a new one
revokes the earlier ones, and a completed reset revokes every other outstanding one.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway import mail
from gateway.db import rowcount
from gateway.portal.accounts import (AccountError, end_all_sessions, find_user, locked_until, record_failure, token_hash)
from gateway.replica.dbtypes import utcnow
from gateway.security.passwords import hasher_for, problems
from gateway.portal.models import RecoveryToken, User
from gateway.settings import Settings

GENERIC_ANSWER = ("If an account matches, a message is on its way to the email address on file. "
                  "If nothing arrives, ask your school.")


def _throttled(session: Session, settings: Settings, ip: str) -> bool:
    now, sec = utcnow(), settings.security
    window = dt.timedelta(minutes=sec.code_window_minutes)
    return bool(locked_until(session, "recovery_ip", ip, now)
                or record_failure(session, "recovery_ip", ip, now, sec.code_max_attempts, window, window))


def request_reset(session: Session, settings: Settings, identifier: str, ip: str) -> str:
    """Mail a reset link to the account's own email; the answer is the same whatever happens."""
    if _throttled(session, settings, ip):
        return GENERIC_ANSWER
    user = find_user(session, identifier) or _only_user_with_email(session, identifier)
    if user is not None and user.email and user.disabled_at is None:
        token = secrets.token_urlsafe(32)
        minutes = settings.security.recovery_link_minutes
        _revoke_outstanding(session, user.id)
        session.add(RecoveryToken(user_id=user.id, token_hash=token_hash(token),
                                  expires_at=utcnow() + dt.timedelta(minutes=minutes)))
        mail.send_in_background(settings, [user.email], f"{settings.district.name} portal: reset your password",
                                f"Someone asked to reset the password of the portal account {user.username}.\n\n"
                                f"To choose a new password, open this link within {minutes} minutes:\n\n"
                                f"    {settings.web.public_url.rstrip('/')}/reset?token={token}\n\n"
                                "If it was not you, ignore this message; your password stays as it is.\n")
    return GENERIC_ANSWER


def request_reminder(session: Session, settings: Settings, email: str, ip: str) -> str:
    """Mail the usernames of the accounts holding this email address."""
    if _throttled(session, settings, ip):
        return GENERIC_ANSWER
    users = session.scalars(select(User).where(func.lower(User.email) == email.strip().lower(), User.disabled_at.is_(None))).all()
    if users:
        names = "\n".join(f"    {user.username}" for user in users)
        mail.send_in_background(settings, [users[0].email or email], f"{settings.district.name} portal: your username",
                                f"The portal accounts for this email address:\n\n{names}\n\nSign in at {settings.web.public_url}.\n")
    return GENERIC_ANSWER


def _only_user_with_email(session: Session, email: str) -> User | None:
    users = session.scalars(select(User).where(func.lower(User.email) == email.strip().lower())).all()
    return users[0] if len(users) == 1 else None


def valid_token(session: Session, token: str) -> RecoveryToken | None:
    row = session.scalars(select(RecoveryToken).where(RecoveryToken.token_hash == token_hash(token))).first()
    if row is None or row.used_at is not None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return row


def reset_password(session: Session, settings: Settings, token: str, new_password: str) -> User:
    """Set a new password through a valid link; every session of the account ends."""
    row = valid_token(session, token)
    if row is None:
        raise AccountError("This link has expired or was already used. Ask for a new one.")
    user = session.get(User, row.user_id)
    assert user is not None
    found = problems(new_password, settings, [user.username, user.display_name, user.email or ""])
    if found:
        raise AccountError(found[0].message)
    if not _claim(session, row.id):
        raise AccountError("This link has expired or was already used. Ask for a new one.")
    user.password_hash, user.password_changed_at = hasher_for(settings).hash(new_password), utcnow()
    _revoke_outstanding(session, user.id)
    end_all_sessions(session, user.id, "password_reset")
    return user


def _claim(session: Session, token_id: int) -> bool:
    """Mark the link used; True for the one request that did (a conditional update decides)."""
    now = utcnow()
    done = session.execute(update(RecoveryToken)
                           .where(RecoveryToken.id == token_id, RecoveryToken.used_at.is_(None),
                                  RecoveryToken.revoked_at.is_(None), RecoveryToken.expires_at > now)
                           .values(used_at=now).execution_options(synchronize_session=False))
    return rowcount(done) == 1


def _revoke_outstanding(session: Session, user_id: int) -> None:
    """Every unused link of the account stops working."""
    session.execute(update(RecoveryToken)
                    .where(RecoveryToken.user_id == user_id, RecoveryToken.used_at.is_(None),
                           RecoveryToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()).execution_options(synchronize_session=False))
