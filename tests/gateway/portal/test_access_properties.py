"""The access rules against an independent oracle, over random dates (Hypothesis).

The oracle is written straight from POLICY-CASES.md by a different route than
gateway/portal/access.py: it never computes the 18th birthday, it asks "was the student 18 on
this day?" by comparing (month, day) pairs, and finds the school year from the month.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.portal.access import Enrolment, Link, ParentFacts, Policy, Termination, parent_access

DAYS = st.dates(min_value=dt.date(1995, 1, 1), max_value=dt.date(2035, 12, 31))


def was_18_on(birth: dt.date, day: dt.date) -> bool:
    # Born 29 February: (2, 28) < (2, 29), so not yet on 28 February; 18 on 1 March.
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day)) >= 18


def first_day_of_school_year(day: dt.date) -> dt.date:
    return dt.date(day.year if day.month >= 7 else day.year - 1, 7, 1)


def oracle(birth: dt.date | None, activated: dt.date, today: dt.date, request_effective: dt.date | None) -> str | None:
    """The refusal code the policy gives, or None for access (school year from 1 July)."""
    if birth is None:
        return "birth_date_unknown"
    if was_18_on(birth, today):
        if was_18_on(birth, first_day_of_school_year(today) - dt.timedelta(days=1)):
            return "turned_18_before_year"
        if was_18_on(birth, activated):
            return "activated_after_18"
    if request_effective is not None and request_effective <= today:
        return "termination_request"
    return None


@settings(max_examples=2000, deadline=None)
@given(birth=st.none() | st.dates(min_value=dt.date(1995, 1, 1), max_value=dt.date(2025, 12, 31)),
       today=DAYS, activated_days_before=st.integers(min_value=0, max_value=3000),
       request_effective=st.none() | DAYS)
@example(birth=dt.date(2008, 2, 29), today=dt.date(2026, 2, 28), activated_days_before=700, request_effective=None)
@example(birth=dt.date(2008, 6, 30), today=dt.date(2026, 7, 1), activated_days_before=700, request_effective=None)
@example(birth=dt.date(2008, 9, 15), today=dt.date(2026, 11, 28), activated_days_before=74, request_effective=None)
def test_the_age_rule_and_requests_agree_with_the_oracle(birth: dt.date | None, today: dt.date, activated_days_before: int,
                                                         request_effective: dt.date | None) -> None:
    activated = today - dt.timedelta(days=activated_days_before)
    facts = ParentFacts(guardian_source_id="g1", account_ok=True, links=[Link(True)], activated_on=activated,
                        birth_date=birth, enrolments=[Enrolment(None)],
                        terminations=[Termination(request_effective)] if request_effective else [])
    decision = parent_access(facts, today, Policy())
    assert decision.code == oracle(birth, activated, today, request_effective)
    assert decision.allowed is (decision.code is None)


@settings(max_examples=500, deadline=None)
@given(today=DAYS, start=st.none() | DAYS, end=st.none() | DAYS, portal_access=st.booleans(), account_ok=st.booleans())
def test_the_checks_before_the_age_rule_agree_with_the_oracle(today: dt.date, start: dt.date | None, end: dt.date | None,
                                                              portal_access: bool, account_ok: bool) -> None:
    facts = ParentFacts(guardian_source_id="g1", account_ok=account_ok, links=[Link(portal_access, start, end)],
                        activated_on=dt.date(1990, 1, 1), birth_date=None, enrolments=[Enrolment(None)])
    in_force = (start is None or start <= today) and (end is None or today <= end)
    expected = ("account_denied" if not account_ok else "no_portal_access" if not portal_access
                else "link_not_in_force" if not in_force else "birth_date_unknown")
    assert parent_access(facts, today, Policy()).code == expected
