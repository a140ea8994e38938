"""`gateway demo --no-serve`: a demo district synced, with a login for every role and case."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main


def test_the_demo_prepares_a_district_with_logins_for_every_role_and_case(tmp_path: Path, cli: CliRunner) -> None:
    result = cli.invoke(main, ["demo", "--dir", str(tmp_path / "demo"), "--students", "40", "--no-serve"])
    assert result.exit_code == 0, result.output
    logins = json.loads((tmp_path / "demo" / "demo-logins.json").read_text())
    roles = {login["role"] for login in logins}
    assert roles == {"admin", "staff", "it", "auditor", "parent", "student"}
    cases = {login["case"] for login in logins if login["case"]}
    assert {"turned_18_during_year", "activated_after_18", "turned_18_before_year", "birth_date_unknown", "siblings",
            "split_household", "no_portal_access", "link_not_in_force", "withdrawn", "summer_exit", "transfer",
            "termination_request"} <= cases
    for login in logins:
        assert (login["totp_secret"] is not None) == (login["role"] in ("admin", "staff", "it", "auditor"))
    siblings = next(login for login in logins if login["case"] == "siblings")
    assert len(siblings["students"]) == 2  # one account, both children
    for login in logins:
        assert login["username"] in result.output and login["password"] in result.output
    again = cli.invoke(main, ["demo", "--dir", str(tmp_path / "demo"), "--no-serve"])
    assert again.exit_code == 0 and json.loads((tmp_path / "demo" / "demo-logins.json").read_text()) == logins


def test_a_demo_parent_signs_in_and_sees_their_child(tmp_path: Path, cli: CliRunner) -> None:
    import re

    from gateway.settings import load_settings
    from web import create_app

    cli.invoke(main, ["demo", "--dir", str(tmp_path / "demo"), "--students", "40", "--no-serve"])
    settings = load_settings(tmp_path / "demo" / "gateway.toml", env={})
    login = next(l for l in json.loads((tmp_path / "demo" / "demo-logins.json").read_text()) if l["case"] == "transfer")  # noqa: E741
    client = create_app(settings).test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").get_data(as_text=True))
    assert token is not None
    response = client.post("/login", data={"csrf_token": token.group(1), "username": login["username"], "password": login["password"]})
    assert response.status_code == 302
    assert client.get("/dashboard").headers["Location"].startswith("/guidelines")


def test_a_demo_it_login_reaches_the_it_console_with_its_totp_secret(tmp_path: Path, cli: CliRunner) -> None:
    import re
    import time

    from gateway.security import totp
    from gateway.settings import load_settings
    from web import create_app

    cli.invoke(main, ["demo", "--dir", str(tmp_path / "demo"), "--students", "30", "--no-serve"])
    settings = load_settings(tmp_path / "demo" / "gateway.toml", env={})
    it = next(l for l in json.loads((tmp_path / "demo" / "demo-logins.json").read_text()) if l["role"] == "it")  # noqa: E741
    client = create_app(settings).test_client()

    def token(path: str) -> str:
        found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get(path).get_data(as_text=True))
        assert found is not None
        return found.group(1)

    client.post("/login", data={"csrf_token": token("/login"), "username": it["username"], "password": it["password"]})
    code = totp.code_at(it["totp_secret"], time.time())
    assert client.post("/login/second-factor", data={"csrf_token": token("/login/second-factor"), "code": code}).status_code == 302
    client.post("/guidelines", data={"csrf_token": token("/guidelines"), "accept": "y"})
    assert "IT console" in client.get("/it").get_data(as_text=True)


def test_the_demo_serves_on_its_port_and_its_letters_and_help_page_carry_that_address_and_the_training(
        tmp_path: Path, cli: CliRunner) -> None:
    from gateway.settings import load_settings
    from web import create_app

    folder = tmp_path / "demo"
    result = cli.invoke(main, ["demo", "--dir", str(folder), "--students", "30", "--port", "8123", "--no-serve"])
    assert result.exit_code == 0, result.output
    settings = load_settings(folder / "gateway.toml", env={})
    assert settings.web.public_url == "http://127.0.0.1:8123"
    pupil = next(l for l in json.loads((folder / "demo-logins.json").read_text()) if l["case"] == "transfer")["students"][0]  # noqa: E741
    letters = cli.invoke(main, ["--config", str(folder / "gateway.toml"), "letters", "--student", pupil,
                                "--out", str(tmp_path / "letters"), "--json"])
    assert letters.exit_code == 0, letters.output
    page = Path(json.loads(letters.output)["file"]).read_text()
    assert "Go to http://127.0.0.1:8123/activate" in page
    assert "Parent Portal basics, Library, Riverbend High School" in page
    help_page = create_app(settings).test_client().get("/help").get_data(as_text=True)
    assert "Parent Portal basics" in help_page and "Cafeteria, Riverbend Middle School" in help_page
    again = cli.invoke(main, ["demo", "--dir", str(folder), "--port", "8124", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert load_settings(folder / "gateway.toml", env={}).web.public_url == "http://127.0.0.1:8124"
    assert again.output.count("2 upcoming training session(s)") == 1  # kept, not added again
