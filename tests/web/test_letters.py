"""Activation letters: one per guardian-student link, in the family's language; their codes work."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from gateway.cli import main
from gateway.demo.sis import DemoSummary
from gateway.portal.models import AuditEntry, User
from gateway.settings import Settings

from .conftest import accept_guidelines, activate, csrf, portal_session, staff_client



def letters_for(cli: CliRunner, settings: Settings, tmp_path: Path, *args: str) -> str:
    result = cli.invoke(main, ["--config", str(settings.config_path), "letters", *args, "--out", str(tmp_path / "letters"), "--json"])
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.output)["file"]).read_text()


def test_each_parent_gets_a_letter_whose_code_activates_that_parent(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                                    cli: CliRunner, tmp_path: Path) -> None:
    settings, summary = district
    pupil = summary.cases["split_household"]["pupil_id"]
    html = letters_for(cli, settings, tmp_path, "--student", str(pupil))
    codes = re.findall(r'class="code">([0-9A-Z-]{19})<', html)
    assert len(codes) == 2 and html.count('class="letter"') == 2  # mother and father, one page each
    guardians = set()
    for number, code in enumerate(codes):
        client = district_app.test_client()
        assert activate(client, code, f"letter.parent{number}").status_code == 302
        accept_guidelines(client)
        assert client.get(f"/students/sis/{pupil}/schedule").status_code == 200
        with portal_session(settings) as session:
            guardians.add(session.scalars(select(User.guardian_source_id).where(User.username == f"letter.parent{number}")).one())
    assert guardians == {str(summary.cases["split_household"]["contact_id"]), str(summary.cases["split_household_father"]["contact_id"])}


def test_letters_are_written_in_the_familys_language(district: tuple[Settings, DemoSummary], cli: CliRunner, tmp_path: Path) -> None:
    settings, _ = district
    html = letters_for(cli, settings, tmp_path, "--school", "2", "--include-students")
    languages = re.findall(r'<article class="letter" lang="(\w+)">', html)
    assert "es" in languages and "en" in languages
    for article in re.findall(r'<article class="letter" lang="es">.*?</article>', html, re.S):
        assert "Ingrese este código de activación" in article and "Enter this" not in article
    assert "@media print" in html  # the file prints on its own


def test_the_letters_page_is_for_staff_only_and_prints_codes(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                            parent_client) -> None:  # type: ignore[no-untyped-def]
    staff, _ = staff_client(district_app, district[0], "letter.writer", "staff")
    parent = parent_client("siblings", "curious.parent")
    assert parent.get("/staff/letters").status_code == 404
    token = csrf(staff, "/staff/letters")
    page = staff.post("/staff/letters", data={"csrf_token": token, "school": "3"}).get_data(as_text=True)
    assert page.count('class="letter"') >= 1 and re.search(r'class="code">[0-9A-Z-]{19}<', page)


def add_training(settings: Settings) -> None:
    from gateway.portal.models import TrainingSession

    with portal_session(settings) as session:
        session.add(TrainingSession(title="Portal basics", location="Library, Riverbend High",
                                    starts_at=dt.datetime(2030, 1, 15, 18, tzinfo=dt.timezone.utc)))
        session.add(TrainingSession(title="Long gone", location="Gym",
                                    starts_at=dt.datetime(2020, 1, 15, 18, tzinfo=dt.timezone.utc)))
        session.commit()


def test_letters_list_the_upcoming_training_sessions_in_the_familys_language(
        district: tuple[Settings, DemoSummary], cli: CliRunner, tmp_path: Path) -> None:
    settings, _ = district
    add_training(settings)
    html = letters_for(cli, settings, tmp_path, "--school", "2", "--include-students")
    english = re.findall(r'<article class="letter" lang="en">.*?</article>', html, re.S)
    spanish = re.findall(r'<article class="letter" lang="es">.*?</article>', html, re.S)
    assert english and spanish
    for article in english:
        # 18:00 UTC in the test district (America/Chicago): noon
        assert "Tuesday, January 15, 2030, 12:00\u202fPM: Portal basics, Library, Riverbend High" in article
        assert "Long gone" not in article and "ask your school for the next session" not in article
    for article in spanish:
        assert "martes, 15 de enero de 2030, 12:00: Portal basics" in article and "Las próximas sesiones sobre el uso del portal" in article


def test_issuing_a_code_and_recording_a_paper_request_from_the_cli_are_audited_with_the_operator(
    district: tuple[Settings, DemoSummary], cli: CliRunner
) -> None:
    import socket

    settings, summary = district
    case = summary.cases["split_household"]
    pupil, guardian = str(case["pupil_id"]), str(case["contact_id"])
    operator = {"USER": "alice", "LOGNAME": "alice"}
    config = ["--config", str(settings.config_path)]
    issued = cli.invoke(main, [*config, "codes", "issue", "--student", pupil, "--guardian", guardian, "--json"], env=operator)
    assert issued.exit_code == 0, issued.output
    code = json.loads(issued.output)["code"]
    recorded = cli.invoke(main, [*config, "terminations", "record", "--student", pupil, "--recorded", "2026-12-01"],
                          env=operator)
    assert recorded.exit_code == 0, recorded.output
    with portal_session(settings) as session:
        rows = session.execute(select(AuditEntry.action, AuditEntry.source_system, AuditEntry.student_source_id,
                                      AuditEntry.detail).where(AuditEntry.actor_role == "cli").order_by(AuditEntry.id)).all()
    actor = f"cli:alice@{socket.gethostname()}"
    assert [(action, system, student) for action, system, student, _ in rows] == [
        ("code.issued", "sis", pupil), ("termination.recorded", "sis", pupil)]
    assert [detail["actor"] for *_, detail in rows] == [actor, actor]
    assert rows[0].detail["guardian_source_id"] == guardian and code not in str(rows[0].detail)  # never the code


def test_printing_letters_from_the_cli_is_audited_with_the_operator(district: tuple[Settings, DemoSummary], cli: CliRunner,
                                                                    tmp_path: Path) -> None:
    import socket

    settings, summary = district
    pupil = str(summary.cases["split_household"]["pupil_id"])
    result = cli.invoke(main, ["--config", str(settings.config_path), "letters", "--student", pupil,
                               "--out", str(tmp_path / "letters")], env={"USER": "alice", "LOGNAME": "alice"})
    assert result.exit_code == 0, result.output
    with portal_session(settings) as session:
        (detail,) = session.execute(select(AuditEntry.detail).where(AuditEntry.action == "codes.issued_by_letter")).scalars()
    assert detail == {"actor": f"cli:alice@{socket.gethostname()}", "letters": 2, "school": None, "grade": None,
                      "students": [pupil]}
