"""Accounts, live sessions and login throttling, all in the portal database.

Sessions are server-side rows (the cookie holds only a random token, stored hashed), so
logout, "sign out everywhere", a password change and a denial end them for every worker.
Failed logins are counted per account and per client address in the database, so the
lockout holds across workers and hosts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import rowcount
from gateway.portal import denials
from gateway.security import passwords
from gateway.security.keys import KeyRing
from gateway.replica.dbtypes import utcnow
from gateway.errors import GatewayError
from gateway.portal.models import STAFF_ROLES, SecondFactorChallenge, Throttle, User, UserSession
from gateway.settings import Settings

TOUCH_EVERY = dt.timedelta(seconds=30)  # last_seen is written at most this often


class AccountError(GatewayError):
    exit_code = 2


FAMILY_ROLES = ("parent", "student")


def may_manage(actor_role: str, target_role: str) -> bool:
    """Roles are ranked: staff act on families' accounts only; IT, auditor, admin and other
    staff accounts are the admin's alone (a desk account must not lock out its overseers)."""
    return actor_role == "admin" or target_role in FAMILY_ROLES


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, Unicode 15.1):
# code points a renderer shows as nothing when it does not support them. They include the
# Cf format characters, and also combining, letter and filler ones (U+034F, U+115F, U+3164,
# U+FFA0, variation selectors) that NFKC and casefolding keep.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
# Not default-ignorable, yet drawn as an empty cell by every font: a name must not hide one.
BLANK_LOOKING = frozenset({0x2800})  # BRAILLE PATTERN BLANK


def _invisible(ch: str) -> bool:
    point = ord(ch)
    return (ch.isspace() or unicodedata.category(ch) == "Cf" or point in BLANK_LOOKING
            or any(low <= point <= high for low, high in DEFAULT_IGNORABLE))


def normalize_username(name: str) -> str:
    """The one form of a username, wherever a name enters: lookups, throttles, uniqueness.

    Unicode NFKC (fullwidth and other compatibility forms become plain letters), every
    whitespace character removed (spaces, tabs, no-break and em spaces, anywhere in the
    name) along with every invisible character (format characters, Unicode's default-ignorable
    code points such as fillers and variation selectors, the blank braille cell), casefolded.
    So " Parent-X", "parent-x\t" and "parent-x\u00a0" are one account, with one lockout, and
    "desk\u034f.clerk" cannot be made beside "desk.clerk".
    """
    # Removing a space can leave a combining mark beside a letter that NFKC then composes,
    # and NFKC can turn a spacing mark into a space and a combining one: repeat to the fixed
    # point (two rounds in practice), so normalising a normalised name changes nothing.
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
        once = "".join(ch for ch in folded if not _invisible(ch))
        if once == name:
            break
        name = once
    return name


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username_key == normalize_username(username))).first()


def create_user(session: Session, settings: Settings, *, username: str, password: str, role: str, display_name: str,
                email: str | None = None, source_system: str | None = None, guardian_source_id: str | None = None,
                student_source_id: str | None = None) -> User:
    """A new account; the password must pass the NIST checks, the name must be free once normalised."""
    username, key = username.strip(), normalize_username(username)
    taken = AccountError(f"the username {username!r} is taken or not allowed; choose another")
    if not key or len(username) > 64 or len(key) > 64 or find_user(session, username) is not None:
        raise taken
    found = passwords.problems(password, settings, [username, display_name, email or ""])
    if found:
        raise AccountError(found[0].message)
    user = User(username=username, username_key=key, role=role, display_name=display_name, email=email,
                password_hash=passwords.hasher_for(settings).hash(password), source_system=source_system,
                guardian_source_id=guardian_source_id, student_source_id=student_source_id)
    try:
        with session.begin_nested():  # another request may take the same name between the check and here
            session.add(user)
    except IntegrityError:
        raise taken from None
    return user


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    refusal: str | None = None  # bad_credentials, locked, denied
    locked_until: dt.datetime | None = None


