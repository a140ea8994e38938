"""Whole flows in a real browser: what a parent, a student, staff and an auditor do."""

from __future__ import annotations

import datetime as dt
import email
import re
from typing import Any

import pytest
from sqlalchemy import select

from gateway.demo.sis import DemoSummary
from gateway.mail import outbox_messages
from gateway.settings import Settings

from ..conftest import PASSWORD, create_staff, issue_code, portal_session, set_activation_date
from ..test_applications import sis_facts
from .conftest import LiveServer, accept_guidelines, activate, enrol_second_factor, sign_in, sign_out

pytestmark = pytest.mark.browser

CHILD_PAGES = {"schedule": "Classes this term", "grades": "Report card grades", "assignments": "Scores, newest due date first",
               "attendance": "Attendance by school day"}


def child_path(summary: DemoSummary, case: str, page: str) -> str:
    return f"/students/sis/{summary.cases[case]['pupil_id']}/{page}"


def visit_every_page_of(page: Any, summary: DemoSummary, case: str) -> None:
    """From the dashboard, by the links a parent clicks, each of the child's pages."""
    for name, heading in CHILD_PAGES.items():
        page.goto("/dashboard")
        page.click(f"a[href='{child_path(summary, case, name)}']")
        page.wait_for_url(re.compile(re.escape(child_path(summary, case, name)) + "$"))
        assert heading in page.inner_text("main"), (case, name)


