"""One denial rule: denied by account, by SIS guardian or by email, a person is refused everywhere."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gateway.cli import main
from gateway.db import create_ro_engine, create_rw_engine
from gateway.demo.sis import DemoSummary
from gateway.portal import accounts, denials, facts, people
from gateway.portal.facts import StudentRef
from gateway.portal.models import ActivationCode, Application, Denial, User
from gateway.security import totp
from gateway.security.crypto import FieldCipher
from gateway.security.keys import load_keyring, load_keys
from gateway.settings import Settings

from .conftest import PASSWORD, activate, csrf, issue_code, login, portal_session, staff_client

KINDS = ("account", "guardian", "sis_email", "account_email")


def sis_email(settings: Settings, contact: int) -> str:
    """The email the SIS (the demo source) holds for a contact, read from the source itself."""
    engine = create_rw_engine(settings.connectors[0].options["url"])
    with engine.connect() as connection:
        return str(connection.execute(text(f"SELECT email FROM contacts WHERE contact_id = {contact}")).scalar_one())


def deny(cli: CliRunner, settings: Settings, *how: str) -> None:
    result = cli.invoke(main, ["--config", str(settings.config_path), "users", "deny", *how, "--reason", "security risk"])
    assert result.exit_code == 0, result.output


def deny_by(kind: str, cli: CliRunner, settings: Settings, username: str, contact: int) -> None:
    if kind == "account":
        deny(cli, settings, "--username", username)
    elif kind == "guardian":
        deny(cli, settings, "--guardian", str(contact))
    elif kind == "sis_email":
        deny(cli, settings, "--email", sis_email(settings, contact).upper())  # matched normalised, by blind index
    else:
        with portal_session(settings) as session:  # the account's own email, which the SIS no longer holds
            user = session.scalars(select(User).where(User.username == username)).one()
            user.email = "old.address@example.org"
            session.commit()
        deny(cli, settings, "--email", "old.address@example.org")


@pytest.mark.parametrize("kind", KINDS)
def test_a_denied_person_loses_open_sessions_sign_in_and_records_whatever_names_them(
    kind: str, parent_client: Callable[[str, str], FlaskClient], district_app: Flask,
    district: tuple[Settings, DemoSummary], cli: CliRunner,
) -> None:
    settings, summary = district
    case = summary.cases["transfer"]
    client = parent_client("transfer", f"risk.{kind}")
    assert client.get("/dashboard").status_code == 200
    deny_by(kind, cli, settings, f"risk.{kind}", case["contact_id"])
    assert client.get("/dashboard").headers["Location"].startswith("/login")
    assert "cannot sign in" in login(district_app.test_client(), f"risk.{kind}").get_data(as_text=True)
    with portal_session(settings) as portal, Session(create_ro_engine(settings.replica.url)) as replica:
        user = portal.scalars(select(User).where(User.username == f"risk.{kind}")).one()
        ref = StudentRef("sis", str(case["pupil_id"]))
        gathered = facts.parent_facts(replica, portal, settings, FieldCipher(load_keyring(settings, "field")),
                                      load_keyring(settings, "blind_index"), user, ref, facts.student_row(replica, ref))
        assert gathered.account_ok is False


@pytest.mark.parametrize("kind", ("account", "guardian", "sis_email"))
def test_no_code_is_issued_or_redeemed_for_a_denied_guardian(kind: str, parent_client: Callable[[str, str], FlaskClient],
                                                             district_app: Flask, district: tuple[Settings, DemoSummary],
                                                             cli: CliRunner) -> None:
    settings, summary = district
    first, second = summary.cases["siblings"], summary.cases["siblings_older"]  # one guardian, two children
    parent_client("siblings", f"denied.{kind}")
    earlier = issue_code(settings, "guardian", second["pupil_id"], second["contact_id"])
    deny_by(kind, cli, settings, f"denied.{kind}", first["contact_id"])
    issued = cli.invoke(main, ["--config", str(settings.config_path), "codes", "issue", "--student", str(second["pupil_id"]),
                               "--guardian", str(second["contact_id"])])
    assert issued.exit_code != 0 and "denied" in issued.output
    response = activate(district_app.test_client(), earlier, f"second.account.{kind}")
    assert "This code cannot be used" in response.get_data(as_text=True)
    with portal_session(settings) as session:
        assert session.scalars(select(User).where(User.username == f"second.account.{kind}")).first() is None


def test_the_staff_console_issues_no_letter_for_a_denied_guardian(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                                  cli: CliRunner) -> None:
    settings, summary = district
    case = summary.cases["split_household"]
    deny(cli, settings, "--email", sis_email(settings, case["contact_id"]))
    with Session(create_ro_engine(settings.replica.url)) as replica:
        school = replica.scalar(text(f"SELECT school_source_id FROM students WHERE source_id = '{case['pupil_id']}'"))
    staff = staff_client(district_app, settings, "letters.desk", "staff")[0]
    response = staff.post("/staff/letters", data={"csrf_token": csrf(staff, "/staff/letters"), "school": school})
    assert response.status_code == 200
    with portal_session(settings) as session:
        guardians = set(session.scalars(select(ActivationCode.guardian_source_id)))
    assert str(summary.cases["split_household_father"]["contact_id"]) in guardians  # the other parent gets a letter
    assert str(case["contact_id"]) not in guardians


def apply(app: Flask, number: str, born: str, typed_email: str) -> tuple[int, str]:
    client = app.test_client()
    token = csrf(client, "/apply")
    response = client.post("/apply", data={"csrf_token": token, "given_name": "Rosa", "family_name": "Applicant",
                                           "email": typed_email, "relationship": "mother", "student_number": number,
                                           "birth_date": born})
    return response.status_code, response.get_data(as_text=True)


def student_facts(settings: Settings, pupil: int) -> tuple[str, str]:
    engine = create_rw_engine(settings.connectors[0].options["url"])
    with engine.connect() as connection:
        number, born = connection.execute(text(f"SELECT student_no, dob FROM pupils WHERE pupil_id = {pupil}")).one()
    return number, str(born)


def test_a_denied_persons_application_gets_the_neutral_answer_is_flagged_and_cannot_be_approved(
    district_app: Flask, district: tuple[Settings, DemoSummary], cli: CliRunner,
) -> None:
    settings, summary = district
    case = summary.cases["transfer"]
    number, born = student_facts(settings, case["pupil_id"])
    neutral_status, neutral_page = apply(district_app, number, born, "anyone@example.org")
    deny(cli, settings, "--email", "risky@example.org")
    status, page = apply(district_app, number, born, "Risky@Example.org")
    assert (status, neutral_status) == (200, 200)
    assert page.replace("\n", "").split("<main")[1] == neutral_page.replace("\n", "").split("<main")[1]
    with portal_session(settings) as session:
        flagged = session.scalars(select(Application.id).where(Application.email == "Risky@Example.org")).one()
    staff = staff_client(district_app, settings, "apps.desk", "staff")[0]
    queue = staff.get("/staff").get_data(as_text=True)
    assert f'id="application-{flagged}"' in queue and "Denied as a security risk" in queue.split(f'id="application-{flagged}"')[1]
    token = csrf(staff, "/staff")
    staff.post(f"/staff/applications/{flagged}/approve/{case['contact_id']}", data={"csrf_token": token})
    result = cli.invoke(main, ["--config", str(settings.config_path), "applications", "approve", str(flagged),
                               "--guardian", str(case["contact_id"])])
    assert result.exit_code != 0 and "denied" in result.output
    with portal_session(settings) as session:
        assert session.get(Application, flagged).status == "pending"  # type: ignore[union-attr]
        assert session.scalars(select(ActivationCode)).first() is None
    listed = json.loads(cli.invoke(main, ["--config", str(settings.config_path), "applications", "list", "--json"]).output)
    assert {a["id"]: a["denied"] for a in listed["applications"]}[flagged] is True


def test_an_application_typed_with_a_denied_guardians_sis_email_is_flagged(district_app: Flask,
                                                                            district: tuple[Settings, DemoSummary],
                                                                            cli: CliRunner) -> None:
    settings, summary = district
    case = summary.cases["transfer"]
    deny(cli, settings, "--guardian", str(case["contact_id"]))  # denied by SIS record only: the denial holds no email
    number, born = student_facts(settings, case["pupil_id"])
    assert apply(district_app, number, born, sis_email(settings, case["contact_id"]))[0] == 200
    listed = json.loads(cli.invoke(main, ["--config", str(settings.config_path), "applications", "list", "--json"]).output)
    assert [a["denied"] for a in listed["applications"]] == [True]


def test_a_denied_guardian_applying_under_a_fresh_address_is_flagged_beside_their_name(
    district_app: Flask, district: tuple[Settings, DemoSummary], cli: CliRunner,
) -> None:
    """Attack review of issue 13, F9: the address typed names nobody, but the SIS guardian the
    application matches is denied; staff see it beside that guardian, with no approve button."""
    settings, summary = district
    case = summary.cases["transfer"]
    deny(cli, settings, "--guardian", str(case["contact_id"]))
    number, born = student_facts(settings, case["pupil_id"])
    assert apply(district_app, number, born, "a.fresh.address@example.org")[0] == 200
    with portal_session(settings) as session:
        application = session.scalars(select(Application.id)).one()
    staff = staff_client(district_app, settings, "apps.desk3", "staff")[0]
    card = staff.get("/staff").get_data(as_text=True).split(f'id="application-{application}"')[1].split("</div>")[0]
    assert "Denied as a security risk" in card
    assert f"/staff/applications/{application}/approve/{case['contact_id']}" not in card
    listed = json.loads(cli.invoke(main, ["--config", str(settings.config_path), "applications", "list", "--json"]).output)
    (entry,) = listed["applications"]
    assert {c["guardian_source_id"]: c["denied"] for c in entry["candidates"]}[str(case["contact_id"])] is True


# --- staff and denials that hold a higher role's account (attack review of issue 13, F3) --------

def test_staff_cannot_lift_an_email_denial_that_covers_an_it_account(district_app: Flask,
                                                                     district: tuple[Settings, DemoSummary]) -> None:
    settings = district[0]
    clerk, _ = staff_client(district_app, settings, "desk.clerk2", "staff")
    keys = load_keys(settings)
    with portal_session(settings) as session:
        it = accounts.create_user(session, settings, username="it.person", password=PASSWORD, role="it",
                                  display_name="IT Person", email="it.person@example.net")
        denial = people.deny(session, FieldCipher(keys.field), keys.blind_index, "compromised", email="it.person@example.net")
        session.commit()
        denial_id = denial.id
        assert denials.is_denied(session, denials.of_user(session, keys.blind_index, it))
    token = csrf(clerk, "/staff/accounts")
    response = clerk.post(f"/staff/denials/{denial_id}/restore", data={"csrf_token": token})
    with portal_session(settings) as session:
        denial_row = session.get(Denial, denial_id)
        assert denial_row is not None
        lifted = denial_row.lifted_at
    assert response.status_code == 404 and lifted is None, "a staff clerk lifted the denial that held an IT account"


def test_the_staff_accounts_page_does_not_show_the_denial_reason_of_a_higher_role(
        district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    """Staff cannot act on an auditor's denial, and do not read its reason either."""
    settings = district[0]
    clerk, _ = staff_client(district_app, settings, "desk.clerk4", "staff")
    keys = load_keys(settings)
    with portal_session(settings) as session:
        accounts.create_user(session, settings, username="audit.person2", password=PASSWORD, role="auditor",
                             display_name="Auditor Person")
        session.commit()
        people.deny(session, FieldCipher(keys.field), keys.blind_index, "reason-for-auditor-XYZ", username="audit.person2")
        session.commit()
    assert "reason-for-auditor-XYZ" not in clerk.get("/staff/accounts").get_data(as_text=True)


