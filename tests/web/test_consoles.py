"""Consoles: roles enforced on every route, a second factor for staff roles, auditors change nothing."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from gateway.security import totp
from gateway.demo.sis import DemoSummary
from gateway.portal.models import PortalBase
from gateway.settings import Settings

from .conftest import PASSWORD, csrf, login, portal_session, staff_client

CONSOLES = {  # every console page and the role it belongs to (admin sees all of them)
    "/it": ("it",), "/it/jobs": ("it",), "/it/runs/1": ("it", "auditor"),
    "/audit": ("auditor",), "/audit/access-log": ("auditor",), "/audit/access-log.csv": ("auditor",),
    "/audit/replica": ("auditor",), "/audit/replica/students": ("auditor",), "/audit/sanitization": ("auditor",),
    "/audit/sync-history": ("auditor",),
    "/staff": ("staff",), "/staff/letters": ("staff",), "/staff/accounts": ("staff",), "/staff/training": ("staff",),
    "/staff/guidelines": ("staff",), "/staff/terminations": ("staff",), "/admin": (),
}


def test_each_console_admits_its_role_and_admin_and_hides_from_everyone_else(
    district_app: Flask, district: tuple[Settings, DemoSummary], parent_client: Callable[[str, str], FlaskClient]
) -> None:
    settings = district[0]
    clients = {role: staff_client(district_app, settings, f"demo-{role}", role)[0] for role in ("staff", "it", "auditor", "admin")}
    clients["parent"] = parent_client("siblings", "console.parent")
    for path, owner in CONSOLES.items():
        for role, client in clients.items():
            expected = 200 if role in (*owner, "admin") else 404
            assert client.get(path).status_code == expected, f"{role} on {path}"
        anonymous = district_app.test_client().get(path)
        assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")


def test_console_actions_need_the_role_and_a_csrf_token(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings = district[0]
    it, _ = staff_client(district_app, settings, "it.person", "it")
    auditor, _ = staff_client(district_app, settings, "audit.person", "auditor")
    assert it.post("/it/run-now/sis").status_code == 400  # no token
    token = csrf(it, "/it")
    assert it.post("/it/run-now/sis", data={"csrf_token": token}).status_code == 302
    assert auditor.post("/it/run-now/sis", data={"csrf_token": csrf(auditor, "/audit")}).status_code == 404
    with portal_session(settings) as session:
        assert session.execute(text("SELECT connector, requested_by FROM sync_run_requests")).all() == [("sis", "web:it.person")]


def test_a_password_alone_never_opens_a_console(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    staff_client(district_app, district[0], "half.way", "staff")
    client = district_app.test_client()
    assert login(client, "half.way").headers["Location"].startswith("/login/second-factor")
    assert client.get("/staff").headers["Location"].startswith("/login")  # no session until the code


def second_step(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    login(client, username)
    return client


def submit_code(client: FlaskClient, code: str) -> str:
    token = csrf(client, "/login/second-factor")
    response = client.post("/login/second-factor", data={"csrf_token": token, "code": code})
    return response.headers.get("Location") or response.get_data(as_text=True)


def test_a_wrong_code_and_a_replayed_code_are_refused(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    _, secret = staff_client(district_app, district[0], "totp.user", "staff")
    now = time.time()
    assert "not right" in submit_code(second_step(district_app, "totp.user"), "000000" if totp.code_at(secret, now) != "000000" else "111111")
    # Enrolment used the current step's code: the same code again is a replay.
    assert "not right" in submit_code(second_step(district_app, "totp.user"), totp.code_at(secret, now))
    later = totp.code_at(secret, now + totp.STEP)  # next step, accepted once within the window
    assert submit_code(second_step(district_app, "totp.user"), later) == "/dashboard"
    assert "not right" in submit_code(second_step(district_app, "totp.user"), later)


def test_recovery_codes_each_work_once(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings = district[0]
    client = district_app.test_client()
    with portal_session(settings) as session:
        from gateway.portal.accounts import create_user

        create_user(session, settings, username="lost.phone", password=PASSWORD, role="auditor", display_name="A")
        session.commit()
    login(client, "lost.phone")
    secret = re.search(r"<code>([A-Z2-7]+)</code>", client.get("/login/second-factor").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    page = submit_code(client, totp.code_at(secret, time.time()))
    codes = re.findall(r"<li><code>([0-9a-f]{8}-[0-9a-f]{8})</code></li>", page)
    assert len(codes) == 10
    assert submit_code(second_step(district_app, "lost.phone"), codes[0]) == "/dashboard"
    assert "not right" in submit_code(second_step(district_app, "lost.phone"), codes[0])
    assert submit_code(second_step(district_app, "lost.phone"), codes[1].upper()) == "/dashboard"


def test_wrong_codes_count_toward_the_lockout(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    staff_client(district_app, district[0], "guesser", "it")
    client = second_step(district_app, "guesser")
    for guess in range(5):
        submit_code(client, f"{guess:06d}")
    assert "Too many attempts" in login(district_app.test_client(), "guesser").get_data(as_text=True)


def portal_fingerprint(settings: Settings) -> dict[str, str]:
    """A hash of every portal table but the audit trail and session bookkeeping."""
    skipped = {"audit_log", "user_sessions", "throttles"}
    result = {}
    with portal_session(settings) as session:
        for table in PortalBase.metadata.sorted_tables:
            if table.name not in skipped:
                rows = session.execute(select(table).order_by(*table.primary_key.columns)).all()
                result[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return result


def test_an_auditors_session_changes_nothing_but_its_own_audit_entries(district_app: Flask,
                                                                       district: tuple[Settings, DemoSummary]) -> None:
    settings = district[0]
    auditor, _ = staff_client(district_app, settings, "the.auditor", "auditor")
    before = portal_fingerprint(settings)
    with portal_session(settings) as session:
        entries_before = session.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    for path in ("/audit", "/audit/access-log", "/audit/access-log?student=1", "/audit/access-log.csv", "/audit/replica",
                 "/audit/replica/guardians", "/audit/replica/students?page=2", "/audit/sanitization", "/audit/sync-history",
                 "/it/runs/1", "/it", "/staff", "/dashboard", "/account"):
        assert auditor.get(path).status_code in (200, 404)
    assert portal_fingerprint(settings) == before
    with portal_session(settings) as session:
        new = session.execute(text(f"SELECT action FROM audit_log WHERE id > {entries_before}")).scalars().all()
    assert new and set(new) <= {"auditor.view", "auditor.export", "console.refused"}


@pytest.mark.parametrize("path", ["/audit", "/audit/access-log"])
def test_every_auditor_page_view_is_audited(district_app: Flask, district: tuple[Settings, DemoSummary], path: str) -> None:
    auditor, _ = staff_client(district_app, district[0], "viewer", "auditor")
    with portal_session(district[0]) as session:
        before = session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'auditor.view'")).scalar_one()
    auditor.get(path)
    with portal_session(district[0]) as session:
        assert session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'auditor.view'")).scalar_one() == before + 1


def test_the_replica_browser_shows_lineage_and_masks_encrypted_values(district_app: Flask,
                                                                      district: tuple[Settings, DemoSummary]) -> None:
    auditor, _ = staff_client(district_app, district[0], "browser", "auditor")
    page = auditor.get("/audit/replica/guardians").get_data(as_text=True)
    headers = re.findall(r'<th scope="col"[^>]*>([^<]+)</th>', page)
    # Lineage comes first, right after the id, so a wide table never hides where a row came from.
    assert headers[:6] == ["id", "source_system", "source_id", "row_hash", "synced_at", "sync_run_id"]
    assert "email" in headers[6:] and 'role="region"' in page  # the rest scroll inside their own region
    assert "@example.net" not in page and "••••" in page  # emails are encrypted: masked
    assert auditor.get("/audit/replica/not_a_table").status_code == 404
    for junk in ("abc", "-5", "99999999999999999999", "1' OR '1'='1"):
        assert auditor.get(f"/audit/replica/guardians?page={junk}").status_code == 200


def test_revealing_an_encrypted_value_is_a_separate_audited_action(district_app: Flask,
                                                                  district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    auditor, _ = staff_client(district_app, settings, "revealer", "auditor")
    page = auditor.get(f"/audit/replica/guardians?source_id={summary.cases['transfer']['contact_id']}").get_data(as_text=True)
    action = re.search(r'action="(/audit/replica/guardians/\d+/reveal/email)"', page)
    assert action is not None
    assert auditor.get(action.group(1)).status_code == 405  # never by GET
    response = auditor.post(action.group(1), data={"csrf_token": csrf(auditor, "/audit/replica/guardians")})
    assert "@example.net" in response.get_data(as_text=True)
    with portal_session(settings) as session:
        detail = session.execute(text("SELECT detail FROM audit_log WHERE action = 'auditor.reveal'")).scalar_one()
    assert "email" in str(detail) and str(summary.cases["transfer"]["contact_id"]) in str(detail)
    plain = re.search(r'action="(/audit/replica/guardians/\d+)/reveal/email"', page).group(1) + "/reveal/given_name"  # type: ignore[union-attr]
    assert auditor.post(plain, data={"csrf_token": csrf(auditor, "/audit/replica/guardians")}).status_code == 404


def test_the_sanitization_report_lists_every_column_and_unmapped_source_fields(district_app: Flask,
                                                                               district: tuple[Settings, DemoSummary]) -> None:
    auditor, _ = staff_client(district_app, district[0], "sanitizer", "auditor")
    page = auditor.get("/audit/sanitization").get_data(as_text=True)
    assert "<td>students</td><td>birth_date</td><td>encrypted</td>" in page
    assert "<td>guardians</td><td>email_index</td><td>blind_index</td>" in page
    assert "pupils.ssn" in page and "900-" not in page  # the field's name, never its values


def test_it_adds_pauses_resumes_and_removes_jobs_from_the_console(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    it, _ = staff_client(district_app, district[0], "jobs.it", "it")
    bad = it.post("/it/jobs", data={"csrf_token": csrf(it, "/it/jobs"), "connector": "sis", "schedule": "often"})
    assert "is not a duration" in bad.get_data(as_text=True)
    assert it.post("/it/jobs", data={"csrf_token": csrf(it, "/it/jobs"), "connector": "sis", "schedule": "15m"}).status_code == 302
    with portal_session(district[0]) as session:
        rows = session.execute(text("SELECT id, expression, paused FROM sync_jobs ORDER BY id")).all()
    assert [(r.expression, r.paused) for r in rows] == [("15m", False), ("30 2 * * *", False)]  # and the nightly full run
    first = rows[0].id
    it.post(f"/it/jobs/{first}/pause", data={"csrf_token": csrf(it, "/it/jobs")})
    with portal_session(district[0]) as session:
        assert session.execute(text(f"SELECT paused FROM sync_jobs WHERE id = {first}")).scalar_one() in (True, 1)
    it.post(f"/it/jobs/{first}/remove", data={"csrf_token": csrf(it, "/it/jobs"), "confirm": "yes"})
    with portal_session(district[0]) as session:
        assert session.execute(text("SELECT count(*) FROM sync_jobs")).scalar_one() == 1


def test_a_runs_page_shows_counts_per_table_and_its_rejects(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    it, _ = staff_client(district_app, district[0], "runs.it", "it")
    page = it.get("/it/runs/1").get_data(as_text=True)
    assert "<td>students</td><td>40</td>" in page and "Records set aside" in page
    assert it.get("/it/runs/999").status_code == 404


def test_the_run_list_and_run_page_show_the_runs_warnings(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    it, _ = staff_client(district_app, district[0], "warned.it", "it")
    page = it.get("/it/runs/1").get_data(as_text=True)
    # The demo district has students whose SIS sends no birth date, refused under the default policy.
    assert "<h2>Warnings about the source</h2>" in page and "<li>students without birth date: students: " in page
    home = it.get("/it").get_data(as_text=True)
    assert '<th scope="col">Warnings about the source</th>' in home


def test_the_access_log_filters_and_exports_csv(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                parent_client: Callable[[str, str], FlaskClient]) -> None:
    summary = district[1]
    parent = parent_client("siblings", "logged.parent")
    pupil = summary.cases["siblings"]["pupil_id"]
    parent.get(f"/students/sis/{pupil}/grades")
    parent.get(f"/students/sis/{summary.cases['transfer']['pupil_id']}/grades")  # refused
    auditor, _ = staff_client(district_app, district[0], "csv.auditor", "auditor")
    page = auditor.get(f"/audit/access-log?student={pupil}").get_data(as_text=True)
    assert page.count("<td>viewed</td>") == 1 and "<td>refused</td>" not in page
    export = auditor.get(f"/audit/access-log.csv?student={pupil}")
    assert export.mimetype == "text/csv"
    lines = export.get_data(as_text=True).strip().splitlines()
    assert lines[0].startswith("at,user_id,username,role,action") and len(lines) == 2
    assert ",logged.parent,parent,record.view," in lines[1]
    assert auditor.get("/audit/access-log?user=logged.parent").get_data(as_text=True).count("logged.parent (#") == 2
    assert "<td>refused</td>" in auditor.get("/audit/access-log?from=2000-01-01&to=2100-01-01").get_data(as_text=True)
    assert "<td>viewed</td>" not in auditor.get("/audit/access-log?to=2000-01-01").get_data(as_text=True)


def test_an_admin_adds_a_staff_account_that_enrols_its_own_second_factor(district_app: Flask,
                                                                         district: tuple[Settings, DemoSummary]) -> None:
    admin, _ = staff_client(district_app, district[0], "the.admin", "admin")
    data = {"csrf_token": csrf(admin, "/admin"), "username": "new.clerk", "display_name": "New Clerk", "role": "staff",
            "password": "maple syrup drips on blue tiles"}
    assert admin.post("/admin", data=data).status_code == 302
    client = district_app.test_client()
    assert login(client, "new.clerk", "maple syrup drips on blue tiles").headers["Location"].startswith("/login/second-factor")
    assert "Set up your second factor" in client.get("/login/second-factor").get_data(as_text=True)
    page = admin.get("/admin").get_data(as_text=True)
    disable = re.search(r'action="(/admin/accounts/\d+/disable)"', page)
    assert disable is not None
    admin.post(disable.group(1), data={"csrf_token": csrf(admin, "/admin")})
    assert "disabled" in admin.get("/admin").get_data(as_text=True)


def test_staff_reject_an_application_with_a_reason(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    import datetime as dt

    from gateway.portal import applications
    from gateway.security.crypto import FieldCipher
    from gateway.security.keys import load_keyring
    from gateway.portal.models import Application

    settings = district[0]
    with portal_session(settings) as session:
        row = applications.submit(session, settings, FieldCipher(load_keyring(settings, "field")), load_keyring(settings, "blind_index"),
                                  "10.1.1.1", given_name="Pat", family_name="Nobody", email="pat@example.org",
                                  relationship="parent", student_number="000", birth_date=dt.date(2015, 1, 1))
        session.commit()
        application_id = row.id
    staff, _ = staff_client(district_app, settings, "rejecter", "staff")
    token = csrf(staff, "/staff")
    assert staff.post(f"/staff/applications/{application_id}/reject", data={"csrf_token": token}).status_code == 400
    assert staff.post(f"/staff/applications/{application_id}/reject",
                      data={"csrf_token": token, "reason": "No such student"}).status_code == 302
    with portal_session(settings) as session:
        application = session.get(Application, application_id)
        assert application is not None and (application.status, application.decision_reason) == ("rejected", "No such student")


def test_the_it_console_shows_a_runs_warning(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    from gateway.db import create_rw_engine

    engine = create_rw_engine(district[0].replica.url)
    with engine.begin() as connection:  # a run's warning as the sync engine stores it
        connection.execute(text("UPDATE sync_runs SET unmapped_fields = :fields WHERE id = 1"),
                           {"fields": '{"_warnings": {"connector sis: the SIS login can write": 1}}'})
    engine.dispose()
    it, _ = staff_client(district_app, district[0], "warned.it", "it")
    assert "Warning: connector sis: the SIS login can write" in it.get("/it").get_data(as_text=True)


def test_removing_a_job_asks_first_and_only_the_confirmation_removes_it(district_app: Flask,
                                                                         district: tuple[Settings, DemoSummary]) -> None:
    it, _ = staff_client(district_app, district[0], "careful.it", "it")
    it.post("/it/jobs", data={"csrf_token": csrf(it, "/it/jobs"), "connector": "sis", "schedule": "2h"})
    with portal_session(district[0]) as session:
        first = session.execute(text("SELECT min(id) FROM sync_jobs")).scalar_one()
    assert f'href="/it/jobs/{first}/remove"' in it.get("/it/jobs").get_data(as_text=True)  # a link, no script needed
    unconfirmed = it.post(f"/it/jobs/{first}/remove", data={"csrf_token": csrf(it, "/it/jobs")})
    assert unconfirmed.status_code == 303 and unconfirmed.headers["Location"] == f"/it/jobs/{first}/remove"
    page = it.get(f"/it/jobs/{first}/remove").get_data(as_text=True)
    assert f"Remove job {first}?" in page and "runs sis on interval 2h (incremental runs)" in page
    assert 'name="confirm" type="hidden" value="yes"' in page or 'type="hidden" name="confirm" value="yes"' in page
    assert it.post(f"/it/jobs/{first}/remove", data={"confirm": "yes"}).status_code == 400  # no CSRF token
    with portal_session(district[0]) as session:
        assert session.execute(text("SELECT count(*) FROM sync_jobs")).scalar_one() == 2  # the job and its nightly run
    done = it.post(f"/it/jobs/{first}/remove", data={"csrf_token": csrf(it, f"/it/jobs/{first}/remove"), "confirm": "yes"},
                   follow_redirects=True)
    assert f"Job {first} removed" in done.get_data(as_text=True)
    with portal_session(district[0]) as session:
        assert session.execute(text(f"SELECT count(*) FROM sync_jobs WHERE id = {first}")).scalar_one() == 0
    assert it.get(f"/it/jobs/{first}/remove").status_code == 404


@pytest.mark.parametrize(("schedule", "lang", "expected"), [
    ("61 * * * *", "en", "“61 * * * *” is not a crontab schedule: write five fields (minute, hour, day of month"),
    ("61 * * * *", "es", "«61 * * * *» no es una programación crontab"),
    ("often", "en", "“often” is not a duration or a crontab schedule: write a duration such as 15m"),
    ("1m", "en", "“1m” would run every 1 minute; runs of a job must be at least 5 minutes apart."),
    ("*/2 * * * *", "en", "“*/2 * * * *” would run every 2 minutes; runs of a job must be at least 5 minutes apart."),
    ("1m", "es", "«1m» se ejecutaría cada 1 minuto; las ejecuciones de un trabajo deben estar separadas al menos 5 minutos."),
])
def test_a_refused_schedule_is_explained_in_the_consoles_terms(district_app: Flask, district: tuple[Settings, DemoSummary],
                                                                schedule: str, lang: str, expected: str) -> None:
    it, _ = staff_client(district_app, district[0], "typo.it", "it")
    token = csrf(it, f"/it/jobs?lang={lang}")
    page = it.post("/it/jobs", data={"csrf_token": token, "connector": "sis", "schedule": schedule}).get_data(as_text=True)
    assert expected in page.replace("&#34;", '"')
    for parser_words in ("Error validating", "maximum value", "--cron", "--every", "min_interval_seconds"):
        assert parser_words not in page
    with portal_session(district[0]) as session:
        assert session.execute(text("SELECT count(*) FROM sync_jobs")).scalar_one() == 0


def test_an_identical_job_is_refused_and_a_different_kind_of_run_is_not(district_app: Flask,
                                                                          district: tuple[Settings, DemoSummary]) -> None:
    it, _ = staff_client(district_app, district[0], "twice.it", "it")
    form = {"connector": "sis", "schedule": "15m"}
    assert it.post("/it/jobs", data={"csrf_token": csrf(it, "/it/jobs"), **form}).status_code == 302
    again = it.post("/it/jobs", data={"csrf_token": csrf(it, "/it/jobs"), "connector": "sis", "schedule": "15 m"})
    assert "already runs sis on this schedule the same way" in again.get_data(as_text=True)
    assert it.post("/it/jobs", data={"csrf_token": csrf(it, "/it/jobs"), **form, "full": "y"}).status_code == 302
    with portal_session(district[0]) as session:
        rows = session.execute(text("SELECT expression, full FROM sync_jobs ORDER BY id")).all()
    assert [(r.expression, bool(r.full)) for r in rows] == [("15m", False), ("30 2 * * *", True), ("15m", True)]


def test_the_it_console_says_whether_a_scheduler_is_alive_and_when_it_last_looked(
    district_app: Flask, district: tuple[Settings, DemoSummary]
) -> None:
    import datetime as dt

    from gateway.portal import heartbeat
    from gateway.portal.models import SchedulerHeartbeat

    settings = district[0]
    it, _ = staff_client(district_app, settings, "watching.it", "it")
    assert "Not running: no scheduler has started yet." in it.get("/it").get_data(as_text=True)
    with portal_session(settings) as session:
        heartbeat.started(session, "host-a:4242:abcdef")
        session.execute(text("UPDATE scheduler_heartbeats SET last_poll_at = :at"),
                        {"at": dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)})
        session.commit()
        looked = session.get(SchedulerHeartbeat, "host-a:4242:abcdef").last_poll_at  # type: ignore[union-attr]
    chicago = looked.astimezone(dt.timezone(dt.timedelta(hours=-6)))  # Chicago in December: UTC-6
    page = it.get("/it").get_data(as_text=True)
    assert f"Running: the scheduler last looked for work at {chicago:%Y-%m-%d %H:%M:%S}." in page
    with portal_session(settings) as session:  # a scheduler silent for ten minutes is not alive
        session.execute(text("UPDATE scheduler_heartbeats SET last_poll_at = :at"),
                        {"at": dt.datetime(2026, 12, 1, 14, 0, 0, tzinfo=dt.timezone.utc)})
        session.commit()
    assert "Not running: no scheduler has looked for work since 2026-12-01 08:00:00." in it.get("/it").get_data(as_text=True)
    with portal_session(settings) as session:
        heartbeat.stopped(session, "host-a:4242:abcdef")
    assert "Stopped: the scheduler stopped at" in it.get("/it").get_data(as_text=True)


def test_the_it_console_shows_next_run_times_from_the_job_rows(district_app: Flask,
                                                               district: tuple[Settings, DemoSummary]) -> None:
    import datetime as dt

    from gateway.portal import jobs

    settings = district[0]
    it, _ = staff_client(district_app, settings, "planning.it", "it")
    it.post("/it/jobs", data={"csrf_token": csrf(it, "/it/jobs"), "connector": "sis", "schedule": "6h"})
    with portal_session(settings) as session:
        first, nightly = session.execute(text("SELECT id FROM sync_jobs ORDER BY id")).scalars().all()
        jobs.record_next_runs(session, {first: dt.datetime(2026, 12, 2, 14, 30, tzinfo=dt.timezone.utc), nightly: None})
        session.execute(text("DROP TABLE IF EXISTS apscheduler_jobs"))  # the page needs nothing of the scheduler's store
        session.commit()
    page = it.get("/it").get_data(as_text=True)
    assert f"<td>{first}</td><td>sis</td><td>interval 6h</td><td>incremental</td><td>active</td><td>2026-12-02 08:30</td>" in page
    assert f"<td>{nightly}</td><td>sis</td><td>cron 30 2 * * *</td><td>full</td><td>active</td><td></td>" in page


def test_run_now_for_an_unknown_connector_is_not_found(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    it, _ = staff_client(district_app, district[0], "unknown.it", "it")
    token = csrf(it, "/it")
    assert it.post("/it/run-now/no-such-connector", data={"csrf_token": token}).status_code == 404
    for action in ("pause", "resume", "remove"):
        assert it.post(f"/it/jobs/987654/{action}", data={"csrf_token": token}).status_code == 404
    assert it.post("/it/jobs/987654/remove", data={"csrf_token": token, "confirm": "yes"}).status_code == 404
    with portal_session(district[0]) as session:
        assert session.execute(text("SELECT count(*) FROM sync_run_requests")).scalar_one() == 0


def test_the_access_log_shows_source_system_and_refusal_reason_and_its_csv_cannot_carry_a_formula(
    district_app: Flask, district: tuple[Settings, DemoSummary], parent_client: Callable[[str, str], FlaskClient]
) -> None:
    import csv
    import io

    from gateway.db import create_rw_engine
    from gateway.security import audit
    from gateway.security.keys import load_keyring

    settings, summary = district
    parent = parent_client("siblings", "formula.parent")
    parent.get(f"/students/sis/{summary.cases['siblings']['pupil_id']}/grades")
    parent.get(f"/students/sis/{summary.cases['transfer']['pupil_id']}/grades")  # refused: not their child
    # Values as a source or a URL could bring them (a URL cannot carry a tab or a CR: appended directly).
    engine, ring = create_rw_engine(settings.portal.url), load_keyring(settings, "audit")
    for hostile in ("=HYPERLINK(\"http://evil\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        audit.append(engine, ring, settings.audit.checkpoint_file, audit.Event(
            "record.refused", actor_user_id=1, actor_role="parent", source_system="sis", student_source_id=hostile,
            detail={"page": "grades", "reason": "no_portal_access"}))
    auditor, _ = staff_client(district_app, settings, "formula.auditor", "auditor")
    page = auditor.get("/audit/access-log").get_data(as_text=True)
    assert "<th scope=\"col\">Source system</th>" in page and "<th scope=\"col\">Reason</th>" in page
    assert "<td>sis</td>" in page and "<td>no_portal_access</td>" in page
    rows = list(csv.DictReader(io.StringIO(auditor.get("/audit/access-log.csv").get_data(as_text=True))))
    assert {row["source_system"] for row in rows} == {"sis"}
    assert {row["reason"] for row in rows if row["action"] == "record.view"} == {""}
    assert {row["reason"] for row in rows if row["action"] == "record.refused"} == {"no_portal_access"}
    assert {"'=HYPERLINK(\"http://evil\")", "'+1+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx"} <= {row["student_source_id"] for row in rows}
    assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for row in rows for cell in row.values() if cell)


def test_the_access_log_leaves_out_a_row_outside_the_chain(district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    import sqlite3

    settings = district[0]
    auditor, _ = staff_client(district_app, settings, "chain.auditor", "auditor")
    # What someone who may write the SQLite file can do: step around the CHECK and the trigger.
    connection = sqlite3.connect(settings.instance_dir / "portal.sqlite3")
    connection.execute("PRAGMA ignore_check_constraints = ON")
    connection.execute("DROP TRIGGER IF EXISTS audit_log_appends_at_the_head")
    connection.execute("INSERT INTO audit_log (id, at, action, actor_user_id, student_source_id, detail, key_id, prev_hash, "
                       "entry_hash) VALUES (0, '2026-11-28 12:00:00', 'record.view', 1, 'forged-pupil', '{}', 'k', 'p', 'h')")
    connection.commit()
    connection.close()
    assert "forged-pupil" not in auditor.get("/audit/access-log").get_data(as_text=True)
    assert "forged-pupil" not in auditor.get("/audit/access-log.csv").get_data(as_text=True)
    assert "entry 0 is outside the chain" in auditor.get("/audit").get_data(as_text=True)


def test_a_failed_runs_error_names_table_source_id_and_cause_but_never_the_rows_values(
    district_app: Flask, district: tuple[Settings, DemoSummary], cli: CliRunner
) -> None:
    import sqlite3
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from gateway.cli import main
    from gateway.db import create_rw_engine

    settings = district[0]
    value = "Zebediah-Quillfeather"
    replica = create_rw_engine(settings.replica.url)
    with replica.begin() as connection:
        connection.execute(text(f"CREATE UNIQUE INDEX one_zebediah ON students (given_name) WHERE given_name = '{value}'"))
    replica.dispose()
    source = Path(make_url(settings.connectors[0].options["url"]).database or "")
    with sqlite3.connect(source) as db:
        db.execute(f"UPDATE pupils SET first_name = '{value}', updated_at = '2026-11-28 12:00:00' WHERE pupil_id IN (1, 2)")
    result = cli.invoke(main, ["--config", str(settings.config_path), "sync", "run", "sis", "--full"])
    assert result.exit_code != 0 and value not in result.output
    assert "could not write students source id 2" in result.output
    it, _ = staff_client(district_app, settings, "errors.it", "it")
    auditor, _ = staff_client(district_app, settings, "errors.auditor", "auditor")
    run_id = 2  # the district's first sync is run 1
    for client, path in ((it, "/it"), (it, f"/it/runs/{run_id}"), (auditor, "/audit/sync-history"), (auditor, f"/it/runs/{run_id}")):
        page = client.get(path).get_data(as_text=True)
        assert "could not write students source id 2" in page, path
        assert value not in page, path
