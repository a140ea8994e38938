"""Settings: one TOML file plus ``GATEWAY_<SECTION>_<KEY>`` overrides, read once.

``load_settings()`` validates everything at start-up into frozen dataclasses; nothing
reads configuration at import time. Secrets are not settings: they come from the
environment or key files (see ``gateway.security.keys``) and never have defaults.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from gateway.errors import ConfigError

CONFIG_ENV = "GATEWAY_CONFIG"
ENV_PREFIX = "GATEWAY_"
# Environment names that are not section keys: the config path, the secrets, and the
# test suite's and benchmarks' own (a gateway they start inherits them).
RESERVED_ENV = (CONFIG_ENV, "GATEWAY_SECRET_", "GATEWAY_TEST_", "GATEWAY_BENCH_")
SUPPORTED_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")
# A SQL connector may also read a MySQL/MariaDB SIS (openSIS, Gibbon: `pip install '.[mysql]'`);
# the gateway's own replica and portal stay on SQLite or PostgreSQL.
SOURCE_DRIVERS = (*SUPPORTED_DRIVERS, "mysql+pymysql")


def _choice(*values: str) -> dict[str, Any]:
    return {"choices": values}


@dataclass(frozen=True)
class InstanceSettings:
    dir: Path = Path(".")
    kind: str = field(default="production", metadata=_choice("production", "demo", "test"))


@dataclass(frozen=True)
class DistrictSettings:
    name: str = "Example Unified School District"
    timezone: str = "America/Los_Angeles"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""  # empty: a SQLite file in the instance dir
    web_url: str = ""  # the web's connection (a restricted role); empty: url

    @property
    def web(self) -> str:
        return self.web_url or self.url


@dataclass(frozen=True)
class SyncSettings:
    batch_size: int = field(default=1000, metadata={"min": 1})
    shrink_max_share: float = field(default=0.2, metadata={"min": 0.0, "max": 1.0})
    shrink_min_rows: int = field(default=20, metadata={"min": 0})
    reject_max_share: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    reject_min_count: int = field(default=20, metadata={"min": 0})
    cursor_lookback_seconds: int = field(default=300, metadata={"min": 0})
    lock_ttl_seconds: int = field(default=900, metadata={"min": 30})
    retry_attempts: int = field(default=3, metadata={"min": 0})
    retry_backoff_seconds: float = field(default=2.0, metadata={"min": 0.0})
    alert_after_failures: int = field(default=2, metadata={"min": 1})
    sanitize_policy: str = ""  # a TOML file; empty: the shipped default


@dataclass(frozen=True)
class SchedulerSettings:
    poll_seconds: float = field(default=5.0, metadata={"min": 0.5})
    misfire_grace_minutes: int = field(default=60, metadata={"min": 1})
    nightly_full_cron: str = "30 2 * * *"
    min_interval_seconds: int = field(default=300, metadata={"min": 1})


@dataclass(frozen=True)
class WebSettings:
    bind: str = "127.0.0.1:8000"
    workers: int = field(default=4, metadata={"min": 1})
    public_url: str = "http://localhost:8000"
    trusted_proxy_hops: int = field(default=0, metadata={"min": 0})
    idle_timeout_minutes: int = field(default=20, metadata={"min": 1})
    absolute_timeout_hours: int = field(default=12, metadata={"min": 1})


@dataclass(frozen=True)
class SecuritySettings:
    password_min_length: int = field(default=15, metadata={"min": 8})
    login_max_failures: int = field(default=5, metadata={"min": 1})
    login_window_minutes: int = field(default=15, metadata={"min": 1})
    lockout_minutes: int = field(default=15, metadata={"min": 1})
    ip_max_failures: int = field(default=50, metadata={"min": 1})
    code_max_attempts: int = field(default=10, metadata={"min": 1})
    code_window_minutes: int = field(default=60, metadata={"min": 1})
    activation_code_days: int = field(default=30, metadata={"min": 1})
    recovery_link_minutes: int = field(default=60, metadata={"min": 5})
    refusal_alert_threshold: int = field(default=5, metadata={"min": 1})


@dataclass(frozen=True)
class MailSettings:
    mode: str = field(default="outbox", metadata=_choice("outbox", "smtp"))
    outbox_dir: Path = Path("outbox")
    from_address: str = "portal@district.invalid"
    smtp_host: str = ""
    smtp_port: int = field(default=587, metadata={"min": 1, "max": 65535})
    smtp_username: str = ""
    smtp_starttls: bool = True


@dataclass(frozen=True)
class AlertSettings:
    it_recipients: tuple[str, ...] = ()
    staff_recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicySettings:
    school_year_start: str = "07-01"
    summer_bridge_exit_window_days: int = field(default=30, metadata={"min": 0})
    summer_bridge_days_after_year: int = field(default=75, metadata={"min": 0})
    unknown_birth_date: str = field(default="deny", metadata=_choice("deny", "under_18"))
    stale_after_hours: int = field(default=36, metadata={"min": 1})
    today: dt.date | None = None  # demo and test instances only


@dataclass(frozen=True)
class AuditSettings:
    checkpoint_file: Path = Path("audit.checkpoint")


@dataclass(frozen=True)
class ConnectorSettings:
    """One ``[[connectors]]`` entry; kind-specific keys are checked by the connector."""

    name: str
    kind: str
    source_system: str
    options: Mapping[str, Any]
    # A SQL source whose login can write is refused unless this is true; then each run warns.
    allow_writable_login: bool = False


@dataclass(frozen=True)
class Settings:
    config_path: Path | None
    instance: InstanceSettings
    district: DistrictSettings
    replica: DatabaseSettings
    portal: DatabaseSettings
    sync: SyncSettings
    scheduler: SchedulerSettings
    web: WebSettings
    security: SecuritySettings
    mail: MailSettings
    alerts: AlertSettings
    policy: PolicySettings
    audit: AuditSettings
    connectors: tuple[ConnectorSettings, ...] = ()

    @property
    def instance_dir(self) -> Path:
        return self.instance.dir

    @property
    def keys_dir(self) -> Path:
        return self.instance.dir / "keys"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.district.timezone)

    def connector(self, name: str) -> ConnectorSettings:
        from gateway.errors import UnknownPlugin

        for entry in self.connectors:
            if entry.name == name:
                return entry
        raise UnknownPlugin("connector", name, (c.name for c in self.connectors))


SECTIONS: dict[str, type] = {
    "instance": InstanceSettings,
    "district": DistrictSettings,
    "replica": DatabaseSettings,
    "portal": DatabaseSettings,
    "sync": SyncSettings,
    "scheduler": SchedulerSettings,
    "web": WebSettings,
    "security": SecuritySettings,
    "mail": MailSettings,
    "alerts": AlertSettings,
    "policy": PolicySettings,
    "audit": AuditSettings,
}


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Read the TOML file (``path``, else ``$GATEWAY_CONFIG``), apply overrides, validate."""
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_ENV) or None
    config_path = Path(chosen).resolve() if chosen else None
    raw = _read_toml(config_path) if config_path else {}
    for section, values in _env_overrides(env).items():
        raw.setdefault(section, {}).update(values)
    for section, given in (overrides or {}).items():
        raw.setdefault(section, {}).update(given)
    base = config_path.parent if config_path else Path.cwd()
    return _build(raw, base, config_path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found", "pass --config or set GATEWAY_CONFIG") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"is not valid TOML ({exc})", "fix the file") from None


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(RESERVED_ENV):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, _, key = rest.partition("_")
        if section not in SECTIONS or key not in {f.name for f in dataclasses.fields(SECTIONS[section])}:
            raise ConfigError(
                name, "is not a setting", "name it GATEWAY_<SECTION>_<KEY> after a key of gateway.example.toml"
            )
        found.setdefault(section, {})[key] = value
    return found


def _build(raw: Mapping[str, Any], base: Path, config_path: Path | None) -> Settings:
    unknown = set(raw) - set(SECTIONS) - {"connectors"}
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(name, "unknown section", f"valid sections: {', '.join(SECTIONS)}, connectors")
    parts = {name: _section(name, cls, raw.get(name, {})) for name, cls in SECTIONS.items()}
    instance = parts["instance"]
    instance_dir = (base / instance.dir).resolve()
    parts["instance"] = dataclasses.replace(instance, dir=instance_dir)
    parts["replica"] = _database("replica", parts["replica"], instance_dir)
    parts["portal"] = _database("portal", parts["portal"], instance_dir)
    parts["mail"] = dataclasses.replace(parts["mail"], outbox_dir=instance_dir / parts["mail"].outbox_dir)
    if parts["sync"].sanitize_policy:
        policy = instance_dir / parts["sync"].sanitize_policy
        parts["sync"] = dataclasses.replace(parts["sync"], sanitize_policy=str(policy))
    parts["audit"] = dataclasses.replace(
        parts["audit"], checkpoint_file=instance_dir / parts["audit"].checkpoint_file
    )
    _check_district(parts["district"])
    _check_policy(parts["policy"], instance.kind)
    connectors = _connectors(raw.get("connectors", []))
    return Settings(config_path=config_path, connectors=connectors, **parts)


def _section(name: str, cls: type, values: Any) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(name, "must be a table", f"write it as [{name}]")
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in values:
        if key not in known:
            raise ConfigError(f"{name}.{key}", "unknown key", f"valid keys of [{name}]: {', '.join(known)}")
    kwargs = {key: _coerce(f"{name}.{key}", hints[key], value, known[key].metadata) for key, value in values.items()}
    return cls(**kwargs)


def _coerce(key: str, hint: Any, value: Any, meta: Mapping[str, Any]) -> Any:
    """Turn a TOML or environment value into the field's type, checking its bounds."""
    try:
        result = _convert(hint, value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(key, f"cannot use {value!r} ({exc})", f"give a {_type_name(hint)}") from None
    if "choices" in meta and result not in meta["choices"]:
        raise ConfigError(key, f"{result!r} is not allowed", f"use one of {', '.join(meta['choices'])}")
    if "min" in meta and result < meta["min"]:
        raise ConfigError(key, f"{result} is below {meta['min']}", "raise it")
    if "max" in meta and result > meta["max"]:
        raise ConfigError(key, f"{result} is above {meta['max']}", "lower it")
    return result


def _convert(hint: Any, value: Any) -> Any:
    if isinstance(hint, types.UnionType):  # only ``X | None`` is used
        if value in (None, ""):
            return None
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if hint is bool:
        return _to_bool(value)
    if hint is int and not isinstance(value, bool):
        return int(value)
    if hint is float and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint is dt.date:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    if typing.get_origin(hint) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise TypeError("expected a list")
        return tuple(str(item).strip() for item in items if str(item).strip())
    raise TypeError(f"expected a {_type_name(hint)}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint)).replace("NoneType", "nothing")


def _database(name: str, section: DatabaseSettings, instance_dir: Path) -> DatabaseSettings:
    if section.web_url:
        check_database_url(f"{name}.web_url", section.web_url)
    if not section.url:
        return dataclasses.replace(section, url=f"sqlite:///{instance_dir / (name + '.sqlite3')}")
    check_database_url(f"{name}.url", section.url)
    return section


def check_database_url(key: str, url: str, drivers: tuple[str, ...] = SUPPORTED_DRIVERS) -> URL:
    """Parse a SQLAlchemy URL, refusing drivers the gateway does not support (for this use)."""
    hint = "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DBNAME"
    if "mysql+pymysql" in drivers:
        hint += " or mysql+pymysql://USER@HOST:3306/DBNAME"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(key, f"{_mask_url(url)!r} is not a database URL", hint) from None
    if parsed.drivername not in drivers:
        raise ConfigError(key, f"driver {parsed.drivername!r} is not supported", hint)
    if parsed.get_backend_name() in ("postgresql", "mysql") and not parsed.database:
        raise ConfigError(key, "names no database", hint)
    return parsed


def _mask_url(url: str) -> str:
    """Hide a password typed into a malformed URL before it reaches a message."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def _check_district(district: DistrictSettings) -> None:
    try:
        ZoneInfo(district.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "district.timezone", f"{district.timezone!r} is not a time zone", "use an IANA name such as America/Chicago"
        ) from None


def _check_policy(policy: PolicySettings, kind: str) -> None:
    try:
        month, day = (int(part) for part in policy.school_year_start.split("-"))
        dt.date(2001, month, day)  # a common year: 29 February cannot start a school year
    except ValueError:
        raise ConfigError(
            "policy.school_year_start", f"{policy.school_year_start!r} is not a date", "write MM-DD, e.g. 07-01"
        ) from None
    if policy.today is not None and kind == "production":
        raise ConfigError(
            "policy.today", "is only honoured by demo and test instances", "remove it, or set instance.kind"
        )


def _connectors(entries: Any) -> tuple[ConnectorSettings, ...]:
    if not isinstance(entries, list):
        raise ConfigError("connectors", "must be an array of tables", "write each as [[connectors]]")
    seen: set[str] = set()
    result = []
    for position, entry in enumerate(entries, start=1):
        key = f"connectors[{position}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(key, "must be a table", "write it as [[connectors]]")
        name, kind = entry.get("name"), entry.get("kind")
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{key}.name", "is missing or not a simple name", "use letters, digits, - and _")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"{key}.kind", "is missing", "name the connector kind, e.g. oneroster-csv or sql")
        if name in seen:
            raise ConfigError(f"{key}.name", f"{name!r} is used twice", "give each connector its own name")
        seen.add(name)
        options = {k: v for k, v in entry.items() if k not in ("name", "kind", "source_system", "allow_writable_login")}
        source_system = str(entry.get("source_system") or name)
        writable = entry.get("allow_writable_login", False)
        if not isinstance(writable, bool):
            raise ConfigError(f"{key}.allow_writable_login", "must be true or false", "write allow_writable_login = true")
        result.append(ConnectorSettings(name, kind, source_system, types.MappingProxyType(options), writable))
    return tuple(result)