def authenticate(session: Session, settings: Settings, username: str, password: str, ip: str, *,
                 replica: Session, index_ring: KeyRing) -> LoginResult:
    """Check a login; failures count toward lockouts of the account and of the address.

    The attempt is taken (counted) before the password is checked, so a burst of parallel
    guesses gets no more checks than the lockout allows. ``replica`` and ``index_ring`` let
    the denial rule match the person by the email the SIS holds for them, not only by
    account and guardian record."""
    now, key = utcnow(), normalize_username(username)
    locked = take_login_attempt(session, settings, key, ip, now)
    user = find_user(session, username)
    hasher = passwords.hasher_for(settings)
    # Commit the taken attempt and end the read before the deliberately slow hash: no lock
    # or snapshot is held across it, so other workers' sign-ins are not made to wait for
    # this one's argon2, and they already see this attempt counted.
    session.commit()
    ok = passwords.verify(hasher, user.password_hash if user else None, password)  # same work for unknown names
    if locked is not None:
        return LoginResult(None, "locked", locked)
    if not ok or user is None:
        until = login_attempt_failed(session, settings, key, ip, now)
        return LoginResult(None, "locked" if until else "bad_credentials", until)
    if denials.user_denied(session, replica, index_ring, user):
        give_back_login_attempt(session, key, ip)
        return LoginResult(None, "denied")
    if user.role in STAFF_ROLES:
        # A staff role's count is cleared only by its second factor: re-entering a known
        # password must not buy fresh code guesses (nor cost one).
        give_back_login_attempt(session, key, ip)
    else:
        login_attempt_succeeded(session, key, ip)
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return LoginResult(user)


def take_login_attempt(session: Session, settings: Settings, key: str, ip: str, now: dt.datetime) -> dt.datetime | None:
    """Count a sign-in attempt (password or second-factor code) against the account's and the
    address's lockouts BEFORE it is checked; return the lockout's end if it may not be checked.

    The count is an atomic increment (a row lock on PostgreSQL and MariaDB until commit; the
    web's SQLite transactions are immediate), and the decision is made from the counted value:
    of a burst of parallel guesses, only those numbered up to the limit are checked. A wrong
    one then calls ``login_attempt_failed``; a right one ``login_attempt_succeeded``.
    """
    sec = settings.security
    window, lockout = dt.timedelta(minutes=sec.login_window_minutes), dt.timedelta(minutes=sec.lockout_minutes)
    refused = _take(session, "login_account", key, now, sec.login_max_failures, window, lockout)
    if refused is not None:
        return refused
    return _take(session, "login_ip", ip, now, sec.ip_max_failures, window, lockout)


def login_attempt_failed(session: Session, settings: Settings, key: str, ip: str, now: dt.datetime) -> dt.datetime | None:
    """A taken attempt was wrong: it stays counted, and reaching the limit starts the lockout.

    Returns the account's (or the address's) lockout end if one starts now.
    """
    sec, lockout = settings.security, dt.timedelta(minutes=settings.security.lockout_minutes)
    until = _lock_if_reached(session, "login_account", key, now, sec.login_max_failures, lockout)
    by_address = _lock_if_reached(session, "login_ip", ip, now, sec.ip_max_failures, lockout)
    return until or by_address


def login_attempt_succeeded(session: Session, key: str, ip: str) -> None:
    """A taken attempt was right: the account's count starts again; the address's loses only this attempt."""
    reset_throttle(session, "login_account", key)
    _give_back(session, "login_ip", ip)


def give_back_login_attempt(session: Session, key: str, ip: str) -> None:
    """A taken attempt that was not a wrong guess (a right password awaiting its code, a
    parallel request that lost the race): it no longer counts."""
    _give_back(session, "login_account", key)
    _give_back(session, "login_ip", ip)


def take_attempt(session: Session, scope: str, key: str, now: dt.datetime, limit: int, window: dt.timedelta,
                 lockout: dt.timedelta) -> dt.datetime | None:
    """Count one attempt of any throttled kind before it is tried (see ``take_login_attempt``);
    the lockout's end if it may not be tried."""
    return _take(session, scope, key, now, limit, window, lockout)