def test_code_activation_sign_in_every_page_of_each_child_and_sign_out(page: Any, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    first, second = summary.cases["siblings"], summary.cases["siblings_older"]
    activate(page, issue_code(settings, "guardian", first["pupil_id"], first["contact_id"]), "two.kids")
    accept_guidelines(page)
    page.wait_for_url(re.compile(r"/dashboard$"))
    # The second child is added with the second letter's code, while signed in.
    page.goto("/activate")
    page.fill("#code", issue_code(settings, "guardian", second["pupil_id"], second["contact_id"]))
    page.click("main button[type=submit]")
    sign_out(page)
    sign_in(page, "two.kids")
    page.wait_for_url(re.compile(r"/dashboard$"))
    for case in ("siblings", "siblings_older"):
        visit_every_page_of(page, summary, case)
    sign_out(page)
    page.goto(child_path(summary, "siblings", "grades"))
    assert "/login" in page.url and "Report card" not in page.inner_text("main")


def test_application_staff_approval_with_totp_and_activation_from_the_mailed_link(
        browser_context: Any, live: LiveServer, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    number, born, sis_address = sis_facts(settings, summary, "transfer")
    applicant = browser_context.new_page()
    applicant.goto("/apply")
    applicant.fill("#given_name", "Rosa")
    applicant.fill("#family_name", "Applicant")
    applicant.fill("#email", "rosa@home.example")
    applicant.select_option("#relationship", "mother")
    applicant.fill("#student_number", number)
    applicant.fill("#birth_date", born)
    applicant.click("main button[type=submit]")
    assert "application" in applicant.inner_text("main").lower()

    create_staff(settings, "desk", "staff")
    desk = browser_context.browser.new_context(base_url=live.url).new_page()
    sign_in(desk, "desk")
    enrol_second_factor(desk)
    accept_guidelines(desk)
    desk.goto("/staff")
    desk.click("main button:has-text('Approve for this guardian')")
    assert "No applications are waiting." in desk.inner_text("main")

    (message_file,) = outbox_messages(settings.mail.outbox_dir)
    message = email.message_from_bytes(message_file.read_bytes())
    assert message["To"] == sis_address
    body = message.get_payload(decode=True).decode()
    link = re.search(r"(http://\S+/activate)", body)
    code = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", body)
    assert link is not None and link.group(1) == f"{live.url}/activate" and code is not None
    applicant.goto(link.group(1))
    applicant.fill("#code", code.group(0))
    applicant.fill("#username", "rosa.applicant")
    applicant.fill("#password", PASSWORD)
    applicant.check("#responsibilities")
    applicant.click("main button[type=submit]")
    accept_guidelines(applicant)
    applicant.goto(child_path(summary, "transfer", "schedule"))
    assert "Classes this term" in applicant.inner_text("main")


def test_an_adult_students_request_ends_a_parents_access_in_their_browser(
        browser_context: Any, chromium: Any, live: LiveServer, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    case = summary.cases["termination_request"]
    parent = browser_context.new_page()
    activate(parent, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "t.parent")
    accept_guidelines(parent)
    set_activation_date(settings, "t.parent", dt.date(2024, 8, 1))  # activated before the student turned 18
    parent.goto(child_path(summary, "termination_request", "grades"))
    assert "Report card" in parent.inner_text("main")

    student = chromium.new_context(base_url=live.url).new_page()
    activate(student, issue_code(settings, "student", case["pupil_id"], None), "adult.student")
    accept_guidelines(student)
    student.goto("/me/end-parent-access")
    student.check("#all_parents")
    student.check("#confirm")
    student.click("main button[type=submit]")
    student.wait_for_url(re.compile(r"/schedule$"))  # a student's home is their own schedule
    assert "The parents it names no longer see your records." in student.inner_text("main .notice")

    response = parent.goto(child_path(summary, "termination_request", "grades"))
    assert response is not None and response.status == 404
    parent.goto("/dashboard")
    assert "At the student's written request, parent access ended on November 28, 2026." in parent.inner_text("main")


def test_an_auditor_verifies_the_audit_trail_and_finds_a_parents_view(
        chromium: Any, live: LiveServer, page: Any, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    case = summary.cases["siblings"]
    parent = chromium.new_context(base_url=live.url).new_page()
    activate(parent, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "viewing.parent")
    accept_guidelines(parent)
    parent.goto(child_path(summary, "siblings", "grades"))

    create_staff(settings, "inspector", "auditor")
    sign_in(page, "inspector")
    enrol_second_factor(page)
    accept_guidelines(page)
    page.goto("/audit")
    text = page.inner_text("main")
    assert "The audit trail is intact" in text and "the checkpoint matches" in text, text
    page.click("main a:has-text('Access log')")
    rows = page.locator("main table tbody tr")
    assert rows.count() == 1
    assert "viewing.parent" in rows.first.inner_text() and "grades" in rows.first.inner_text()


def test_the_parent_flow_at_a_phones_viewport(chromium: Any, live: LiveServer, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    case = summary.cases["siblings"]
    context = chromium.new_context(base_url=live.url, viewport={"width": 375, "height": 667}, device_scale_factor=2,
                                   is_mobile=True, has_touch=True, locale="en-US")
    page = context.new_page()
    activate(page, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "phone.parent")
    accept_guidelines(page)
    for name in CHILD_PAGES:
        page.goto(child_path(summary, "siblings", name))
        # Nothing wider than the screen: no sideways scrolling of the page itself.
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, name
    page.goto("/dashboard")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    context.close()


def test_sign_in_and_a_childs_pages_by_keyboard_alone(page: Any, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    case = summary.cases["siblings"]
    activate(page, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "keys.parent")
    accept_guidelines(page)
    sign_out(page)

    page.goto("/login")
    focus_by_tab(page, "#username")
    page.keyboard.type("keys.parent")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/dashboard$"))
    for name, heading in CHILD_PAGES.items():
        page.goto("/dashboard")
        focus_by_tab(page, f"a[href='{child_path(summary, 'siblings', name)}']")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(re.escape(child_path(summary, "siblings", name)) + "$"))
        assert heading in page.inner_text("main")


def focus_by_tab(page: Any, selector: str, limit: int = 60) -> None:
    """Press Tab until the element is focused, as a keyboard user would; fail if it never is."""
    target = page.locator(selector).first
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            visible = target.evaluate("e => getComputedStyle(e).outlineStyle !== 'none' || getComputedStyle(e).boxShadow !== 'none'")
            assert visible, f"{selector} has no visible focus indicator"
            return
    raise AssertionError(f"{selector} cannot be reached with Tab")


def test_every_record_view_in_the_browser_is_audited(page: Any, district: tuple[Settings, DemoSummary]) -> None:
    from gateway.portal.models import AuditEntry

    settings, summary = district
    case = summary.cases["siblings"]
    activate(page, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "audited.parent")
    accept_guidelines(page)
    visit_every_page_of(page, summary, "siblings")
    with portal_session(settings) as session:
        viewed = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "record.view")).all()
    assert sorted(d["page"] for d in viewed) == ["assignments", "attendance", "grades", "schedule"]
