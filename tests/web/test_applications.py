"""Online applications: approved against the SIS, the code mailed only to the SIS's address."""

from __future__ import annotations

import datetime as dt
import email
import json
import re

from click.testing import CliRunner
from flask import Flask
from sqlalchemy import text

from gateway.cli import main
from gateway.db import create_rw_engine
from gateway.demo.sis import DemoSummary
from gateway.mail import outbox_messages
from gateway.settings import Settings

from .conftest import accept_guidelines, activate, csrf, portal_session


def sis_facts(settings: Settings, summary: DemoSummary, case: str) -> tuple[str, str, str]:
    """(student number, birth date, the SIS's email of the case's guardian), read from the source."""
    source = settings.connectors[0].options["url"]
    info = summary.cases[case]
    engine = create_rw_engine(source)
    with engine.connect() as connection:
        number, born = connection.execute(text(f"SELECT student_no, dob FROM pupils WHERE pupil_id = {info['pupil_id']}")).one()
        address = connection.execute(text(f"SELECT email FROM contacts WHERE contact_id = {info['contact_id']}")).scalar_one()
    return number, str(born), address


def apply(app: Flask, number: str, born: str, typed_email: str) -> int:
    client = app.test_client()
    token = csrf(client, "/apply")
    return client.post("/apply", data={"csrf_token": token, "given_name": "Rosa", "family_name": "Applicant",
                                       "email": typed_email, "relationship": "mother", "student_number": number,
                                       "birth_date": born}).status_code


