"""The parent dashboard: a refused child is named with the reason, and nothing else of theirs."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import create_ro_engine
from gateway.demo.sis import DemoSummary
from gateway.portal.models import AuditEntry
from gateway.replica.tables import School, Student
from gateway.settings import Settings

from .conftest import accept_guidelines, activated_in_2024, portal_session, set_activation_date


def replica_facts(settings: Settings, pupil: int) -> tuple[str, str, str]:
    """(given name, school name, grade) the replica holds for a student."""
    with Session(create_ro_engine(settings.replica.url)) as replica:
        student = replica.scalars(select(Student).where(Student.source_id == str(pupil))).one()
        school = replica.scalar(select(School.name).where(School.source_id == student.school_source_id))
        return student.preferred_name or student.given_name, str(school), str(student.grade_level)


def test_a_refused_child_is_named_with_the_reason_and_without_school_or_grade(district_app: Flask,
                                                                              district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    info = summary.cases["link_not_in_force"]  # the parent's rights ended; the child goes on at school
    client = district_app.test_client()
    assert activated_in_2024(client, settings, info["pupil_id"], info["contact_id"], "rights.ended").status_code == 302
    accept_guidelines(client)
    set_activation_date(settings, "rights.ended", dt.date(2024, 8, 1))
    name, school, grade = replica_facts(settings, info["pupil_id"])
    page = client.get("/dashboard").get_data(as_text=True)
    assert name in page and "Your link to this student in the school&#39;s records" in page
    assert school not in page and f"grade {grade}" not in page


def test_an_allowed_child_still_shows_school_and_grade(parent_client, district: tuple[Settings, DemoSummary]) -> None:  # type: ignore[no-untyped-def]
    settings, summary = district
    name, school, grade = replica_facts(settings, summary.cases["transfer"]["pupil_id"])
    page = parent_client("transfer", "follows.transfer").get("/dashboard").get_data(as_text=True)
    assert name in page and school in page and f"grade {grade}" in page


def test_each_dashboard_load_is_audited(parent_client, district: tuple[Settings, DemoSummary]) -> None:  # type: ignore[no-untyped-def]
    client = parent_client("siblings", "audited.dashboard")
    for _ in range(2):
        assert client.get("/dashboard").status_code == 200
    with portal_session(district[0]) as session:
        views = session.scalars(select(AuditEntry).where(AuditEntry.action == "dashboard.view")).all()
    # Two children linked in the SIS; only the younger was activated with this account.
    assert len(views) == 2 and all(v.detail == {"children": 2, "refused": 1} for v in views)