def attempt_refused(session: Session, scope: str, key: str, now: dt.datetime, limit: int,
                    lockout: dt.timedelta) -> dt.datetime | None:
    """A taken attempt was refused: it stays counted, and reaching the limit starts the lockout."""
    return _lock_if_reached(session, scope, key, now, limit, lockout)


def give_back_attempt(session: Session, scope: str, key: str) -> None:
    """A taken attempt that succeeded, or was no attempt at all: it no longer counts."""
    _give_back(session, scope, key)


def _take(session: Session, scope: str, key: str, now: dt.datetime, limit: int, window: dt.timedelta,
          lockout: dt.timedelta) -> dt.datetime | None:
    _ensure_throttle(session, scope, key, now)
    mine = (Throttle.scope == scope, Throttle.key == key)
    open_ = or_(Throttle.locked_until.is_(None), Throttle.locked_until <= now)
    # The first UPDATE takes the row lock: the window restart and the count below are one step.
    session.execute(update(Throttle).where(*mine, open_, Throttle.window_started_at < now - window)
                    .values(failures=0, window_started_at=now).execution_options(synchronize_session=False))
    counted = session.execute(update(Throttle).where(*mine, open_).values(failures=Throttle.failures + 1)
                              .execution_options(synchronize_session=False))
    failures, until = session.execute(select(Throttle.failures, Throttle.locked_until).where(*mine)).one()
    if rowcount(counted) != 1:
        return until or now + lockout  # locked: not counted, not checked
    if failures > limit:  # parallel attempts took every try this lockout allows
        return until if until is not None and until > now else now + lockout
    return None


def _lock_if_reached(session: Session, scope: str, key: str, now: dt.datetime, limit: int,
                     lockout: dt.timedelta) -> dt.datetime | None:
    until = now + lockout
    done = session.execute(update(Throttle)
                           .where(Throttle.scope == scope, Throttle.key == key, Throttle.failures >= limit,
                                  or_(Throttle.locked_until.is_(None), Throttle.locked_until <= now))
                           .values(locked_until=until, failures=0, window_started_at=now)
                           .execution_options(synchronize_session=False))
    if rowcount(done) == 1:
        return until
    return locked_until(session, scope, key, now)  # a parallel attempt started it a moment ago


def _give_back(session: Session, scope: str, key: str) -> None:
    session.execute(update(Throttle).where(Throttle.scope == scope, Throttle.key == key, Throttle.failures > 0)
                    .values(failures=Throttle.failures - 1).execution_options(synchronize_session=False))


def _ensure_throttle(session: Session, scope: str, key: str, now: dt.datetime) -> None:
    if session.scalars(select(Throttle.id).where(Throttle.scope == scope, Throttle.key == key)).first() is None:
        try:
            with session.begin_nested():
                session.add(Throttle(scope=scope, key=key, failures=0, window_started_at=now))
        except IntegrityError:
            pass  # another worker created it first


def login_locked_until(session: Session, username: str, ip: str, now: dt.datetime) -> dt.datetime | None:
    """When the account's or the address's sign-in lockout ends, if one holds now."""
    return max(filter(None, (locked_until(session, "login_account", normalize_username(username), now),
                             locked_until(session, "login_ip", ip, now))), default=None)


# --- sessions ------------------------------------------------------------------------------------

def start_session(session: Session, user: User, ip: str | None, user_agent: str | None) -> str:
    """A new server-side session; returns the token for the cookie (stored only hashed)."""
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=token_hash(token), user_id=user.id, ip=ip, user_agent=(user_agent or "")[:255]))
    session.flush()
    return token


def load_session(session: Session, settings: Settings, token: str, *, replica: Session,
                 index_ring: KeyRing) -> tuple[User, UserSession] | None:
    """The live session for a cookie token, or None (ending it if it timed out, was revoked,
    or the person is now denied: by account, guardian or email, through the one denial rule).
    """
    found = session.execute(select(UserSession, User).outerjoin(User, User.id == UserSession.user_id)
                            .where(UserSession.token_hash == token_hash(token))).first()
    if found is None or found[0].ended_at is not None:
        return None
    live, user = found
    now = utcnow()
    denied = user is not None and denials.user_denied(session, replica, index_ring, user)
    reason = _end_reason(settings, live, user, denied, now)
    if reason or user is None:
        end_session(session, live, reason or "gone")
        return None
    if now - live.last_seen_at > TOUCH_EVERY:
        live.last_seen_at = now
    return user, live


