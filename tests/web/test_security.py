"""What a security reviewer tries: headers, CSRF, state-changing GETs, redirects, cookies, injection.

Routes are enumerated from the app's URL map, so a route added later is covered without
editing this file; the sample values for each route's arguments are written by hand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, create_engine, select

from gateway.demo.sis import DemoSummary
from gateway.settings import Settings

from .conftest import (
    PASSWORD,
    accept_guidelines,
    activate,
    csrf,
    issue_code,
    login,
    staff_client,
)

# Tables a request may write as bookkeeping: the audit trail itself, session activity,
# throttle counters and the alerts that repeated refusals raise.
BOOKKEEPING = {"audit_log", "user_sessions", "throttles", "alerts"}
INJECTIONS = ["' OR '1'='1' --", "1; DROP TABLE users; --", '"><script>alert(1)</script>', "\x00", "%s%n%x",
              "../../../../etc/passwd", "{{7*7}}", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ١٢٣", "A" * 100_000]
# Query strings get the ones that reach SQL, markup, control characters and sheer size.
QUERY_INJECTIONS = [INJECTIONS[0], INJECTIONS[2], INJECTIONS[3], INJECTIONS[8]]
LEAKS = re.compile(r"Traceback|sqlalchemy|psycopg|sqlite3|OperationalError|ProgrammingError|File \"/", re.IGNORECASE)


def route_args(summary: DemoSummary) -> dict[str, str]:
    """A plausible value for every argument name in the URL map."""
    return {"source_system": "sis", "source_id": str(summary.cases["siblings"]["pupil_id"]), "page": "grades",
            "table": "students", "row_id": "1", "column": "birth_date", "user_id": "1", "action": "unlock",
            "application_id": "1", "guardian": str(summary.cases["siblings"]["contact_id"]), "denial_id": "1",
            "report_id": "1", "session_id": "1", "job_id": "1", "connector": "sis", "run_id": "1",
            "filename": "portal.css"}


def concrete(app: Flask, summary: DemoSummary, method: str) -> Iterator[tuple[str, str]]:
    """(endpoint, URL) for every rule accepting ``method``."""
    values = route_args(summary)
    for rule in app.url_map.iter_rules():
        if method in (rule.methods or ()):
            path = rule.rule
            for name in rule.arguments:
                path = re.sub(rf"<(?:\w+:)?{name}>", values[name], path)
            yield rule.endpoint, path


def snapshot(settings: Settings) -> dict[str, str]:
    """A digest of every portal and replica table but the bookkeeping ones."""
    digests = {}
    for url in (settings.portal.url, settings.replica.url):
        engine = create_engine(url)
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for name, table in metadata.tables.items():
                if name not in BOOKKEEPING:
                    rows = sorted(repr(tuple(row)) for row in connection.execute(select(table)))
                    digests[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        engine.dispose()
    return digests


def sign_in_everyone(app: Flask, settings: Settings, summary: DemoSummary) -> dict[str, FlaskClient]:
    """Anonymous, a parent, an adult student and an admin (who may use every console)."""
    parent = app.test_client()
    case = summary.cases["siblings"]
    activate(parent, issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "sec.parent")
    accept_guidelines(parent)
    student = app.test_client()
    activate(student, issue_code(settings, "student", summary.cases["termination_request"]["pupil_id"], None), "sec.student")
    accept_guidelines(student)
    admin = staff_client(app, settings, "sec.admin", "admin")[0]
    return {"anonymous": app.test_client(), "parent": parent, "student": student, "admin": admin}


@pytest.fixture
def people(district_app: Flask, district: tuple[Settings, DemoSummary]) -> dict[str, FlaskClient]:
    return sign_in_everyone(district_app, *district)


@dataclasses.dataclass
class Site:
    app: Flask
    settings: Settings
    summary: DemoSummary
    people: dict[str, FlaskClient]


@pytest.fixture(params=["sqlite", "postgres"])
def any_site(request: pytest.FixtureRequest) -> Site:
    """The district on SQLite and on PostgreSQL: each database refuses different bad input."""
    from web import create_app

    if request.param == "postgres":
        request.node.add_marker(pytest.mark.postgres)
    settings, summary = request.getfixturevalue("district" if request.param == "sqlite" else "pg_district")
    app = create_app(settings)
    app.config.update(TESTING=True)
    return Site(app, settings, summary, sign_in_everyone(app, settings, summary))


# --- headers ---------------------------------------------------------------------------------

def check_headers(path: str, response: Any, https: bool, who: str = "") -> None:
    path_seen = f"{who} {path}"
    csp = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert "unsafe-inline" not in csp["script-src"] and "unsafe-eval" not in csp["script-src"], path_seen
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'", path_seen
    assert response.headers["X-Content-Type-Options"] == "nosniff", path_seen
    assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer"), path_seen
    if not path.startswith("/static/"):
        assert response.headers["Cache-Control"] == "no-store", path_seen
    assert ("Strict-Transport-Security" in response.headers) is https, path_seen


def test_every_response_of_every_route_carries_the_security_headers(people: dict[str, FlaskClient],
                                                                     district_app: Flask,
                                                                     district: tuple[Settings, DemoSummary]) -> None:
    paths = [path for _, path in concrete(district_app, district[1], "GET")] + ["/no-such-page"]
    for who, client in people.items():
        for path in paths:
            check_headers(path, client.get(path), https=False, who=who)
        for _, path in concrete(district_app, district[1], "POST"):
            check_headers(path, client.post(path), https=False, who=f"{who} POST")  # refused (no token): headers still


def test_over_https_every_response_carries_hsts(district: tuple[Settings, DemoSummary]) -> None:
    from web import create_app

    settings, summary = district
    secure = dataclasses.replace(settings, web=dataclasses.replace(settings.web, public_url="https://portal.example.org"))
    app = create_app(secure)
    client = app.test_client()
    for _, path in concrete(app, summary, "GET"):
        response = client.get(path, base_url="https://portal.example.org")
        check_headers(path, response, https=True)
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


# --- CSRF and state -----------------------------------------------------------------------------

def test_every_state_changing_route_refuses_a_request_without_a_valid_csrf_token(
        people: dict[str, FlaskClient], district_app: Flask, district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    routes = list(concrete(district_app, summary, "POST"))
    assert len(routes) >= 25  # the URL map was read, not an empty list
    foreign = csrf(district_app.test_client(), "/login")  # a valid token, but of another browser's session
    before = snapshot(settings)
    for who, client in people.items():
        for endpoint, path in routes:
            form = {"username": "sec.parent", "password": PASSWORD, "accept": "y", "code": "123456", "body": "x" * 40,
                    "reason": "because", "confirm": "y", "all_parents": "y", "status": "resolved"}
            for token in (None, foreign, "garbage", ""):
                data = form if token is None else {**form, "csrf_token": token}
                response = client.post(path, data=data)
                assert response.status_code == 400, f"{who} {endpoint} {path} token={token!r}"
                assert "This form has expired" in response.get_data(as_text=True)
    assert snapshot(settings) == before


def test_no_get_request_changes_state(any_site: Site) -> None:
    district_app, settings, summary, people = any_site.app, any_site.settings, any_site.summary, any_site.people
    before = snapshot(settings)
    hostile_query = "?lang=es&next=/account&token=x&student=1&user=1&from=2000-01-01&to=2100-01-01&action=unlock&accept=y"
    for client in people.values():
        for _, path in concrete(district_app, summary, "GET"):
            assert client.get(path).status_code < 500, path
            assert client.get(path + hostile_query).status_code < 500, path
    assert snapshot(settings) == before


# --- redirects and cookies ------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example", "\\\\evil.example",
                                    "/\t/evil.example", "/%09/evil.example", " //evil.example", "javascript:alert(1)",
                                    "http:/evil.example", "///evil.example", "https:evil.example", "/\r\n/evil.example"])
def test_next_never_leads_off_the_site(district_app: Flask, district: tuple[Settings, DemoSummary], target: str) -> None:
    settings, summary = district
    case = summary.cases["siblings"]
    activate(district_app.test_client(), issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "nexter")
    client = district_app.test_client()
    token = csrf(client, "/login")
    response = client.post("/login", query_string={"next": target},
                           data={"csrf_token": token, "username": "nexter", "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] in ("/dashboard", "/guidelines?next=%2Fdashboard", "/guidelines")


def test_a_session_cookie_planted_before_sign_in_is_worthless_after_it(district_app: Flask,
                                                                       district: tuple[Settings, DemoSummary]) -> None:
    settings, summary = district
    case = summary.cases["siblings"]
    activate(district_app.test_client(), issue_code(settings, "guardian", case["pupil_id"], case["contact_id"]), "fixated")
    victim = district_app.test_client()
    victim.get("/login")
    planted = victim.get_cookie("session")
    assert planted is not None  # the attacker knows this cookie: they set it in the victim's browser
    assert login(victim, "fixated").status_code == 302
    after = victim.get_cookie("session")
    assert after is not None and after.value != planted.value
    attacker = district_app.test_client()
    attacker.set_cookie("session", planted.value)
    response = attacker.get("/dashboard")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_tampered_or_forged_session_cookie_is_treated_as_no_session(people: dict[str, FlaskClient],
                                                                      district_app: Flask) -> None:
    from itsdangerous import URLSafeTimedSerializer

    cookie = people["parent"].get_cookie("session")
    assert cookie is not None
    payload, _, signature = cookie.value.rpartition(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    forged = URLSafeTimedSerializer("not-the-key", salt="cookie-session").dumps({"_user_id": "1", "sid": "x"})
    for value in (f"{payload}.{flipped}", cookie.value[:-5], forged, "garbage", "." * 3000):
        client = district_app.test_client()
        client.set_cookie("session", value)
        response = client.get("/dashboard")
        assert response.status_code == 302 and response.headers["Location"].startswith("/login"), value[:40]


# --- injection and oversized input ------------------------------------------------------------------

class FormFields(HTMLParser):
    """The names of the fields of every POST form on a page, by form action."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, set[str]] = {}
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and (found.get("method") or "").lower() == "post":
            self._current = found.get("action") or ""
            self.forms.setdefault(self._current, set())
        elif tag in ("input", "textarea", "select") and self._current is not None and found.get("name"):
            self.forms[self._current].add(str(found["name"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def assert_no_fault(response: Any, what: str) -> None:
    assert response.status_code < 500, what
    assert not LEAKS.search(response.get_data(as_text=True)), what


def test_injection_strings_and_oversized_input_in_every_form_field_give_no_fault(any_site: Site) -> None:
    pages = [path for _, path in concrete(any_site.app, any_site.summary, "GET") if not path.startswith("/static")]
    tried = 0
    for who, client in any_site.people.items():
        for path in pages:
            parser = FormFields()
            parser.feed(client.get(path).get_data(as_text=True))
            for action, names in parser.forms.items():
                target = action or path
                if target == "/logout":
                    continue  # ends the session the rest of the loop needs
                for payload in INJECTIONS:
                    token = csrf_from(client, path)
                    data = {name: payload for name in names if name != "csrf_token"} | {"csrf_token": token}
                    assert_no_fault(client.post(target, data=data), f"{who} {target} {payload[:20]!r}")
                    tried += 1
    assert tried > 200


def csrf_from(client: FlaskClient, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    return match.group(1) if match else ""


def test_injection_strings_in_every_query_parameter_and_path_segment_give_no_fault(any_site: Site) -> None:
    parameters = ("student", "user", "from", "to", "next", "lang", "token", "page", "q", "school", "grade")
    for who, client in any_site.people.items():
        for payload in QUERY_INJECTIONS if who != "student" else QUERY_INJECTIONS[-1:]:  # the student's pages are the parent's
            for _, path in concrete(any_site.app, any_site.summary, "GET"):
                response = client.get(path, query_string={name: payload for name in parameters})
                assert_no_fault(response, f"{who} {path} {payload[:20]!r}")
            for path in (f"/students/sis/{payload}/grades", f"/students/{payload}/1/schedule", f"/audit/replica/{payload}",
                         f"/it/runs/{payload}"):
                assert_no_fault(client.get(path), f"{who} {path[:60]!r}")


def test_a_request_body_over_the_limit_is_refused_with_a_clear_page(district_app: Flask) -> None:
    client = district_app.test_client()
    token = csrf(client, "/apply")
    response = client.post("/apply", data={"csrf_token": token, "given_name": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert "What you sent is too large" in response.get_data(as_text=True)
