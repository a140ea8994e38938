"""Whole flows through the test client: code, activation, sign-in, a child's pages."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from gateway.demo.sis import DemoSummary
from gateway.settings import Settings

from .conftest import PASSWORD, accept_guidelines, activate, issue_code, login


def child_url(summary: DemoSummary, case: str, page: str) -> str:
    return f"/students/sis/{summary.cases[case]['pupil_id']}/{page}"


def test_code_activation_login_and_every_page_of_a_child(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    info = summary.cases["siblings"]
    client = district_app.test_client()
    response = activate(client, issue_code(settings, "guardian", info["pupil_id"], info["contact_id"]), "sibling.parent")
    assert response.status_code == 302
    assert client.get("/dashboard").headers["Location"].startswith("/guidelines")  # guidelines before anything else
    accept_guidelines(client)
    dashboard = client.get("/dashboard").get_data(as_text=True)
    assert "My children" in dashboard and "Schedule" in dashboard
    for page, marker in (("schedule", "Classes this term"), ("grades", "Report card"), ("assignments", "Scores"),
                         ("attendance", "Attendance by school day")):
        response = client.get(child_url(summary, "siblings", page))
        assert response.status_code == 200, page
        assert marker in response.get_data(as_text=True), page
        assert response.headers["Cache-Control"] == "no-store"
    token = client.get("/account").get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    client.post("/logout", data={"csrf_token": token})
    assert client.get(child_url(summary, "siblings", "schedule")).status_code == 302  # anonymous: to the login page
    assert login(client, "sibling.parent", PASSWORD).status_code == 302
    assert client.get(child_url(summary, "siblings", "grades")).status_code == 200


def test_a_parent_cannot_see_another_childs_records(parent_client: Callable[[str, str], FlaskClient],
                                                    district: tuple[Settings, DemoSummary]) -> None:
    client = parent_client("siblings", "p1")
    assert client.get(child_url(district[1], "split_household", "schedule")).status_code == 404


def test_a_security_report_reaches_staff_and_is_acknowledged(parent_client, district: tuple[Settings, DemoSummary]) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from gateway.portal.models import Alert, SecurityReport

    from .conftest import csrf, portal_session

    client = parent_client("siblings", "reporter")
    token = csrf(client, "/report")
    response = client.post("/report", data={"csrf_token": token, "body": "I saw another family's child on my dashboard."})
    assert response.status_code == 302
    assert "went to the Student Accounting Department" in client.get("/dashboard").get_data(as_text=True)
    with portal_session(district[0]) as session:
        (report,) = session.scalars(select(SecurityReport)).all()
        assert "another family" in report.body and report.status == "new"
        assert session.scalars(select(Alert.audience).where(Alert.kind == "security_report")).all() == ["staff"]
