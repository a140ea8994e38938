"""The authorization matrix: every student-scoped route, every (user, student) pair, by hand."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from gateway.demo.sis import DemoSummary
from gateway.settings import Settings

from .conftest import (accept_guidelines, activate, activated_in_2024, csrf, issue_code, set_activation_date,
                       staff_client)

PAGES = ("schedule", "grades", "assignments", "attendance")
# Parent accounts: (username, the case whose guardian they are, when they activated).
PARENTS = [
    ("during", "turned_18_during_year", dt.date(2024, 8, 1)),
    ("after", "activated_after_18", dt.date(2026, 10, 1)),  # after the 2026-09-14 birthday
    ("before_year", "turned_18_before_year", dt.date(2024, 8, 1)),
    ("unknown", "birth_date_unknown", dt.date(2024, 8, 1)),
    ("sibling", "siblings", dt.date(2024, 8, 1)),
    ("mother", "split_household", dt.date(2024, 8, 1)),
    ("father", "split_household_father", dt.date(2024, 8, 1)),
    ("grandparent", "no_portal_access", dt.date(2024, 8, 1)),
    ("np_mother", "no_portal_access_parent", dt.date(2024, 8, 1)),
    ("link_ended", "link_not_in_force", dt.date(2024, 8, 1)),
    ("withdrawn", "withdrawn", dt.date(2024, 8, 1)),
    ("summer", "summer_exit", dt.date(2024, 8, 1)),
    ("graduated", "graduated", dt.date(2024, 8, 1)),
    ("transfer", "transfer", dt.date(2024, 8, 1)),
    ("term_parent", "termination_request", dt.date(2024, 8, 1)),
]
# Links for which no code can be issued today (no portal access, ended): these parents
# activated in 2024, while the SIS still gave them access.
NO_CODE_TODAY = {"no_portal_access", "link_not_in_force"}
# Which case students each account may see on 2026-11-28, written from POLICY-CASES.md.
VISIBLE = {
    "during": {"turned_18_during_year"},
    "after": set(),  # activated after the 18th birthday
    "before_year": set(),  # turned 18 before this school year
    "unknown": set(),  # no birth date
    "sibling": {"siblings", "siblings_older"},
    "mother": {"split_household"},
    "father": {"split_household"},
    "grandparent": set(),  # no educational rights
    "np_mother": {"no_portal_access"},  # the same student as the grandparent's
    "link_ended": set(),
    "withdrawn": set(),
    "summer": set(),  # the summer bridge ended 2026-09-13
    "graduated": set(),
    "transfer": {"transfer"},
    "term_parent": {"termination_request"},
    "student": {"termination_request"},  # the student's own records
    "staff": set(),  # staff see records only through their consoles
}
STUDENT_CASES = ["turned_18_during_year", "termination_request", "turned_18_before_year", "birth_date_unknown", "siblings",
                 "siblings_older", "split_household", "no_portal_access", "link_not_in_force", "withdrawn", "summer_exit",
                 "graduated", "transfer"]


def signed_in_clients(app: Flask, settings: Settings, summary: DemoSummary) -> dict[str, FlaskClient]:
    clients = {}
    for username, case, activated in PARENTS:
        info = summary.cases[case]
        client = app.test_client()
        if case in NO_CODE_TODAY:  # activated in 2024, while the link was in force; no code redeems today
            assert activated_in_2024(client, settings, info["pupil_id"], info["contact_id"], username).status_code == 302
        else:
            code = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
            assert activate(client, code, username).status_code == 302
        if case == "siblings":  # the second child joins the same account with another code
            older = summary.cases["siblings_older"]
            token = csrf(client, "/activate")
            client.post("/activate", data={"csrf_token": token, "code": issue_code(settings, "guardian", older["pupil_id"], older["contact_id"])})
        accept_guidelines(client)
        set_activation_date(settings, username, activated)
        clients[username] = client
    student = app.test_client()
    own = summary.cases["termination_request"]["pupil_id"]
    assert activate(student, issue_code(settings, "student", own, None), "student").status_code == 302
    accept_guidelines(student)
    clients["student"] = student
    clients["staff"] = staff_client(app, settings, "staff", "staff")[0]
    return clients


def test_every_route_for_every_user_and_student_matches_the_table(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    clients = signed_in_clients(district_app, settings, summary)
    for username, client in clients.items():
        for case in STUDENT_CASES:
            pupil = summary.cases[case]["pupil_id"]
            expected = 200 if case in VISIBLE[username] else 404
            for page in PAGES:
                status = client.get(f"/students/sis/{pupil}/{page}").status_code
                assert status == expected, f"{username} on {case} ({page}): {status}, expected {expected}"


def test_a_student_that_does_not_exist_looks_like_a_refused_one(parent_client, district: tuple[Settings, DemoSummary]) -> None:  # type: ignore[no-untyped-def]
    client = parent_client("siblings", "p")
    assert client.get("/students/sis/999999/schedule").status_code == 404
    assert client.get("/students/other-system/1/schedule").status_code == 404
    assert client.get(f"/students/sis/{district[1].cases['siblings']['pupil_id']}/secrets").status_code == 404


def test_a_students_termination_request_ends_a_parents_access_at_once(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                                      parent_client) -> None:  # type: ignore[no-untyped-def]
    settings, summary = district
    pupil = summary.cases["termination_request"]["pupil_id"]
    parent = parent_client("termination_request", "tparent")
    assert parent.get(f"/students/sis/{pupil}/grades").status_code == 200
    student = district_app.test_client()
    activate(student, issue_code(settings, "student", pupil, None), "adult.student")
    accept_guidelines(student)
    token = csrf(student, "/me/end-parent-access")
    response = student.post("/me/end-parent-access", data={"csrf_token": token, "all_parents": "y", "confirm": "y"})
    assert response.status_code == 302
    assert parent.get(f"/students/sis/{pupil}/grades").status_code == 404
    dashboard = parent.get("/dashboard").get_data(as_text=True)
    assert "At the student&#39;s written request, parent access ended on November 28, 2026." in dashboard


def test_a_student_under_18_cannot_file_the_request(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    student = district_app.test_client()
    activate(student, issue_code(settings, "student", summary.cases["siblings"]["pupil_id"], None), "young.student")
    accept_guidelines(student)
    page = student.get("/me/end-parent-access").get_data(as_text=True)
    assert "Once you are 18" in page and "End their access" not in page


def test_the_dashboard_explains_each_refusal_in_words(parent_client) -> None:  # type: ignore[no-untyped-def]
    cases = {"turned_18_before_year": "turned 18 on May 17, 2026; parent access ended on June 30, 2026",
             "birth_date_unknown": "The school has no birth date for this student",
             "withdrawn": "not currently enrolled",
             "turned_18_during_year": "turned 18 on September 14, 2026; your access continues until June 30, 2027"}
    for number, (case, words) in enumerate(cases.items()):
        page = parent_client(case, f"explained{number}").get("/dashboard").get_data(as_text=True)
        assert words in page, case


def test_crawling_every_route_as_every_role_never_writes_the_replica(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    replica_file = Path(settings.replica.url.removeprefix("sqlite:///"))
    before = hashlib.sha256(replica_file.read_bytes()).hexdigest()
    statements: list[str] = []
    engine = district_app.extensions["gateway.db"]["replica"].kw["bind"]
    event.listen(engine, "before_cursor_execute", lambda c, cur, statement, *a: statements.append(statement))
    clients = signed_in_clients(district_app, settings, summary)
    routes = [rule.rule for rule in district_app.url_map.iter_rules() if "GET" in rule.methods and "<" not in rule.rule]
    for client in [*clients.values(), district_app.test_client()]:
        for route in routes:
            assert client.get(route).status_code < 500, route
        for case in STUDENT_CASES:
            for page in PAGES:
                client.get(f"/students/sis/{summary.cases[case]['pupil_id']}/{page}")
    assert statements and all(s.lstrip().upper().startswith(("SELECT", "WITH")) for s in statements)
    assert hashlib.sha256(replica_file.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("path", ["/dashboard", "/account", "/students/sis/1/schedule", "/me/end-parent-access"])
def test_anonymous_requests_are_sent_to_the_login_page(district_app: Flask, path: str) -> None:
    response = district_app.test_client().get(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


HIGHER_ROLES = ("staff", "it", "auditor", "admin")


@pytest.mark.parametrize("action", ["deny", "unlock"])
def test_staff_cannot_act_on_staff_it_auditor_or_admin_accounts(action: str, district_app: Flask,
                                                                district: tuple[Settings, DemoSummary]) -> None:
    from sqlalchemy import select

    from gateway.portal.models import Denial, User

    from .conftest import create_staff, login, portal_session

    settings = district[0]
    desk = staff_client(district_app, settings, "desk", "staff")[0]
    for role in HIGHER_ROLES:
        create_staff(settings, f"target.{role}", role)
        with portal_session(settings) as session:
            target = session.scalars(select(User.id).where(User.username == f"target.{role}")).one()
        token = csrf(desk, "/staff/accounts")
        response = desk.post(f"/staff/accounts/{target}/{action}", data={"csrf_token": token, "reason": "taking over"})
        assert response.status_code == 404, role  # exactly as for an account that does not exist
        assert f"<strong>target.{role}</strong>" not in desk.get(f"/staff/accounts?q=target.{role}").get_data(as_text=True)
        with portal_session(settings) as session:
            assert session.scalars(select(Denial)).first() is None
        assert login(district_app.test_client(), f"target.{role}").headers["Location"].startswith("/login/second-factor")


def test_only_admin_manages_staff_role_accounts_and_staff_cannot_lift_their_denials(
    district_app: Flask, district: tuple[Settings, DemoSummary]
) -> None:
    from sqlalchemy import select

    from gateway.portal.models import Denial, User

    from .conftest import create_staff, portal_session

    settings = district[0]
    admin = staff_client(district_app, settings, "boss", "admin")[0]
    desk = staff_client(district_app, settings, "desk", "staff")[0]
    create_staff(settings, "colleague", "staff")
    with portal_session(settings) as session:
        colleague = session.scalars(select(User.id).where(User.username == "colleague")).one()
    token = csrf(admin, "/staff/accounts")
    assert admin.post(f"/staff/accounts/{colleague}/deny", data={"csrf_token": token, "reason": "left"}).status_code == 302
    with portal_session(settings) as session:
        denial = session.scalars(select(Denial.id).where(Denial.user_id == colleague)).one()
    assert desk.post(f"/staff/denials/{denial}/restore", data={"csrf_token": csrf(desk, "/staff/accounts")}).status_code == 404
    with portal_session(settings) as session:
        assert session.get(Denial, denial).lifted_at is None  # type: ignore[union-attr]
