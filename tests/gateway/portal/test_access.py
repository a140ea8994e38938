"""Every example of POLICY-CASES.md, by hand, against the access module."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.portal.access import Decision, Enrolment, Link, ParentFacts, Policy, Termination, parent_access, student_access

D = dt.date
POLICY = Policy()
ENROLLED = (Enrolment(D(2020, 8, 20)),)
ACTIVATED_2024 = D(2024, 8, 1)


def facts(birth: dt.date | None, activated: dt.date | None = ACTIVATED_2024, enrolments: tuple[Enrolment, ...] = ENROLLED,
          links: tuple[Link, ...] = (Link(True),), terminations: tuple[Termination, ...] = (), ok: bool = True) -> ParentFacts:
    return ParentFacts("g1", ok, links, activated, birth, enrolments, terminations)


# (birth date, activated on, today, expected decision), straight from the examples table.
AGE_EXAMPLES = [
    (D(2010, 3, 14), ACTIVATED_2024, D(2026, 11, 28), Decision(True)),
    (D(2008, 9, 15), ACTIVATED_2024, D(2026, 11, 28), Decision(True, None, {"birthday": D(2026, 9, 15), "ends": D(2027, 6, 30)})),
    (D(2008, 9, 15), ACTIVATED_2024, D(2027, 6, 30), Decision(True, None, {"birthday": D(2026, 9, 15), "ends": D(2027, 6, 30)})),
    (D(2008, 9, 15), ACTIVATED_2024, D(2027, 7, 1), Decision.refuse("turned_18_before_year", birthday=D(2026, 9, 15), ended=D(2027, 6, 30))),
    (D(2008, 7, 1), ACTIVATED_2024, D(2026, 7, 1), Decision(True, None, {"birthday": D(2026, 7, 1), "ends": D(2027, 6, 30)})),
    (D(2008, 6, 30), ACTIVATED_2024, D(2026, 6, 30), Decision(True, None, {"birthday": D(2026, 6, 30), "ends": D(2026, 6, 30)})),
    (D(2008, 6, 30), ACTIVATED_2024, D(2026, 7, 1), Decision.refuse("turned_18_before_year", birthday=D(2026, 6, 30), ended=D(2026, 6, 30))),
    (D(2008, 5, 1), ACTIVATED_2024, D(2026, 11, 28), Decision.refuse("turned_18_before_year", birthday=D(2026, 5, 1), ended=D(2026, 6, 30))),
    (D(2008, 2, 29), ACTIVATED_2024, D(2026, 2, 28), Decision(True)),
    (D(2008, 2, 29), ACTIVATED_2024, D(2026, 11, 28), Decision.refuse("turned_18_before_year", birthday=D(2026, 3, 1), ended=D(2026, 6, 30))),
    (D(2008, 9, 15), D(2026, 10, 1), D(2026, 11, 28), Decision.refuse("activated_after_18", birthday=D(2026, 9, 15))),
    (D(2008, 9, 15), D(2026, 9, 15), D(2026, 11, 28), Decision.refuse("activated_after_18", birthday=D(2026, 9, 15))),
    (D(2008, 9, 15), D(2026, 9, 14), D(2026, 11, 28), Decision(True, None, {"birthday": D(2026, 9, 15), "ends": D(2027, 6, 30)})),
    (None, ACTIVATED_2024, D(2026, 11, 28), Decision.refuse("birth_date_unknown")),
]


@pytest.mark.parametrize(("birth", "activated", "today", "expected"), AGE_EXAMPLES)
def test_the_age_rule_examples(birth: dt.date | None, activated: dt.date, today: dt.date, expected: Decision) -> None:
    assert parent_access(facts(birth, activated), today, POLICY) == expected


def test_a_request_filed_by_the_student_ends_access_at_once() -> None:
    online = Termination(effective_date=D(2026, 12, 1))
    assert parent_access(facts(D(2008, 9, 15), terminations=(online,)), D(2026, 12, 1), POLICY) == \
        Decision.refuse("termination_request", effective=D(2026, 12, 1))


@pytest.mark.parametrize(("today", "expected"), [
    (D(2026, 12, 10), Decision(True, None, {"birthday": D(2026, 9, 15), "ends": D(2027, 6, 30)})),
    (D(2026, 12, 15), Decision.refuse("termination_request", effective=D(2026, 12, 15))),
])
def test_a_paper_request_takes_effect_on_the_date_written_in_it(today: dt.date, expected: Decision) -> None:
    paper = Termination(effective_date=D(2026, 12, 15))  # recorded 2026-12-01, effective 2026-12-15
    assert parent_access(facts(D(2008, 9, 15), terminations=(paper,)), today, POLICY) == expected


def test_a_request_naming_other_parents_does_not_cover_this_one() -> None:
    other = Termination(effective_date=D(2026, 12, 1), covers_all=False, guardian_source_ids=frozenset({"g2"}))
    assert parent_access(facts(D(2008, 9, 15), terminations=(other,)), D(2026, 12, 2), POLICY).allowed


SUMMER_EXIT = Enrolment(D(2025, 8, 20), D(2026, 6, 10), "end_of_year")


@pytest.mark.parametrize(("enrolments", "today", "allowed"), [
    ((SUMMER_EXIT,), D(2026, 6, 20), True),  # summer bridge
    ((SUMMER_EXIT,), D(2026, 9, 13), True),  # the bridge's last day: 2026-06-30 + 75 days
    ((SUMMER_EXIT,), D(2026, 9, 14), False),
    ((SUMMER_EXIT, Enrolment(D(2026, 8, 25))), D(2026, 9, 20), True),  # the new enrolment
    ((SUMMER_EXIT, Enrolment(D(2026, 8, 25))), D(2026, 8, 24), True),  # bridged to the day before it
    ((Enrolment(D(2025, 8, 20), D(2026, 5, 1), "end_of_year"),), D(2026, 5, 2), False),  # left too early for a bridge
    ((Enrolment(D(2025, 8, 20), D(2026, 3, 2), "withdrawal"),), D(2026, 3, 3), False),
    ((Enrolment(D(2025, 8, 20), D(2026, 6, 10), "graduation"),), D(2026, 6, 20), False),  # no bridge for graduates
])
def test_currently_enrolled_with_the_summer_bridge(enrolments: tuple[Enrolment, ...], today: dt.date, allowed: bool) -> None:
    decision = parent_access(facts(D(2012, 1, 1), enrolments=enrolments), today, POLICY)
    assert decision == (Decision(True) if allowed else Decision.refuse("not_enrolled"))


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"ok": False}, Decision.refuse("account_denied")),
    ({"links": ()}, Decision.refuse("no_portal_access")),
    ({"links": (Link(False),)}, Decision.refuse("no_portal_access")),
    ({"links": (Link(True, end_date=D(2026, 10, 29)),)}, Decision.refuse("link_not_in_force", ended=D(2026, 10, 29))),
    ({"links": (Link(True, start_date=D(2027, 1, 1)),)}, Decision.refuse("link_not_in_force")),
    ({"activated": None}, Decision.refuse("not_activated")),
    ({"enrolments": ()}, Decision.refuse("not_enrolled")),
])
def test_the_checks_before_the_age_rule_in_their_order(overrides: dict[str, object], expected: Decision) -> None:
    # Born 2008-05-01: the age rule would refuse too, so each earlier check is seen to come first.
    arguments = {"birth": D(2008, 5, 1), **overrides}
    assert parent_access(facts(**arguments), D(2026, 11, 28), POLICY) == expected  # type: ignore[arg-type]


def test_a_school_year_starting_on_15_august() -> None:
    august = Policy(school_year_start="08-15")
    born = D(2008, 8, 10)  # turns 18 on 2026-08-10
    assert parent_access(facts(born), D(2026, 8, 14), august) == \
        Decision(True, None, {"birthday": D(2026, 8, 10), "ends": D(2026, 8, 14)})
    assert parent_access(facts(born), D(2026, 8, 15), august) == \
        Decision.refuse("turned_18_before_year", birthday=D(2026, 8, 10), ended=D(2026, 8, 14))
    # Under the default 1 July start the same birthday falls in the new year: access continues.
    assert parent_access(facts(born), D(2026, 8, 15), POLICY).allowed


def test_a_district_may_count_unknown_birth_dates_as_under_18() -> None:
    assert parent_access(facts(None), D(2026, 11, 28), Policy(unknown_birth_date="under_18")) == Decision(True)


def test_a_student_sees_their_records_only_while_enrolled() -> None:
    assert student_access(True, ENROLLED, D(2026, 11, 28), POLICY) == Decision(True)
    withdrawn = (Enrolment(D(2025, 8, 20), D(2026, 3, 2), "withdrawal"),)
    assert student_access(True, withdrawn, D(2026, 3, 3), POLICY) == Decision.refuse("not_enrolled")
    assert student_access(False, ENROLLED, D(2026, 11, 28), POLICY) == Decision.refuse("account_denied")
