"""The access rules of the Parent Portal policy (POLICY-CASES.md), in one place.

Pure functions over facts the caller gathers (links, enrolments, birth date, activation,
termination requests): no database here, so every rule can be tested with dates alone.
Checks run in the policy's order; the first that fails gives the refusal's reason code
and the dates the dashboard's sentence is written from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.portal.schoolyear import SchoolYear, eighteenth_birthday, school_year_containing

ACCOUNT_DENIED = "account_denied"
NO_PORTAL_ACCESS = "no_portal_access"
LINK_NOT_IN_FORCE = "link_not_in_force"
NOT_ACTIVATED = "not_activated"
NOT_ENROLLED = "not_enrolled"
TURNED_18_BEFORE_YEAR = "turned_18_before_year"
ACTIVATED_AFTER_18 = "activated_after_18"
BIRTH_DATE_UNKNOWN = "birth_date_unknown"
TERMINATION_REQUEST = "termination_request"
BRIDGED_EXITS = ("end_of_year", "unknown", None)


@dataclass(frozen=True)
class Policy:
    school_year_start: str = "07-01"
    bridge_exit_window_days: int = 30
    bridge_days_after_year: int = 75
    unknown_birth_date: str = "deny"  # or "under_18"


@dataclass(frozen=True)
class Link:
    portal_access: bool
    start_date: dt.date | None = None
    end_date: dt.date | None = None

    def in_force(self, today: dt.date) -> bool:
        return (self.start_date is None or self.start_date <= today) and (self.end_date is None or self.end_date >= today)


@dataclass(frozen=True)
class Enrolment:
    entry_date: dt.date | None
    exit_date: dt.date | None = None
    exit_kind: str | None = None

    def in_force(self, today: dt.date) -> bool:
        return (self.entry_date is None or self.entry_date <= today) and (self.exit_date is None or self.exit_date >= today)


@dataclass(frozen=True)
class Termination:
    """A student's written request ending parent access (policy II.E)."""

    effective_date: dt.date
    covers_all: bool = True
    guardian_source_ids: frozenset[str] = frozenset()

    def covers(self, guardian_source_id: str, today: dt.date) -> bool:
        return self.effective_date <= today and (self.covers_all or guardian_source_id in self.guardian_source_ids)


@dataclass(frozen=True)
class ParentFacts:
    guardian_source_id: str
    account_ok: bool  # activated, not disabled, and the person is not denied
    links: Sequence[Link]
    activated_on: dt.date | None  # when this account activated this student (district date)
    birth_date: dt.date | None
    enrolments: Sequence[Enrolment]
    terminations: Sequence[Termination] = ()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str | None = None
    dates: dict[str, dt.date] = field(default_factory=dict)

    @classmethod
    def refuse(cls, code: str, **dates: dt.date) -> Decision:
        return cls(False, code, dates)


def parent_access(facts: ParentFacts, today: dt.date, policy: Policy) -> Decision:
    """May this parent account see this student's records today?"""
    if not facts.account_ok:
        return Decision.refuse(ACCOUNT_DENIED)
    with_access = [link for link in facts.links if link.portal_access]
    if not with_access:
        return Decision.refuse(NO_PORTAL_ACCESS)
    if not any(link.in_force(today) for link in with_access):
        ended = max((link.end_date for link in with_access if link.end_date), default=None)
        return Decision.refuse(LINK_NOT_IN_FORCE, **({"ended": ended} if ended else {}))
    if facts.activated_on is None:
        return Decision.refuse(NOT_ACTIVATED)
    if not currently_enrolled(facts.enrolments, today, policy):
        return Decision.refuse(NOT_ENROLLED)
    age = age_rule(facts.birth_date, facts.activated_on, today, policy)
    if not age.allowed:
        return age
    for request in facts.terminations:
        if request.covers(facts.guardian_source_id, today):
            return Decision.refuse(TERMINATION_REQUEST, effective=request.effective_date)
    return age


def student_access(account_ok: bool, enrolments: Sequence[Enrolment], today: dt.date, policy: Policy) -> Decision:
    """A student sees their own records while currently enrolled."""
    if not account_ok:
        return Decision.refuse(ACCOUNT_DENIED)
    if not currently_enrolled(enrolments, today, policy):
        return Decision.refuse(NOT_ENROLLED)
    return Decision(True)


def age_rule(birth_date: dt.date | None, activated_on: dt.date, today: dt.date, policy: Policy) -> Decision:
    """Policy II.E: access continues to the year's last day for parents activated before B."""
    if birth_date is None:
        return Decision(True) if policy.unknown_birth_date == "under_18" else Decision.refuse(BIRTH_DATE_UNKNOWN)
    birthday = eighteenth_birthday(birth_date)
    if birthday > today:
        return Decision(True)
    year = school_year_containing(today, policy.school_year_start)
    if birthday < year.first_day:
        ended = school_year_containing(birthday, policy.school_year_start).last_day
        return Decision.refuse(TURNED_18_BEFORE_YEAR, birthday=birthday, ended=ended)
    if activated_on >= birthday:
        return Decision.refuse(ACTIVATED_AFTER_18, birthday=birthday)
    return Decision(True, None, {"birthday": birthday, "ends": year.last_day})


def currently_enrolled(enrolments: Sequence[Enrolment], today: dt.date, policy: Policy) -> bool:
    """An enrolment in force today, or the summer bridge after an end-of-year exit."""
    if any(enrolment.in_force(today) for enrolment in enrolments):
        return True
    return any(_bridged(enrolment, enrolments, today, policy) for enrolment in enrolments)


def _bridged(enrolment: Enrolment, enrolments: Sequence[Enrolment], today: dt.date, policy: Policy) -> bool:
    exit_date = enrolment.exit_date
    if exit_date is None or enrolment.exit_kind not in BRIDGED_EXITS or today < exit_date:
        return False
    year: SchoolYear = school_year_containing(exit_date, policy.school_year_start)
    if (year.last_day - exit_date).days >= policy.bridge_exit_window_days:
        return False  # left earlier than the last weeks of the year: no bridge
    last = year.last_day + dt.timedelta(days=policy.bridge_days_after_year)
    later = [e.entry_date for e in enrolments if e.entry_date is not None and e.entry_date > exit_date]
    if later:
        last = min(last, min(later) - dt.timedelta(days=1))
    return today <= last
