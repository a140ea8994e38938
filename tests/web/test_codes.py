"""Activation codes: issued only for a link the SIS has, one live code per link, redeemed once."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from gateway.cli import main
from gateway.db import create_rw_engine
from gateway.demo.sis import DemoSummary
from gateway.portal import activation
from gateway.portal.models import ActivationCode, TerminationRequest, User
from gateway.replica.tables import StudentGuardian
from gateway.settings import Settings

from .conftest import (PASSWORD, accept_guidelines, activate, csrf, historic_code, issue_code, portal_session,
                       staff_client)

RACERS = 6


def run(cli: CliRunner, settings: Settings, *args: str) -> object:
    return cli.invoke(main, ["--config", str(settings.config_path), *args])


def test_an_issued_code_is_16_characters_in_four_groups_and_redeemable(district: tuple[Settings, DemoSummary],
                                                                      cli: CliRunner) -> None:
    settings, summary = district
    case = summary.cases["transfer"]
    result = run(cli, settings, "codes", "issue", "--student", str(case["pupil_id"]), "--guardian", str(case["contact_id"]),
                 "--json")
    code = json.loads(result.output)["code"]  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", code)
    with portal_session(settings) as session:
        row = activation.check(session, code.lower().replace("0", "o"))  # typed carelessly: still the code
        assert (row.student_source_id, row.guardian_source_id, row.purpose) == (str(case["pupil_id"]),
                                                                                str(case["contact_id"]), "guardian")


def test_no_code_is_issued_for_a_guardian_the_sis_does_not_link_to_the_student(district: tuple[Settings, DemoSummary],
                                                                               cli: CliRunner) -> None:
    settings, summary = district
    student, stranger = summary.cases["siblings"]["pupil_id"], summary.cases["transfer"]["contact_id"]
    result = run(cli, settings, "codes", "issue", "--student", str(student), "--guardian", str(stranger))
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert f"the SIS does not link guardian '{stranger}' to student '{student}'" in result.output  # type: ignore[attr-defined]
    unknown = run(cli, settings, "codes", "issue", "--student", "no-such-pupil")
    assert unknown.exit_code == 2 and "the SIS has no student 'no-such-pupil'" in unknown.output  # type: ignore[attr-defined]
    with portal_session(settings) as session:
        assert session.scalars(select(ActivationCode)).first() is None


@pytest.mark.parametrize(("case", "words"), [("no_portal_access", "no portal access"), ("link_not_in_force", "not in force")])
def test_no_code_is_issued_for_a_link_without_portal_access_or_not_in_force(case: str, words: str,
                                                                            district: tuple[Settings, DemoSummary],
                                                                            cli: CliRunner) -> None:
    settings, summary = district
    info = summary.cases[case]
    result = run(cli, settings, "codes", "issue", "--student", str(info["pupil_id"]), "--guardian", str(info["contact_id"]))
    assert result.exit_code == 2 and words in result.output  # type: ignore[attr-defined]


def test_a_reissued_code_withdraws_the_earlier_live_codes_of_that_link(district_app: Flask,
                                                                       district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    info = summary.cases["transfer"]
    first = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    second = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    other_parent = summary.cases["siblings"]
    untouched = issue_code(settings, "guardian", other_parent["pupil_id"], other_parent["contact_id"])
    assert "withdrawn by the school" in activate(district_app.test_client(), first, "old.letter").get_data(as_text=True)
    assert activate(district_app.test_client(), second, "new.letter").status_code == 302
    assert activate(district_app.test_client(), untouched, "other.link").status_code == 302


def test_an_account_made_from_a_code_is_named_from_the_guardians_record(district_app: Flask,
                                                                        district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    info = summary.cases["transfer"]
    engine = create_rw_engine(settings.connectors[0].options["url"])
    with engine.connect() as connection:
        first, last = connection.execute(text(f"SELECT first_name, last_name FROM contacts WHERE contact_id = {info['contact_id']}")).one()
        pupil_first = connection.execute(text(f"SELECT first_name FROM pupils WHERE pupil_id = {info['pupil_id']}")).scalar_one()
    assert activate(district_app.test_client(), issue_code(settings, "guardian", info["pupil_id"], info["contact_id"]),
                    "named.parent").status_code == 302
    with portal_session(settings) as session:
        user = session.scalars(select(User).where(User.username == "named.parent")).one()
    assert user.display_name == f"{first} {last}" and pupil_first not in user.display_name
    assert (user.role, user.guardian_source_id, user.student_source_id) == ("parent", str(info["contact_id"]), None)
    # A code written before these checks, for a "guardian" the SIS has no record of, makes no account at all.
    stray = historic_code(settings, info["pupil_id"], 999999)  # type: ignore[arg-type]
    response = activate(district_app.test_client(), stray, "named.after.student")
    assert "no longer hold the person this code was written for" in response.get_data(as_text=True)
    with portal_session(settings) as session:
        assert session.scalars(select(User).where(User.username == "named.after.student")).first() is None


def test_a_signed_in_parent_cannot_use_up_a_students_own_code(parent_client: Callable[[str, str], FlaskClient],
                                                              district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    pupil = summary.cases["termination_request"]["pupil_id"]
    parent = parent_client("termination_request", "grabby.parent")
    code = issue_code(settings, "student", pupil, None)
    response = parent.post("/activate", data={"csrf_token": csrf(parent, "/activate"), "code": code})
    assert "only that student can use it" in response.get_data(as_text=True)
    student = district_app.test_client()
    assert activate(student, code, "the.student").status_code == 302  # still the student's to use
    accept_guidelines(student)
    assert student.get(f"/students/sis/{pupil}/schedule").status_code == 200


def test_one_valid_code_does_not_give_an_unthrottled_username_oracle(district_app: Flask,
                                                                     district: tuple[Settings, DemoSummary]) -> None:
    """Before redeeming their own code, a parent could ask /activate about any username: a taken
    name answers 'taken' and rolls the claim back, so the code stays good for the next probe.
    Every refused attempt counts toward the address's limit, so after code_max_attempts the
    probes are refused without a word about the name."""
    settings, summary = district
    staff_client(district_app, settings, "target.admin", "admin")
    info = summary.cases["transfer"]
    code = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    client = district_app.test_client()
    answers = [activate(client, code, "target.admin").get_data(as_text=True)
               for _ in range(settings.security.code_max_attempts + 3)]
    assert "taken" in answers[0]  # the first answer says so, as any refusal of a taken name must
    assert "taken" not in answers[-1], f"probe {len(answers)} still answers whether the name exists"
    assert "Too many codes were tried from here" in answers[-1]
    with portal_session(settings) as session:
        assert session.scalars(select(ActivationCode.used_at)).all() == [None]  # the family's code still works


@pytest.mark.parametrize("change", [{"end_date": dt.date(2026, 1, 31)}, {"portal_access": False}],
                         ids=["link ended", "portal access withdrawn"])
def test_a_code_issued_before_the_link_ended_makes_no_account_and_stays_unused(
        district_app: Flask, district: tuple[Settings, DemoSummary], change: dict[str, object]) -> None:
    """Redeeming applies the rule a code is issued under: the link the SIS has, in force today,
    with portal access. A letter printed before the SIS ended the link opens nothing."""
    settings, summary = district
    info = summary.cases["transfer"]
    code = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    with Session(create_rw_engine(settings.replica.url)) as replica:
        replica.execute(update(StudentGuardian).where(StudentGuardian.student_source_id == str(info["pupil_id"]),
                                                      StudentGuardian.guardian_source_id == str(info["contact_id"]))
                        .values(**change))
        replica.commit()
    response = activate(district_app.test_client(), code, "link.ended")
    assert response.status_code == 400
    assert "no longer give this code&#39;s parent or guardian portal access to the student" in response.get_data(as_text=True)
    with portal_session(settings) as session:
        assert session.scalars(select(User).where(User.username == "link.ended")).first() is None
        assert session.scalars(select(ActivationCode.used_at)).all() == [None]


def test_a_signed_in_parent_cannot_add_a_child_whose_link_ended_after_the_code_was_issued(
        parent_client: Callable[[str, str], FlaskClient], district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    client = parent_client("siblings", "sibling.parent")
    older = summary.cases["siblings_older"]
    code = issue_code(settings, "guardian", older["pupil_id"], older["contact_id"])
    with Session(create_rw_engine(settings.replica.url)) as replica:
        replica.execute(update(StudentGuardian).where(StudentGuardian.student_source_id == str(older["pupil_id"]),
                                                      StudentGuardian.guardian_source_id == str(older["contact_id"]))
                        .values(end_date=dt.date(2026, 1, 31)))
        replica.commit()
    token = csrf(client, "/activate")
    response = client.post("/activate", data={"csrf_token": token, "code": code})
    assert "no longer give this code&#39;s parent or guardian portal access to the student" in response.get_data(as_text=True)
    with portal_session(settings) as session:
        assert session.scalars(select(ActivationCode.used_at).where(
            ActivationCode.student_source_id == str(older["pupil_id"]))).all() == [None]


@pytest.mark.parametrize("where", ["district", "pg_district"])
def test_one_code_redeemed_by_six_parallel_requests_makes_exactly_one_account(where: str, request: pytest.FixtureRequest) -> None:
    from web import create_app

    settings, summary = request.getfixturevalue(where)
    info = summary.cases["transfer"]
    code = issue_code(settings, "guardian", info["pupil_id"], info["contact_id"])
    app = create_app(settings)
    app.config.update(TESTING=True)
    clients = [app.test_client() for _ in range(RACERS)]
    tokens = [csrf(client, "/activate") for client in clients]
    start, statuses = threading.Barrier(RACERS), [0] * RACERS

    def race(number: int) -> None:
        start.wait()
        statuses[number] = clients[number].post("/activate", data={
            "csrf_token": tokens[number], "code": code, "username": f"racer{number}", "password": PASSWORD,
            "responsibilities": "y"}).status_code

    threads = [threading.Thread(target=race, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [302] + [400] * (RACERS - 1)
    with portal_session(settings) as session:
        assert session.scalar(select(func.count()).select_from(User).where(User.guardian_source_id == str(info["contact_id"]))) == 1
        assert session.scalar(select(func.count()).select_from(ActivationCode).where(ActivationCode.used_at.is_not(None))) == 1


def test_a_paper_request_takes_effect_on_its_written_date_never_before_it_is_recorded(district: tuple[Settings, DemoSummary],
                                                                                      cli: CliRunner) -> None:
    settings, summary = district
    pupil = str(summary.cases["termination_request"]["pupil_id"])
    ok = run(cli, settings, "terminations", "record", "--student", pupil, "--recorded", "2026-12-01",
             "--effective", "2026-12-15", "--guardian", "g1", "--json")
    assert json.loads(ok.output)["effective_date"] == "2026-12-15"  # type: ignore[attr-defined]
    early = run(cli, settings, "terminations", "record", "--student", pupil, "--recorded", "2026-12-01",
                "--effective", "2026-11-20")
    assert early.exit_code == 2 and "before the day it is recorded" in early.output  # type: ignore[attr-defined]
    with portal_session(settings) as session:
        request = session.scalars(select(TerminationRequest)).one()
        assert (request.source_system, request.student_source_id) == ("sis", pupil)
        assert (request.channel, request.covers_all, request.effective_date) == ("paper", False, dt.date(2026, 12, 15))
