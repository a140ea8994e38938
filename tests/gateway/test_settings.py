"""Settings: one TOML file, GATEWAY_* overrides, validated once into frozen values."""

from __future__ import annotations

import dataclasses
import datetime as dt
from importlib.resources import files
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults_put_both_databases_in_the_instance_dir(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[instance]\ndir = "inst"\n'), env={})
    assert settings.instance_dir == tmp_path / "inst"
    assert settings.replica.url == f"sqlite:///{tmp_path / 'inst' / 'replica.sqlite3'}"
    assert settings.portal.url == f"sqlite:///{tmp_path / 'inst' / 'portal.sqlite3'}"
    assert settings.policy.school_year_start == "07-01"
    assert settings.sync.shrink_max_share == 0.2
    assert settings.web.idle_timeout_minutes == 20


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.web.workers = 9  # type: ignore[misc]


def test_environment_overrides_the_file_with_typed_values(tmp_path: Path) -> None:
    path = write(tmp_path, "[web]\nworkers = 2\n")
    env = {"GATEWAY_WEB_WORKERS": "8", "GATEWAY_MAIL_SMTP_STARTTLS": "false",
           "GATEWAY_ALERTS_IT_RECIPIENTS": "a@x.org, b@x.org", "GATEWAY_SYNC_SHRINK_MAX_SHARE": "0.5"}
    settings = load_settings(path, env=env)
    assert settings.web.workers == 8
    assert settings.mail.smtp_starttls is False
    assert settings.alerts.it_recipients == ("a@x.org", "b@x.org")
    assert settings.sync.shrink_max_share == 0.5


def test_config_path_may_come_from_gateway_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[district]\nname = "North District"\n')
    assert load_settings(env={"GATEWAY_CONFIG": str(path)}).district.name == "North District"


@pytest.mark.parametrize(
    ("body", "env", "key"),
    [
        ("[web]\nworkerz = 3\n", {}, "web.workerz"),
        ("[webb]\nworkers = 3\n", {}, "webb"),
        ("", {"GATEWAY_WEB_WORKERZ": "3"}, "GATEWAY_WEB_WORKERZ"),
        ("[web]\nworkers = 0\n", {}, "web.workers"),
        ("[web]\nworkers = 'many'\n", {}, "web.workers"),
        ("[replica]\nurl = 'not a url'\n", {}, "replica.url"),
        ("[portal]\nurl = 'mysql://x@y/z'\n", {}, "portal.url"),
        ("[district]\ntimezone = 'Mars/Olympus'\n", {}, "district.timezone"),
        ("[policy]\nschool_year_start = '02-30'\n", {}, "policy.school_year_start"),
        ("[policy]\nunknown_birth_date = 'allow'\n", {}, "policy.unknown_birth_date"),
        ("[[connectors]]\nkind = 'sql'\n", {}, "connectors[1].name"),
    ],
)
def test_a_bad_key_or_value_is_refused_naming_the_key(tmp_path: Path, body: str, env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, body), env=env)
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_today_is_refused_in_production_and_honoured_in_test_instances(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy.today"):
        load_settings(write(tmp_path, '[policy]\ntoday = "2026-11-28"\n'), env={})
    settings = load_settings(write(tmp_path, '[instance]\nkind = "test"\n[policy]\ntoday = 2026-11-28\n'), env={})
    assert settings.policy.today == dt.date(2026, 11, 28)


def test_a_password_typed_into_a_malformed_url_is_not_repeated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "[replica]\nurl = 'postgresql+psycopg://u:hunter2@h:notaport/db'\n"), env={})
    assert "hunter2" not in str(caught.value)


def test_a_mysql_url_is_a_source_url_and_not_a_replica_or_portal_url(tmp_path: Path) -> None:
    from gateway.settings import SOURCE_DRIVERS, check_database_url

    source = check_database_url("connectors.sis.url", "mysql+pymysql://reader@sis-db:3306/opensis", SOURCE_DRIVERS)
    assert (source.get_backend_name(), source.database) == ("mysql", "opensis")
    for section in ("replica", "portal"):
        with pytest.raises(ConfigError) as caught:
            load_settings(write(tmp_path, f"[{section}]\nurl = 'mysql+pymysql://gw@db:3306/{section}'\n"), env={})
        assert "driver 'mysql+pymysql' is not supported" in str(caught.value)
    with pytest.raises(ConfigError, match="names no database"):
        check_database_url("connectors.sis.url", "mysql+pymysql://reader@sis-db:3306", SOURCE_DRIVERS)
    with pytest.raises(ConfigError, match="driver 'mysql' is not supported"):  # a bare mysql:// wants mysqlclient
        check_database_url("connectors.sis.url", "mysql://reader@sis-db/opensis", SOURCE_DRIVERS)


def test_connectors_keep_their_kind_specific_keys(tmp_path: Path) -> None:
    body = "[[connectors]]\nname = 'sis'\nkind = 'sql'\nurl = 'sqlite:///x'\nmapping = 'demo'\n"
    (connector,) = load_settings(write(tmp_path, body), env={}).connectors
    assert (connector.name, connector.kind, connector.source_system) == ("sis", "sql", "sis")
    assert dict(connector.options) == {"url": "sqlite:///x", "mapping": "demo"}


def test_the_example_config_documents_every_connector_setting() -> None:
    from gateway.settings import ConnectorSettings

    example = files("gateway.config").joinpath("gateway.example.toml").read_text(encoding="utf-8")
    for field in dataclasses.fields(ConnectorSettings):
        if field.name != "options":  # the kind-specific keys, documented per kind
            assert f"\n# {field.name} =" in example, field.name


def test_allow_writable_login_is_a_connector_setting_not_an_option(tmp_path: Path) -> None:
    extra = '[[connectors]]\nname = "sis"\nkind = "sql"\nurl = "sqlite:///x"\nmapping = "demo"\nallow_writable_login = true\n'
    (connector,) = load_settings(write(tmp_path, extra), env={}).connectors
    assert connector.allow_writable_login is True and "allow_writable_login" not in connector.options
    with pytest.raises(ConfigError, match="allow_writable_login"):
        load_settings(write(tmp_path, extra.replace("= true", '= "yes"')), env={})


def test_the_example_config_documents_every_key_and_loads(tmp_path: Path) -> None:
    from gateway.settings import SECTIONS

    example = files("gateway.config").joinpath("gateway.example.toml").read_text(encoding="utf-8")
    for section, cls in SECTIONS.items():
        assert f"[{section}]" in example
        for field in dataclasses.fields(cls):
            assert f"\n{field.name} =" in example or f"\n# {field.name} =" in example, f"{section}.{field.name}"
    settings = load_settings(write(tmp_path, example), env={})
    assert settings.instance.kind == "production"
