"""The second factor of staff roles: a pending sign-in kept on the server, and its code step.

A password accepted for a staff role starts a challenge row; the browser's cookie holds only
its random token (stored hashed), never the account or an enrolment key. The row is single
use, expires after ``SECOND_FACTOR_SECONDS``, and keeps an enrolling account's new TOTP key
encrypted with the field cipher. Each attempt is first counted toward the sign-in lockout of
the account and of the address, and checked only if the count allows; a wrong code stays
counted, so neither a saved pre-code cookie, a fresh password sign-in nor a burst of
parallel requests buys fresh guesses, and once the lockout starts every pending challenge
of the account ends. Accepting a code (TOTP step,
recovery code, enrolment, the challenge itself) is a conditional update: of parallel
requests, exactly one wins.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.db import rowcount
from gateway.portal import accounts, denials
from gateway.portal.models import SecondFactorChallenge, User
from gateway.replica.dbtypes import utcnow
from gateway.security import totp
from gateway.security.crypto import FieldCipher
from gateway.security.keys import KeyRing
from gateway.settings import Settings

SECOND_FACTOR_SECONDS = 300  # a password is good for this long while the second factor is asked
ENROL_CONTEXT = "second_factor_challenges.enrol_secret"


@dataclass(frozen=True)
class Pending:
    """A live challenge, its account, and the key its codes are checked against."""

    challenge: SecondFactorChallenge
    user: User
    secret: str
    enrolling: bool


@dataclass(frozen=True)
class Outcome:
    result: str  # signed_in, wrong, locked, gone
    recovery_codes: list[str] | None = None  # after enrolment: shown once
    locked_until: dt.datetime | None = None


def start(session: Session, cipher: FieldCipher, user: User, ip: str | None) -> str:
    """A new pending sign-in; returns the token for the cookie (stored only hashed)."""
    token = secrets.token_urlsafe(32)
    enrol = None if user.totp_secret else cipher.encrypt(totp.new_secret(), ENROL_CONTEXT)
    session.add(SecondFactorChallenge(token_hash=accounts.token_hash(token), user_id=user.id, ip=ip, enrol_secret=enrol,
                                      expires_at=utcnow() + dt.timedelta(seconds=SECOND_FACTOR_SECONDS)))
    session.flush()
    return token


def pending(session: Session, cipher: FieldCipher, token: str, *, replica: Session, index_ring: KeyRing) -> Pending | None:
    """The live challenge of a cookie token, or None (unknown, used, ended or expired, or its
    person denied since the password was accepted: by account, guardian or email, through
    the one denial rule, as sign-in asks it)."""
    row = session.scalars(select(SecondFactorChallenge)
                          .where(SecondFactorChallenge.token_hash == accounts.token_hash(token))).first()
    if row is None or row.ended_at is not None or row.expires_at <= utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or denials.user_denied(session, replica, index_ring, user):  # disabled counts as denied
        return None
    if row.created_at < user.password_changed_at:  # the password it was started with is no longer the password
        return None
    if user.totp_secret is not None:
        return Pending(row, user, totp.secret_of(cipher, user) or "", enrolling=False)
    if row.enrol_secret is None:  # the factor was reset after this sign-in began: begin again
        return None
    return Pending(row, user, cipher.decrypt(row.enrol_secret, ENROL_CONTEXT), enrolling=True)


def attempt(session: Session, settings: Settings, cipher: FieldCipher, found: Pending, code: str, ip: str) -> Outcome:
    """One code for a pending sign-in: refused while locked, counted when wrong, used once when right."""
    now, user = utcnow(), found.user
    # Take the attempt before checking the code: of parallel guesses only as many are
    # checked as the lockout allows, and the right code among them is refused past it.
    locked = accounts.take_login_attempt(session, settings, user.username_key, ip, now)
    if locked is not None:
        _end_all(session, user.id, "locked")
        return Outcome("locked", locked_until=locked)
    if not _live(session, found.challenge.id, now):
        # Read again after the count (which waited for parallel attempts on this account): a
        # sign-in that completed meanwhile ended this challenge, and reset the count it held.
        accounts.give_back_login_attempt(session, user.username_key, ip)
        return Outcome("gone")
    accepted, codes = _accept(session, cipher, found, code)
    if not accepted:
        until = accounts.login_attempt_failed(session, settings, user.username_key, ip, now)
        if until is not None:
            _end_all(session, user.id, "locked")
        return Outcome("locked" if until else "wrong", locked_until=until)
    if not _end(session, found.challenge.id, "signed_in", now):
        accounts.give_back_login_attempt(session, user.username_key, ip)
        return Outcome("gone")  # a parallel request on the same challenge signed in first
    accounts.login_attempt_succeeded(session, user.username_key, ip)
    # The reset count must not serve other pending sign-ins of the account (a guesser's
    # burst, a stolen password's pre-code cookie): they end with this one.
    _end_all(session, user.id, "signed_in_elsewhere")
    return Outcome("signed_in", recovery_codes=codes)


def _accept(session: Session, cipher: FieldCipher, found: Pending, code: str) -> tuple[bool, list[str] | None]:
    user = found.user
    step = totp.accept(found.secret, code, None if found.enrolling else user.totp_last_step)
    if found.enrolling:
        codes = totp.enroll(session, cipher, user, found.secret, step) if step is not None else None
        return codes is not None, codes
    if step is not None:
        return totp.claim_step(session, user, step), None
    return totp.use_recovery_code(session, user, code), None


def _live(session: Session, challenge_id: int, now: dt.datetime) -> bool:
    ended, expires = session.execute(select(SecondFactorChallenge.ended_at, SecondFactorChallenge.expires_at)
                                     .where(SecondFactorChallenge.id == challenge_id)).one()
    return ended is None and expires > now


def _end(session: Session, challenge_id: int, reason: str, now: dt.datetime) -> bool:
    done = session.execute(update(SecondFactorChallenge)
                           .where(SecondFactorChallenge.id == challenge_id, SecondFactorChallenge.ended_at.is_(None),
                                  SecondFactorChallenge.expires_at > now)
                           .values(ended_at=now, end_reason=reason).execution_options(synchronize_session=False))
    return rowcount(done) == 1


def _end_all(session: Session, user_id: int, reason: str) -> None:
    """End every pending sign-in of the account: saved pre-code cookies are worth nothing after a lockout."""
    session.execute(update(SecondFactorChallenge)
                    .where(SecondFactorChallenge.user_id == user_id, SecondFactorChallenge.ended_at.is_(None))
                    .values(ended_at=utcnow(), end_reason=reason).execution_options(synchronize_session=False))
