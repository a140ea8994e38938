"""axe-core on every page, in English and Spanish: no serious or critical violation.

"Every page" is checked against the app's URL map: each GET route is visited (the few
that are not pages are listed by hand), so a new page cannot slip past this test.
"""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from gateway.portal import recovery
from gateway.demo.sis import DemoSummary
from gateway.mail import outbox_messages
from gateway.settings import Settings

from ..conftest import create_staff, issue_code, portal_session
from .conftest import AXE, LiveServer, accept_guidelines, activate, sign_in

pytestmark = pytest.mark.browser

NOT_PAGES = {"static", "public.healthz", "public.livez", "auditor.access_log_csv"}  # a file, two probes, a download
SEVERE = ("serious", "critical")


class PageCheck:
    """Something checked on every page the walk below visits; keeps which routes were seen."""

    def __init__(self, app: Flask, language: str) -> None:
        self.app, self.language = app, language
        self.violations: list[str] = []
        self.endpoints: set[str] = set()

    def check(self, page: Any, path: str) -> None:
        separator = "&" if "?" in path else "?"
        response = page.goto(f"{path}{separator}lang={self.language}")
        assert response is not None and response.status < 500, path
        assert page.evaluate("document.documentElement.lang") == self.language, path
        self.inspect(page, path)
        adapter = self.app.url_map.bind("127.0.0.1")
        if response.status != 404:  # the error page is checked, but it is no route's page
            self.endpoints.add(adapter.match(path.split("?")[0], method="GET")[0])

    def inspect(self, page: Any, label: str) -> None:
        raise NotImplementedError


class Axe(PageCheck):
    """Runs axe-core in each page visited and keeps what it finds."""

    def inspect(self, page: Any, label: str) -> None:
        page.add_script_tag(path=str(axe_path()))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        for violation in result["violations"]:
            if violation["impact"] in SEVERE:
                targets = [node["target"] for node in violation["nodes"]][:3]
                self.violations.append(f"{label} [{self.language}] {violation['id']} ({violation['impact']}): "
                                       f"{violation['help']} at {targets}")


def axe_path() -> Path:
    assert AXE is not None  # axe_context skipped otherwise
    return AXE


def test_axe_core_comes_from_the_installed_python_package_not_npm() -> None:
    assert AXE is not None, "pip install -c constraints.txt -e '.[test]'"
    assert "site-packages" in AXE.parts and AXE.parent.name == "axe_playwright_python"
    assert AXE.read_text(encoding="utf-8").startswith("/*! axe v4.")


@pytest.fixture
def axe_context(chromium: Any, live: LiveServer) -> Any:
    if AXE is None:
        pytest.skip("axe-core is not installed: pip install -c constraints.txt -e '.[test]' (axe-playwright-python ships it)")
    # Our CSP forbids inline scripts, as it should; only this test context may inject axe.
    context = chromium.new_context(base_url=live.url, bypass_csp=True)
    context.set_default_timeout(10_000)
    yield context
    context.close()


def another_person(context: Any, live: LiveServer) -> Any:
    """A page in a context of its own: its own cookies, as a second browser would have."""
    other = context.browser.new_context(base_url=live.url, bypass_csp=True)
    other.set_default_timeout(10_000)
    return other.new_page()


def child_paths(summary: DemoSummary, case: str) -> list[str]:
    pupil = summary.cases[case]["pupil_id"]
    return [f"/students/sis/{pupil}/{page}" for page in ("schedule", "grades", "assignments", "attendance")]


def reset_link(settings: Settings, username: str) -> str:
    with portal_session(settings) as session:
        recovery.request_reset(session, settings, username, "127.0.0.1")
        session.commit()
    newest = sorted(outbox_messages(settings.mail.outbox_dir))[-1]
    body = email.message_from_bytes(newest.read_bytes()).get_payload(decode=True).decode()
    link = re.search(r"https?://\S+(/reset\?token=\S+)", body)
    assert link is not None, body
    return link.group(1)


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_page_has_no_serious_or_critical_accessibility_violation(
        axe_context: Any, live: LiveServer, district: tuple[Settings, DemoSummary], language: str) -> None:
    axe = Axe(live.app, language)
    visit_every_page(lambda: another_person(axe_context, live), district, axe)
    assert axe.violations == []
    assert_every_page_checked(live.app, axe)