# --- a denial while the code step is pending (F5) ------------------------------------------------

def _submit_code(client: FlaskClient, code: str) -> str:
    token = csrf(client, "/login")
    response = client.post("/login/second-factor", data={"csrf_token": token, "code": code})
    return response.headers.get("Location") or response.get_data(as_text=True)


def test_a_staff_account_denied_while_its_code_step_is_pending_gets_no_session(
        district_app: Flask, district: tuple[Settings, DemoSummary], cli: CliRunner) -> None:
    settings = district[0]
    _owner, secret = staff_client(district_app, settings, "soon.denied", "staff")
    attacker = district_app.test_client()
    assert login(attacker, "soon.denied").headers["Location"].startswith("/login/second-factor")
    deny(cli, settings, "--username", "soon.denied")
    where = _submit_code(attacker, totp.code_at(secret, time.time() + totp.STEP))
    next_status = attacker.get("/staff").status_code
    assert where != "/dashboard", ("the code step signed a denied account in (sign-in must be refused); "
                                   f"its next request answered {next_status}")


def test_a_staff_account_denied_by_email_while_its_code_step_is_pending_gets_no_session(
        district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    """A denial by email ends no pending sign-in by itself: the code step asks the one denial rule."""
    settings = district[0]
    _owner, secret = staff_client(district_app, settings, "soon.denied2", "staff")
    with portal_session(settings) as session:
        user = accounts.find_user(session, "soon.denied2")
        assert user is not None
        user.email = "soon.denied2@example.net"
        session.commit()
    attacker = district_app.test_client()
    assert login(attacker, "soon.denied2").headers["Location"].startswith("/login/second-factor")
    keys = load_keys(settings)
    with portal_session(settings) as session:
        people.deny(session, FieldCipher(keys.field), keys.blind_index, "phished", email="Soon.Denied2@example.net")
        session.commit()
    where = _submit_code(attacker, totp.code_at(secret, time.time() + totp.STEP))
    assert where != "/dashboard", "the code step signed in an account denied by its email"
    assert attacker.get("/staff").status_code != 200