def ended_reason(session: Session, token: str) -> str | None:
    """Why the session behind this cookie token ended (idle, expired, denied...), or None if there is none."""
    return session.scalar(select(UserSession.end_reason).where(UserSession.token_hash == token_hash(token),
                                                               UserSession.ended_at.is_not(None)))


def _end_reason(settings: Settings, live: UserSession, user: User | None, denied: bool, now: dt.datetime) -> str | None:
    if now - live.last_seen_at > dt.timedelta(minutes=settings.web.idle_timeout_minutes):
        return "idle"
    if now - live.created_at > dt.timedelta(hours=settings.web.absolute_timeout_hours):
        return "expired"
    if denied:
        return "denied"
    return None


def end_session(session: Session, live: UserSession, reason: str) -> None:
    live.ended_at, live.end_reason = utcnow(), reason


def end_all_sessions(session: Session, user_id: int, reason: str, keep: int | None = None) -> int:
    """End the account's sessions (but ``keep``) and every pending second-factor sign-in of it:
    a password typed before a change, reset, denial or "sign out everywhere" must not finish
    signing in with a code afterwards."""
    query = update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != keep)
    session.execute(update(SecondFactorChallenge)
                    .where(SecondFactorChallenge.user_id == user_id, SecondFactorChallenge.ended_at.is_(None))
                    .values(ended_at=utcnow(), end_reason=reason[:32]).execution_options(synchronize_session=False))
    return rowcount(session.execute(query.values(ended_at=utcnow(), end_reason=reason)))


def change_password(session: Session, settings: Settings, user: User, current: str, new: str, keep: int | None) -> None:
    hasher = passwords.hasher_for(settings)
    if not passwords.verify(hasher, user.password_hash, current):
        raise AccountError("Your current password is not right.")
    found = passwords.problems(new, settings, [user.username, user.display_name, user.email or ""])
    if found:
        raise AccountError(found[0].message)
    user.password_hash, user.password_changed_at = hasher.hash(new), utcnow()
    end_all_sessions(session, user.id, "password_changed", keep=keep)


def login_history(session: Session, user_id: int, limit: int = 20) -> list[UserSession]:
    return list(session.scalars(select(UserSession).where(UserSession.user_id == user_id)
                                .order_by(UserSession.created_at.desc()).limit(limit)))


# --- throttling ----------------------------------------------------------------------------------

def locked_until(session: Session, scope: str, key: str, now: dt.datetime) -> dt.datetime | None:
    until = session.scalars(select(Throttle.locked_until).where(Throttle.scope == scope, Throttle.key == key)).first()
    return until if until is not None and until > now else None


def record_failure(session: Session, scope: str, key: str, now: dt.datetime, limit: int,
                   window: dt.timedelta, lockout: dt.timedelta) -> dt.datetime | None:
    """Count one failure (atomically, for every worker); return the lockout's end if it starts now."""
    row = session.scalars(select(Throttle).where(Throttle.scope == scope, Throttle.key == key)).first()
    if row is None:
        try:
            with session.begin_nested():
                session.add(Throttle(scope=scope, key=key, failures=0, window_started_at=now))
        except IntegrityError:
            pass  # another worker created it first
        row = session.scalars(select(Throttle).where(Throttle.scope == scope, Throttle.key == key)).one()
    if now - row.window_started_at > window:
        row.failures, row.window_started_at = 0, now
    session.execute(update(Throttle).where(Throttle.id == row.id).values(failures=Throttle.failures + 1))
    session.refresh(row)
    if row.failures >= limit:
        row.locked_until, row.failures, row.window_started_at = now + lockout, 0, now
        return row.locked_until
    return None


def reset_throttle(session: Session, scope: str, key: str) -> None:
    session.execute(update(Throttle).where(Throttle.scope == scope, Throttle.key == key)
                    .values(failures=0, locked_until=None))


def unlock(session: Session, username: str) -> None:
    reset_throttle(session, "login_account", normalize_username(username))
