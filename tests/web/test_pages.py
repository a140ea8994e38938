"""Issue 17's page items, through the test client: what parents, students and staff read on each page."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from gateway.demo.sis import DemoSummary
from gateway.portal.models import Alert, SecurityReport, UserSession
from gateway.settings import Settings
from web.records import _months

from .conftest import accept_guidelines, activate, csrf, issue_code, portal_session, staff_client

ISO_DATE_AS_TEXT = re.compile(r">\s*\d{4}-\d{2}-\d{2}")  # an ISO date shown to a reader (attributes may keep ISO)


def child(summary: DemoSummary, case: str, page: str) -> str:
    return f"/students/sis/{summary.cases[case]['pupil_id']}/{page}"


# --- parent pages ---------------------------------------------------------------------------------

def test_attendance_rows_are_grouped_by_month_newest_first_with_each_days_periods_under_it() -> None:
    rows = [  # as read: newest day first, the day's own row before its periods
        {"date": dt.date(2026, 11, 2), "status": "absent", "code": "A", "period": None},
        {"date": dt.date(2026, 11, 2), "status": "absent", "code": "A", "period": "1"},
        {"date": dt.date(2026, 11, 2), "status": "absent", "code": "A", "period": "2"},
        {"date": dt.date(2026, 10, 30), "status": "present", "code": "P", "period": None},
        {"date": dt.date(2026, 10, 29), "status": "tardy", "code": "T", "period": "3"},  # periods only
    ]
    months = _months(rows)
    assert [m["first"] for m in months] == [dt.date(2026, 11, 1), dt.date(2026, 10, 1)]
    assert [d["date"] for d in months[0]["days"]] == [dt.date(2026, 11, 2)]
    assert [p["period"] for p in months[0]["days"][0]["periods"]] == ["1", "2"]
    assert [(d["date"].day, d["status"]) for d in months[1]["days"]] == [(30, "present"), (29, "tardy")]


def test_the_attendance_page_labels_its_month_and_shows_one_row_per_school_day_with_periods_on_demand(
        parent_client: Callable[[str, str], FlaskClient], district: tuple[Settings, DemoSummary]) -> None:
    client = parent_client("siblings_older", "calendar.reader")
    page = client.get(child(district[1], "siblings_older", "attendance")).get_data(as_text=True)
    # The demo's 20 school days before the pinned today (Saturday, November 28, 2026) are November 2 to 27.
    assert re.search(r"<h3 class=\"month\"[^>]*>November 2026</h3>", page)
    days = re.findall(r'<time datetime="(2026-11-\d\d)">', page)
    assert len(days) == 20 and len(set(days)) == 20 and days[0] == "2026-11-27" and days[-1] == "2026-11-02"
    assert "Friday 27" in page and "Monday 2" in page
    # A grade-7 student's non-present days carry their period rows, folded until asked for.
    assert "<details><summary>Periods: 1</summary>" in page and "Period 1:" in page
    spanish = client.get(child(district[1], "siblings_older", "attendance") + "?lang=es").get_data(as_text=True)
    assert re.search(r"<h3 class=\"month\"[^>]*>Noviembre 2026</h3>", spanish) and "viernes 27" in spanish


def test_dates_on_parent_pages_are_written_in_the_pages_language_not_iso(
        parent_client: Callable[[str, str], FlaskClient], district: tuple[Settings, DemoSummary]) -> None:
    client = parent_client("siblings_older", "date.reader")
    for path in (child(district[1], "siblings_older", "assignments"), child(district[1], "siblings_older", "attendance"),
                 "/account"):
        for language in ("en", "es"):
            page = client.get(f"{path}?lang={language}").get_data(as_text=True)
            assert ISO_DATE_AS_TEXT.search(page) is None, (path, language, ISO_DATE_AS_TEXT.search(page))
    english = client.get(child(district[1], "siblings_older", "assignments") + "?lang=en").get_data(as_text=True)
    spanish = client.get(child(district[1], "siblings_older", "assignments") + "?lang=es").get_data(as_text=True)
    assert re.search(r">(Oct|Nov) \d{1,2}, 2026</time>", english)
    assert re.search(r">\d{1,2} (oct|nov) 2026</time>", spanish)


def test_a_teachers_email_may_wrap_only_at_its_at_sign_and_dots(
        parent_client: Callable[[str, str], FlaskClient], district: tuple[Settings, DemoSummary]) -> None:
    page = parent_client("siblings", "email.reader").get(child(district[1], "siblings", "schedule")).get_data(as_text=True)
    link = re.search(r'<a class="email" href="mailto:([^"]+)">(.*?)</a>', page)
    assert link is not None
    assert link.group(2) == link.group(1).replace("@", "<wbr>@").replace(".", "<wbr>.")
    assert 'data-label="Teacher"' in page  # on a phone each cell names its column instead of the page scrolling


def test_a_student_whose_written_request_is_in_force_sees_it_and_not_the_form_again(
        district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    student = district_app.test_client()
    activate(student, issue_code(settings, "student", summary.cases["termination_request"]["pupil_id"], None), "filer")
    accept_guidelines(student)
    assert "End their access" in student.get("/me/end-parent-access").get_data(as_text=True)
    token = csrf(student, "/me/end-parent-access")
    student.post("/me/end-parent-access", data={"csrf_token": token, "all_parents": "y", "confirm": "y"})
    page = student.get("/me/end-parent-access").get_data(as_text=True)
    assert ("Since November 28, 2026, at your written request, none of your parents or guardians "
            "(including any linked later) can see your records.") in page
    assert "End their access" not in page and 'name="confirm"' not in page
    spanish = student.get("/me/end-parent-access?lang=es").get_data(as_text=True)
    assert "Desde el 28 de noviembre de 2026" in spanish


def test_after_an_idle_timeout_the_sign_in_page_says_the_session_ended_and_why(
        parent_client: Callable[[str, str], FlaskClient], district: tuple[Settings, DemoSummary]) -> None:
    client = parent_client("siblings", "dozer")
    with portal_session(district[0]) as session:
        session.execute(update(UserSession).values(last_seen_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=21)))
        session.commit()
    response = client.get("/dashboard", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert response.request.path == "/login"
    assert "You were signed out because nothing happened for 20 minutes. Sign in again to continue." in page
    assert "nothing happened" not in client.get("/login").get_data(as_text=True)  # said once, not on every visit


def test_a_session_past_its_absolute_lifetime_says_so_on_the_sign_in_page(
        parent_client: Callable[[str, str], FlaskClient], district: tuple[Settings, DemoSummary]) -> None:
    client = parent_client("siblings", "marathon")
    with portal_session(district[0]) as session:
        session.execute(update(UserSession).values(created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=13)))
        session.commit()
    page = client.get("/dashboard?lang=es", follow_redirects=True).get_data(as_text=True)
    assert "una sesión dura como máximo 12 horas" in page


def test_a_session_ended_by_a_password_change_elsewhere_says_so_in_words_here_and_on_the_account_page(
        parent_client: Callable[[str, str], FlaskClient], district_app: Flask) -> None:
    from .conftest import PASSWORD, login

    first = parent_client("siblings", "two.devices")
    second = district_app.test_client()
    assert login(second, "two.devices").status_code == 302
    first.post("/account", data={"csrf_token": csrf(first, "/account"), "current": PASSWORD,
                                 "new": "a brand new gravel bicycle path"})
    page = second.get("/dashboard", follow_redirects=True).get_data(as_text=True)
    assert "Your session was ended (password changed). Sign in again to continue." in page
    assert "ended (password changed)" in first.get("/account").get_data(as_text=True)


# --- consoles ---------------------------------------------------------------------------------------

def test_every_console_has_its_own_navigation_and_footer_not_the_parents(
        district_app: Flask, district: tuple[Settings, DemoSummary],
        parent_client: Callable[[str, str], FlaskClient]) -> None:
    parent_footer = "Never share your password, not even with your children."
    for role, path, link in (("staff", "/staff", "/staff/terminations"), ("it", "/it/jobs", "/it"),
                             ("auditor", "/audit/sync-history", "/audit/replica"), ("admin", "/admin", "/admin")):
        client, _ = staff_client(district_app, district[0], f"console.{role}", role)
        page = client.get(path).get_data(as_text=True)
        assert '<nav aria-label="Consoles" class="console">' in page, role
        assert f'href="{link}"' in page, role
        assert "Every page opened and every action taken here is written to the audit trail" in page.replace(
            "Staff consoles: every", "Every"), role
        assert parent_footer not in page and ">Report a problem<" not in page, role
    parent_page = parent_client("siblings", "not.a.console").get("/dashboard").get_data(as_text=True)
    assert parent_footer in parent_page and 'aria-label="Consoles"' not in parent_page


def test_staffs_written_requests_list_names_the_student(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    pupil = summary.cases["termination_request"]["pupil_id"]
    student = district_app.test_client()
    activate(student, issue_code(settings, "student", pupil, None), "named.filer")
    accept_guidelines(student)
    student.post("/me/end-parent-access", data={"csrf_token": csrf(student, "/me/end-parent-access"),
                                                "all_parents": "y", "confirm": "y"})
    staff, _ = staff_client(district_app, settings, "request.reader", "staff")
    page = staff.get("/staff/terminations").get_data(as_text=True)
    row = re.search(r"<tbody>(.*?)</tbody>", page, re.S)
    assert row is not None
    name = student.get(f"/students/sis/{pupil}/schedule").get_data(as_text=True).split("<h1>")[1].split("</h1>")[0]
    assert f"<td>{name} <small>({pupil}, sis)</small></td>" in row.group(1)
    assert "Nov 28, 2026" in row.group(1)


def test_a_resolved_security_report_closes_its_alert_and_one_in_progress_does_not(
        district_app: Flask, district: tuple[Settings, DemoSummary],
        parent_client: Callable[[str, str], FlaskClient]) -> None:
    settings = district[0]
    parent = parent_client("siblings", "whistle")
    parent.post("/report", data={"csrf_token": csrf(parent, "/report"), "body": "Someone else's grades were on my screen."})
    with portal_session(settings) as session:
        report_id = session.scalars(select(SecurityReport.id)).one()
    staff, _ = staff_client(district_app, settings, "report.closer", "staff")
    assert "security_report" in staff.get("/staff").get_data(as_text=True)
    for status, open_after in (("in_progress", True), ("resolved", False)):
        path = f"/staff/reports/{report_id}"
        staff.post(path, data={"csrf_token": csrf(staff, path), "status": status, "staff_notes": "", "resolution": "Checked."})
        with portal_session(settings) as session:
            alert = session.scalars(select(Alert).where(Alert.kind == "security_report")).one()
            assert (alert.resolved_at is None) is open_after, status
    assert "security_report" not in staff.get("/staff").get_data(as_text=True)


def test_the_jobs_page_keeps_pause_and_remove_apart(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings = district[0]
    it, _ = staff_client(district_app, settings, "jobs.keeper", "it")
    it.post("/it/jobs", data={"csrf_token": csrf(it, "/it/jobs"), "connector": settings.connectors[0].name, "schedule": "1h"})
    page = it.get("/it/jobs").get_data(as_text=True)
    job = re.search(r'action="/it/jobs/(\d+)/pause"', page)
    assert job is not None
    number = job.group(1)
    cells = re.findall(r"<td>(.*?)</td>", page, re.S)
    pause = next(c for c in cells if f"/it/jobs/{number}/pause" in c)
    remove = next(c for c in cells if f"/it/jobs/{number}/remove" in c)
    assert f"Pause job {number}</button>" in pause and "remove" not in pause  # a button that pauses at once...
    assert f'<a class="danger" href="/it/jobs/{number}/remove">Remove job {number}…</a>' == remove  # ...a link that asks first


def test_the_staff_queue_names_the_student_each_sis_guardian_belongs_to(district_app: Flask,
                                                                       district: tuple[Settings, DemoSummary]) -> None:
    from sqlalchemy import text

    from gateway.db import create_rw_engine

    from .test_applications import apply, sis_facts

    settings, summary = district
    number, born, _ = sis_facts(settings, summary, "transfer")
    assert apply(district_app, number, born, "rosa@example.org") == 200
    with create_rw_engine(settings.connectors[0].options["url"]).connect() as source:  # the name as the SIS holds it
        given, family = source.execute(text(
            f"SELECT first_name, last_name FROM pupils WHERE pupil_id = {summary.cases['transfer']['pupil_id']}")).one()
    staff, _ = staff_client(district_app, settings, "queue.reader", "staff")
    page = staff.get("/staff").get_data(as_text=True)
    assert f", of {given} {family}" in page
