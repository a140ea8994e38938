"""The staff desk: each action takes effect where it matters, and only staff reach it."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.demo.sis import DemoSummary
from gateway.portal.models import SecurityReport, TerminationRequest, User
from gateway.settings import Settings, load_settings

from .conftest import PASSWORD, csrf, login, portal_session, staff_client


@pytest.fixture
def staff(district_app: Flask, district: tuple[Settings, DemoSummary]) -> FlaskClient:
    return staff_client(district_app, district[0], "desk", "staff")[0]


@pytest.mark.parametrize("path", ["/staff/training", "/staff/guidelines", "/staff/accounts", "/staff/terminations"])
def test_staff_pages_are_hidden_from_other_roles(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                 parent_client: Callable[[str, str], FlaskClient], path: str) -> None:
    assert parent_client("siblings", "nosy").get(path).status_code == 404
    assert staff_client(district_app, district[0], "it.nosy", "it")[0].get(path).status_code == 404


def test_publishing_guidelines_sends_every_user_to_accept_them_again(staff: FlaskClient,
                                                                     parent_client: Callable[[str, str], FlaskClient]) -> None:
    parent = parent_client("transfer", "reader")
    assert parent.get("/dashboard").status_code == 200
    response = staff.post("/staff/guidelines", data={"csrf_token": csrf(staff, "/staff/guidelines"),
                                                     "body": "Version two: also lock your screen when you step away."})
    assert response.status_code == 302
    assert parent.get("/dashboard").headers["Location"].startswith("/guidelines")
    assert "lock your screen" in parent.get("/guidelines").get_data(as_text=True)


def test_denying_and_restoring_an_account_from_the_desk(staff: FlaskClient, district_app: Flask,
                                                        district: tuple[Settings, DemoSummary],
                                                        parent_client: Callable[[str, str], FlaskClient]) -> None:
    parent = parent_client("transfer", "suspect")
    with portal_session(district[0]) as session:
        user_id = session.scalars(select(User.id).where(User.username == "suspect")).one()
    token = csrf(staff, "/staff/accounts?q=suspect")
    assert staff.post(f"/staff/accounts/{user_id}/deny", data={"csrf_token": token, "reason": "shared password"}).status_code == 302
    assert parent.get("/dashboard").headers["Location"].startswith("/login")
    page = staff.get("/staff/accounts").get_data(as_text=True)
    denial = re.search(r'action="(/staff/denials/\d+/restore)"', page)
    assert denial is not None and "shared password" in page
    assert staff.post(denial.group(1), data={"csrf_token": csrf(staff, "/staff/accounts")}).status_code == 302
    assert login(district_app.test_client(), "suspect", PASSWORD).status_code == 302


def test_a_paper_request_recorded_at_the_desk_ends_access_from_its_date(staff: FlaskClient, district: tuple[Settings, DemoSummary],
                                                                        parent_client: Callable[[str, str], FlaskClient]) -> None:
    summary = district[1]
    pupil = summary.cases["termination_request"]["pupil_id"]
    parent = parent_client("termination_request", "paper.parent")
    assert parent.get(f"/students/sis/{pupil}/schedule").status_code == 200
    data = {"csrf_token": csrf(staff, "/staff/terminations"), "student": str(pupil), "recorded": "2026-11-20",
            "effective": "2026-12-15", "guardians": ""}
    assert staff.post("/staff/terminations", data=data).status_code == 302
    assert parent.get(f"/students/sis/{pupil}/schedule").status_code == 200  # not yet: from 2026-12-15
    data["effective"] = "2026-11-28"
    staff.post("/staff/terminations", data={**data, "csrf_token": csrf(staff, "/staff/terminations")})
    assert parent.get(f"/students/sis/{pupil}/schedule").status_code == 404


def test_training_sessions_added_and_retired_at_the_desk_show_on_the_application_page(staff: FlaskClient, district_app: Flask) -> None:
    data = {"csrf_token": csrf(staff, "/staff/training"), "title": "Evening portal class", "starts_at": "2030-02-03T18:30",
            "location": "Lakeside library"}
    assert staff.post("/staff/training", data=data).status_code == 302
    assert "Evening portal class" in district_app.test_client().get("/apply").get_data(as_text=True)
    retire = re.search(r'action="(/staff/training/\d+/retire)"', staff.get("/staff/training").get_data(as_text=True))
    assert retire is not None
    staff.post(retire.group(1), data={"csrf_token": csrf(staff, "/staff/training")})
    assert "Evening portal class" not in district_app.test_client().get("/apply").get_data(as_text=True)


def test_a_security_report_is_worked_through_to_resolution(staff: FlaskClient, district: tuple[Settings, DemoSummary],
                                                           parent_client: Callable[[str, str], FlaskClient]) -> None:
    parent = parent_client("siblings", "whistle")
    parent.post("/report", data={"csrf_token": csrf(parent, "/report"), "body": "Someone knows my password, I think."})
    with portal_session(district[0]) as session:
        report_id = session.scalars(select(SecurityReport.id)).one()
    path = f"/staff/reports/{report_id}"
    assert parent.get(path).status_code == 404
    data = {"csrf_token": csrf(staff, path), "status": "resolved", "staff_notes": "Called the parent.", "resolution": "Password reset."}
    assert staff.post(path, data=data).status_code == 302
    with portal_session(district[0]) as session:
        row = session.get(SecurityReport, report_id)
        assert row is not None and (row.status, row.resolution) == ("resolved", "Password reset.")
    assert "Someone knows my password" not in staff.get("/staff").get_data(as_text=True)  # off the open queue


def test_a_paper_request_names_its_students_source_system_from_the_sis_and_refuses_an_ambiguous_id(
    district: tuple[Settings, DemoSummary], tmp_path: Path,
) -> None:
    from connectors import registry
    from sync.engine import run_sync
    from web import create_app

    settings, summary = district
    # A second connector over a copy of the same SIS: every student id now exists in two source systems.
    config = Path(str(settings.config_path))
    source = settings.connectors[0].options["url"]
    config.write_text(config.read_text() + f'\n[[connectors]]\nname = "annex"\nkind = "sql"\nurl = "{source}"\nmapping = "demo"\n')
    settings = load_settings(config, env={})
    run_sync(settings, registry.build(settings.connectors[1], settings), "full")
    app = create_app(settings)
    app.config.update(TESTING=True)
    desk = staff_client(app, settings, "two.systems", "staff")[0]
    pupil = str(summary.cases["termination_request"]["pupil_id"])
    data = {"student": pupil, "recorded": "2026-11-28", "effective": "", "guardians": ""}
    response = desk.post("/staff/terminations", data={**data, "csrf_token": csrf(desk, "/staff/terminations")})
    assert response.status_code == 400 and "exists in several source systems (annex, sis)" in response.get_data(as_text=True)
    unknown = desk.post("/staff/terminations", data={**data, "student": "no-such-pupil",
                                                     "csrf_token": csrf(desk, "/staff/terminations")})
    assert unknown.status_code == 400 and "the SIS has no student &#39;no-such-pupil&#39;" in unknown.get_data(as_text=True)
    with portal_session(settings) as session:
        assert session.scalars(select(TerminationRequest)).first() is None  # nothing stored, nothing reported done
    chosen = desk.post("/staff/terminations", data={**data, "source_system": "annex",
                                                    "csrf_token": csrf(desk, "/staff/terminations")})
    assert chosen.status_code == 302
    with portal_session(settings) as session:
        request = session.scalars(select(TerminationRequest)).one()
        assert (request.source_system, request.student_source_id) == ("annex", pupil)
