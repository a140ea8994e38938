"""The second factor of staff, IT, auditor and admin accounts: TOTP (RFC 6238) and recovery codes.

TOTP comes from ``cryptography``. A code is accepted one 30-second step either side of now,
and never twice: the step of the last accepted code is kept, and any code of that step or
an earlier one is a replay. Recovery codes are random, single use, and stored only hashed.
Every acceptance is one conditional UPDATE whose row count decides, so of parallel requests
carrying the same code exactly one wins, whatever the database's isolation level.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import time

import segno
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gateway.db import rowcount
from gateway.security.crypto import FieldCipher
from gateway.replica.dbtypes import utcnow
from gateway.portal.models import RecoveryCode, User

STEP = 30
DIGITS = 6
CONTEXT = "users.totp_secret"
RECOVERY_CODES = 10


def new_secret() -> str:
    """A fresh shared secret, base32 as authenticator apps take it."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def _totp(secret: str) -> TOTP:
    # SHA-1 and 6 digits: what every authenticator app implements (RFC 6238's default).
    return TOTP(base64.b32decode(secret), DIGITS, SHA1(), STEP, enforce_key_length=False)


def code_at(secret: str, moment: float) -> str:
    return _totp(secret).generate(moment).decode()


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    return _totp(secret).get_provisioning_uri(username, issuer)


def qr_svg(uri: str) -> str:
    """The enrolment QR code as inline SVG (no image library, no inline script or style)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", xmldecl=False, svgns=True, scale=5, nl=False,
                                    title="QR code for your authenticator app")
    return out.getvalue().decode()


def accept(secret: str, code: str, last_step: int | None, now: float | None = None) -> int | None:
    """The step of a valid, unused code (to store as the last one), or None."""
    now = time.time() if now is None else now
    digits = "".join(ch for ch in code if ch.isdigit())
    if len(digits) != DIGITS:
        return None
    for offset in (0, -1, 1):
        moment = now + offset * STEP
        try:
            _totp(secret).verify(digits.encode(), int(moment))
        except InvalidToken:
            continue
        step = int(moment // STEP)
        return None if last_step is not None and step <= last_step else step
    return None


def claim_step(session: Session, user: User, step: int) -> bool:
    """Record ``step`` as the last accepted one unless it (or a later one) already was."""
    done = session.execute(update(User).where(User.id == user.id, or_(User.totp_last_step.is_(None),
                                                                       User.totp_last_step < step))
                           .values(totp_last_step=step).execution_options(synchronize_session=False))
    if rowcount(done) == 1:
        user.totp_last_step = step
    return rowcount(done) == 1


def enroll(session: Session, cipher: FieldCipher, user: User, secret: str, step: int) -> list[str] | None:
    """Store the confirmed secret (encrypted) and return fresh recovery codes, shown once.

    None when the account already has a second factor (another request enrolled it first).
    """
    sealed = cipher.encrypt(secret, CONTEXT)
    done = session.execute(update(User).where(User.id == user.id, User.totp_secret.is_(None))
                           .values(totp_secret=sealed, totp_last_step=step).execution_options(synchronize_session=False))
    if rowcount(done) != 1:
        return None
    user.totp_secret, user.totp_last_step = sealed, step
    session.execute(update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
                    .values(used_at=utcnow()).execution_options(synchronize_session=False))
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_hash(code)) for code in codes)
    return codes


def secret_of(cipher: FieldCipher, user: User) -> str | None:
    return cipher.decrypt_optional(user.totp_secret, CONTEXT)


def use_recovery_code(session: Session, user: User, code: str) -> bool:
    """Mark an unused recovery code of this account used; True for the one request that did."""
    done = session.execute(update(RecoveryCode).where(RecoveryCode.user_id == user.id,
                                                      RecoveryCode.code_hash == _hash(code.strip().lower()),
                                                      RecoveryCode.used_at.is_(None))
                           .values(used_at=utcnow()).execution_options(synchronize_session=False))
    return rowcount(done) == 1


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
