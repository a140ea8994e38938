"""Passwords per NIST SP 800-63B: a length floor, a blocklist, no composition rules; argon2id.

The blocklist is zxcvbn's bundled lists (30,000 common passwords, dictionary words,
names) plus the context words of this account (the district, the username, the person's
name). An unknown username is checked against a dummy hash so that it takes as long as a
known one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from gateway.settings import Settings

MAX_LENGTH = 256
MIN_SCORE = 3  # zxcvbn: 3 = "safely unguessable: moderate protection from offline slow-hash attacks"


@dataclass(frozen=True)
class PasswordProblem:
    message: str


# One hasher per parameter set, made once: the dummy hash below is cached per hasher, and a
# new hasher per call would make (and pay for) a new dummy hash at every unknown name.
_PRODUCTION = PasswordHasher()  # argon2id with the library's defaults
_TEST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # test instances only
_DUMMY_PASSWORD = "an unknown user's password is never this one"
_dummy_hashes: dict[tuple[object, ...], str] = {}  # by the hasher's parameters


def hasher_for(settings: Settings) -> PasswordHasher:
    """argon2id with the library's defaults; test instances use cheap parameters, nothing else does."""
    return _TEST if settings.instance.kind == "test" else _PRODUCTION


def dummy_hash(hasher: PasswordHasher) -> str:
    """A hash made with this hasher's parameters, once per process, that no password matches.

    An unknown name is verified against it, so it costs one argon2 verification with the real
    parameters, as a known name does. ``warm`` makes it at start-up, so even the first
    unknown name of a process does no extra hash.
    """
    params = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len, hasher.salt_len, hasher.type)
    if params not in _dummy_hashes:
        _dummy_hashes[params] = hasher.hash(_DUMMY_PASSWORD)
    return _dummy_hashes[params]


def warm(settings: Settings) -> None:
    """Make the dummy hash now (at start-up) rather than at the first unknown name."""
    dummy_hash(hasher_for(settings))


def verify(hasher: PasswordHasher, stored: str | None, password: str) -> bool:
    """True when ``password`` matches; with ``stored`` None the same work is done, then False."""
    try:
        return hasher.verify(stored or dummy_hash(hasher), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def problems(password: str, settings: Settings, context: Iterable[str] = ()) -> list[PasswordProblem]:
    """Why a new password is refused, in words a parent can act on; empty when it is fine."""
    floor = settings.security.password_min_length
    if len(password) < floor:
        return [PasswordProblem(f"Use at least {floor} characters. A few unrelated words make a good password.")]
    if len(password) > MAX_LENGTH:
        return [PasswordProblem(f"Use at most {MAX_LENGTH} characters.")]
    words = _context_words([settings.district.name, *context])
    lowered = password.lower()
    if lowered in _common() or lowered.replace(" ", "") in _common():
        return [PasswordProblem("This password appears in lists of common or breached passwords. Choose another.")]
    if any(word in lowered for word in words):
        return [PasswordProblem("Do not use your name, your username or the district's name in your password.")]
    result = zxcvbn(password[:100], user_inputs=sorted(words))
    if result["score"] < MIN_SCORE:
        hint = result["feedback"]["warning"] or "It would be easy to guess."
        return [PasswordProblem(f"{hint} Add another unrelated word or two.")]
    return []


def _context_words(texts: Iterable[str]) -> set[str]:
    words = set()
    for text in texts:
        for word in re.split(r"[^a-z0-9]+", (text or "").lower()):
            if len(word) >= 4 and word not in ("school", "district", "unified", "public", "county", "city"):
                words.add(word)
    return words
