"""Hostile values synced from the SIS render as text on every page that shows them, in the browser.

A compromised or careless SIS can hold anything in a name or a title. The replica keeps
it as it came; every page must show it as inert text. The DOM is inspected rather than
relying on the CSP alone: the CSP would block an inline script, but an escaped value
never becomes an element in the first place.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.sis import DemoSummary
from gateway.settings import Settings

from ..conftest import create_staff, issue_code, synced_district
from .conftest import accept_guidelines, activate, enrol_second_factor, sign_in
from .test_flows import CHILD_PAGES, child_path

pytestmark = pytest.mark.browser

STUDENT = "<script>alert(1)</script>"
SECTION = '"><img src=x onerror=alert(1)>'
ASSIGNMENT = "<svg onload=alert(1)>"
GUARDIAN = "<img src=x onerror=alert(2)>"
INJECTED = "script:not([src]), img[src='x'], svg[onload], [onerror], [onload], iframe, object, embed"


@pytest.fixture
def district(instance: Settings, district_sis: tuple[Path, DemoSummary], tmp_path: Path) -> tuple[Settings, DemoSummary]:
    """The demo district after someone typed markup into the SIS, synced like any other data."""
    sis, summary = district_sis
    hostile = tmp_path / "hostile-sis.sqlite3"
    shutil.copyfile(sis, hostile)
    pupil, contact = summary.cases["siblings"]["pupil_id"], summary.cases["siblings"]["contact_id"]
    with sqlite3.connect(hostile) as db:
        db.execute("UPDATE pupils SET first_name = ?, nickname = NULL WHERE pupil_id = ?", (STUDENT, pupil))
        db.execute("UPDATE contacts SET first_name = ? WHERE contact_id = ?", (GUARDIAN, contact))
        sections = [row[0] for row in db.execute("SELECT section_id FROM rosters WHERE pupil_id = ?", (pupil,))]
        db.execute(f"UPDATE course_catalog SET course_title = ? WHERE course_id IN "
                   f"(SELECT course_id FROM class_sections WHERE section_id IN ({','.join('?' * len(sections))}))",
                   (SECTION, *sections))
        db.execute(f"UPDATE gb_assignments SET title = ? WHERE section_id IN ({','.join('?' * len(sections))})",
                   (ASSIGNMENT, *sections))
    return synced_district(instance, hostile, tmp_path), summary


class Watch:
    """Fails on any dialog a page opens and on any element a value could have injected."""

    def __init__(self, page: Any) -> None:
        self.page, self.dialogs = page, []
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def visit(self, path: str, *shown: str) -> None:
        self.page.goto(path)
        self.check(path, *shown)

    def check(self, where: str, *shown: str) -> None:
        injected = self.page.evaluate(f"Array.from(document.querySelectorAll({INJECTED!r}), e => e.outerHTML)")
        assert injected == [], where
        text = self.page.inner_text("body")
        for value in shown:
            assert value in text, f"{value!r} is not shown as text on {where}"
        assert self.dialogs == [], where


def test_hostile_names_and_titles_render_as_text_for_parents_students_and_staff(
        page: Any, chromium: Any, live: Any, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    case = summary.cases["siblings"]
    parent = Watch(page)
    activate(page, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "hostile.parent")
    accept_guidelines(page)
    parent.visit("/dashboard", STUDENT)
    for name in CHILD_PAGES:
        parent.visit(child_path(summary, "siblings", name), STUDENT)
    parent.visit(child_path(summary, "siblings", "schedule"), SECTION)
    parent.visit(child_path(summary, "siblings", "assignments"), ASSIGNMENT)
    parent.visit("/account")

    create_staff(settings, "hostile.admin", "admin")
    admin_page = chromium.new_context(base_url=live.url).new_page()
    admin = Watch(admin_page)
    sign_in(admin_page, "hostile.admin")
    enrol_second_factor(admin_page)
    accept_guidelines(admin_page)
    for table in ("students", "guardians", "sections", "assignments"):
        admin.visit(f"/audit/replica/{table}")
    admin.visit("/staff/accounts?q=hostile", "hostile.parent")
    admin.visit("/staff/letters")
    school = student_school(settings, case["pupil_id"])
    admin_page.fill("#school", school)
    admin_page.click("main button[type=submit]")
    admin.check("the letters", STUDENT, GUARDIAN)


def student_school(settings: Settings, pupil: int) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(settings.replica.url)
    with engine.connect() as connection:
        school = connection.execute(text("SELECT school_source_id FROM students WHERE source_id = :id"),
                                    {"id": str(pupil)}).scalar_one()
    engine.dispose()
    return str(school)