def assert_every_page_checked(app: Flask, check: PageCheck) -> None:
    get_routes = {rule.endpoint for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ())}
    assert get_routes - NOT_PAGES - check.endpoints == set(), "pages never checked"


def visit_every_page(new_person: Callable[[], Any], district: tuple[Settings, DemoSummary], axe: PageCheck) -> None:
    """Every page, as the role that sees it: anonymous, parent, student, and an admin (who sees every console).

    ``new_person()`` gives a page in a browser context of its own (its own cookies)."""
    settings, summary = district
    anonymous = new_person()
    for path in ("/", "/help", "/login", "/activate", "/apply", "/forgot-password", "/forgot-username", "/no-such-page"):
        axe.check(anonymous, path)

    parent = new_person()
    case = summary.cases["siblings"]
    activate(parent, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "axe.parent")
    axe.check(parent, "/guidelines")
    accept_guidelines(parent)
    for path in ("/dashboard", *child_paths(summary, "siblings"), "/account", "/report", "/activate"):
        axe.check(parent, path)
    parent.goto("/report")
    parent.fill("#body", "Another family's child was on my dashboard this morning.")
    parent.click("main button[type=submit]")  # a report for the staff's report page below
    axe.check(anonymous, reset_link(settings, "axe.parent"))

    student = new_person()
    activate(student, issue_code(settings, "student", summary.cases["termination_request"]["pupil_id"], None), "axe.student")
    accept_guidelines(student)
    axe.check(student, "/me/end-parent-access")

    admin = new_person()
    create_staff(settings, "axe.admin", "admin")
    sign_in(admin, "axe.admin")
    axe.check(admin, "/login/second-factor")
    enrol_and_check_codes(admin, axe)
    accept_guidelines(admin)
    report_id, run_id = first_report_and_run(settings)
    job_id = a_job(settings)
    for path in ("/staff", "/staff/letters", "/staff/accounts", "/staff/terminations", "/staff/training",
                 "/staff/guidelines", f"/staff/reports/{report_id}", "/it", "/it/jobs", f"/it/jobs/{job_id}/remove",
                 f"/it/runs/{run_id}",
                 "/audit", "/audit/access-log", "/audit/replica", "/audit/replica/students", "/audit/sanitization",
                 "/audit/sync-history", "/admin"):
        axe.check(admin, path)


def enrol_and_check_codes(page: Any, check: PageCheck) -> None:
    import time

    from gateway.security import totp

    secret = page.inner_text("figure.qr code")
    page.fill("#code", totp.code_at(secret, time.time()))
    page.click("main button[type=submit]")
    page.wait_for_selector("ul.codes")
    check.inspect(page, "recovery codes")  # shown once, as the answer to the POST
    page.click("main a[href='/dashboard']")


def a_job(settings: Settings) -> int:
    """A sync job, for the page that asks before removing one."""
    from gateway.portal import jobs as job_service

    with portal_session(settings) as session:
        (job,) = job_service.add_job(session, settings, settings.connectors[0].name, None, "1h", False, nightly=False)
    return job.id


def first_report_and_run(settings: Settings) -> tuple[int, int]:
    from sqlalchemy.orm import Session

    from gateway.db import create_rw_engine
    from gateway.portal.models import SecurityReport
    from gateway.replica.tables import SyncRun

    with portal_session(settings) as session:
        report_id = session.scalars(select(SecurityReport.id)).one()
    with Session(create_rw_engine(settings.replica.url)) as replica:
        run_id = replica.scalars(select(SyncRun.id)).first()
    assert run_id is not None
    return report_id, run_id


def test_the_harness_reports_a_violation_when_there_is_one(axe_context: Any) -> None:
    """Guards the test above against passing vacuously (axe not loaded, impacts renamed)."""
    page = axe_context.new_page()
    page.set_content('<html lang="en"><head><title>t</title></head><body><main><img src="x.png"></main></body></html>')
    page.add_script_tag(path=str(axe_path()))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    assert [(v["id"], v["impact"]) for v in result["violations"] if v["impact"] in SEVERE] == [("image-alt", "critical")]