def test_application_approval_mail_activation_login_and_pages(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                             cli: CliRunner) -> None:
    settings, summary = district
    number, born, sis_address = sis_facts(settings, summary, "transfer")
    assert apply(district_app, number, born, "someone.else@attacker.example") == 200
    config = ["--config", str(settings.config_path)]
    listed = json.loads(cli.invoke(main, [*config, "applications", "list", "--json"]).output)["applications"]
    (application,) = listed
    guardian = str(summary.cases["transfer"]["contact_id"])
    assert guardian in {c["guardian_source_id"] for c in application["candidates"]}
    result = cli.invoke(main, [*config, "applications", "approve", str(application["id"]), "--guardian", guardian, "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["emailed"] is True, result.output
    (message_file,) = outbox_messages(settings.mail.outbox_dir)
    message = email.message_from_bytes(message_file.read_bytes())
    assert message["To"] == sis_address and "attacker.example" not in message_file.read_text()
    code = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", message.get_payload(decode=True).decode())
    assert code is not None
    assert "ask your school for the next session" in message.get_payload(decode=True).decode()  # none planned
    client = district_app.test_client()
    assert activate(client, code.group(0), "applied.parent").status_code == 302
    accept_guidelines(client)
    assert client.get(f"/students/sis/{summary.cases['transfer']['pupil_id']}/schedule").status_code == 200


def test_an_application_is_never_approved_for_a_link_the_sis_lacks(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                                   cli: CliRunner) -> None:
    settings, summary = district
    number, born, _ = sis_facts(settings, summary, "transfer")
    apply(district_app, number, born, "x@example.org")
    config = ["--config", str(settings.config_path)]
    (application,) = json.loads(cli.invoke(main, [*config, "applications", "list", "--json"]).output)["applications"]
    stranger = str(summary.cases["siblings"]["contact_id"])  # a real guardian, of another student
    result = cli.invoke(main, [*config, "applications", "approve", str(application["id"]), "--guardian", stranger])
    assert result.exit_code != 0 and "never creates one" in result.output
    grandparent = str(summary.cases["no_portal_access"]["contact_id"])
    number, born, _ = sis_facts(settings, summary, "no_portal_access")
    apply(district_app, number, born, "gran@example.org")
    listed = json.loads(cli.invoke(main, [*config, "applications", "list", "--json"]).output)["applications"]
    result = cli.invoke(main, [*config, "applications", "approve", str(listed[-1]["id"]), "--guardian", grandparent])
    assert result.exit_code != 0 and "no link with portal access" in result.output
    assert outbox_messages(settings.mail.outbox_dir) == []


def test_applications_are_throttled_so_they_cannot_probe_birth_dates(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    number, born, _ = sis_facts(settings, summary, "transfer")
    statuses = [apply(district_app, number, f"2015-01-{day:02d}", f"probe{day}@example.org") for day in range(1, 12)]
    assert statuses[:9] == [200] * 9 and set(statuses[9:]) == {400}
    with portal_session(settings) as session:
        from gateway.portal.applications import pending

        assert len(pending(session)) == 9


def test_the_application_page_recommends_training_and_lists_sessions(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    from gateway.portal.models import TrainingSession

    with portal_session(district[0]) as session:
        session.add(TrainingSession(title="Portal basics", location="Library, Riverbend High",
                                    starts_at=dt.datetime(2030, 1, 15, 18, tzinfo=dt.timezone.utc)))
        session.commit()
    page = district_app.test_client().get("/apply").get_data(as_text=True)
    assert "Training is recommended" in page and "Portal basics" in page and "Library, Riverbend High" in page


def add_training(settings: Settings) -> None:
    from gateway.portal.models import TrainingSession

    with portal_session(settings) as session:
        session.add(TrainingSession(title="Portal basics", location="Library, Riverbend High",
                                    starts_at=dt.datetime(2030, 1, 15, 18, tzinfo=dt.timezone.utc)))
        session.commit()


def test_the_approval_mail_lists_the_upcoming_training_sessions(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                                cli: CliRunner) -> None:
    settings, summary = district
    add_training(settings)
    number, born, _ = sis_facts(settings, summary, "transfer")
    assert apply(district_app, number, born, "rosa@example.org") == 200
    config = ["--config", str(settings.config_path)]
    (application,) = json.loads(cli.invoke(main, [*config, "applications", "list", "--json"]).output)["applications"]
    guardian = str(summary.cases["transfer"]["contact_id"])
    assert cli.invoke(main, [*config, "applications", "approve", str(application["id"]), "--guardian", guardian]).exit_code == 0
    (message_file,) = outbox_messages(settings.mail.outbox_dir)
    body = email.message_from_bytes(message_file.read_bytes()).get_payload(decode=True).decode()
    # 18:00 UTC in the test district (America/Chicago): noon
    assert "The next sessions:\n  - Tuesday January 15, 2030, 12:00: Portal basics, Library, Riverbend High\n" in body


def test_the_help_page_lists_the_upcoming_training_sessions_the_activation_page_promises(
        district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    client = district_app.test_client()
    assert "your school lists the next ones on its help page" in client.get("/activate").get_data(as_text=True)
    add_training(district[0])
    page = client.get("/help").get_data(as_text=True)
    assert "The next sessions on using the portal:" in page and "Portal basics, Library, Riverbend High" in page


def test_approving_and_rejecting_from_the_cli_are_audited_with_the_operator(
    district_app: Flask, district: tuple[Settings, DemoSummary], cli: CliRunner
) -> None:
    import socket

    settings, summary = district
    config = ["--config", str(settings.config_path)]
    operator = {"USER": "alice", "LOGNAME": "alice", "LNAME": "alice", "USERNAME": "alice"}
    for case in ("transfer", "siblings"):
        number, born, _ = sis_facts(settings, summary, case)
        apply(district_app, number, born, f"{case}@example.org")
    first, second = json.loads(cli.invoke(main, [*config, "applications", "list", "--json"]).output)["applications"]
    guardian = str(summary.cases["transfer"]["contact_id"])
    assert cli.invoke(main, [*config, "applications", "approve", str(first["id"]), "--guardian", guardian],
                      env=operator).exit_code == 0
    assert cli.invoke(main, [*config, "applications", "reject", str(second["id"]), "--reason", "not the parent"],
                      env=operator).exit_code == 0
    with portal_session(settings) as session:
        rows = session.execute(text("SELECT action, actor_role, detail FROM audit_log WHERE action IN ('application.approved', 'application.rejected') "
                                    "ORDER BY id")).all()
    actor = f"cli:alice@{socket.gethostname()}"
    assert [(action, role) for action, role, _ in rows] == [("application.approved", "cli"), ("application.rejected", "cli")]
    details = [detail if isinstance(detail, dict) else json.loads(detail) for _, _, detail in rows]
    assert [detail["actor"] for detail in details] == [actor, actor]
    assert details[0]["guardian_source_id"] == guardian and details[1]["reason"] == "not the parent"
