"""A served portal for the web benchmark and the soak: a demo district, parents, gunicorn.

``build_site`` makes an instance (kind ``demo``: production argon2 parameters, a pinned
today), generates the demo SIS, syncs it, and creates parent accounts for guardians the
SIS gives portal access; ``Server`` runs ``gateway serve`` (gunicorn) on a free loopback
port as its own process, exactly as production does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text, update
from sqlalchemy.orm import Session

from gateway import migrate
from gateway.portal import activation, guidelines
from gateway.portal.accounts import create_user
from gateway.db import create_ro_engine, create_rw_engine
from gateway.demo.sis import generate
from gateway.instance import create_missing_keys, write_config
from gateway.portal.models import UserStudent
from gateway.security.keys import load_keyring
from gateway.settings import Settings, load_settings

TODAY = dt.date(2026, 11, 28)
LONG_AGO = dt.datetime(2024, 8, 1, 12, tzinfo=dt.timezone.utc)
PG_ADMIN = os.environ.get("GATEWAY_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@dataclass
class Site:
    folder: Path
    settings: Settings
    source: Path
    parents: list[tuple[str, str]]  # (username, password)
    databases: list[str]  # PostgreSQL databases to drop afterwards

    @property
    def config(self) -> Path:
        return Path(str(self.settings.config_path))


def gateway_command(config: Path, *args: str) -> list[str]:
    """The installed ``gateway`` CLI beside this Python, for an instance's config."""
    return [str(Path(sys.executable).parent / "gateway"), "--config", str(config), *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_urls(db: str) -> tuple[dict[str, str], list[str]]:
    """Empty databases for the replica and the portal, on the server the run names."""
    if db == "sqlite":
        return {}, []
    created = {name: empty_database(name) for name in migrate.DATABASES}
    return {name: url for name, (url, _) in created.items()}, [database for _, database in created.values()]


def empty_database(label: str) -> tuple[str, str]:
    """(url, name) of a new, empty PostgreSQL database on GATEWAY_BENCH_PG_URL's server."""
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    database = f"gw_bench_{label}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{database}", database


def drop_databases(names: list[str]) -> None:
    if not names:
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for database in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    admin.dispose()


def build_site(folder: Path, students: int, parents: int, db: str = "sqlite", workers: int = 4, extra: str = "") -> Site:
    from connectors import registry
    from sync.engine import run_sync

    source = folder / "sis.sqlite3"
    engine = create_engine(f"sqlite:///{source}")
    generate(engine, students, 1, TODAY, attendance_days=20, assignments=5)
    engine.dispose()
    urls, databases = database_urls(db)
    extra += "".join(f'\n[{name}]\nurl = "{url}"\n' for name, url in urls.items())
    extra += f'\n[policy]\ntoday = "{TODAY}"\n\n[web]\nworkers = {workers}\n'
    extra += f'\n[[connectors]]\nname = "sis"\nkind = "sql"\nurl = "sqlite:///{source}"\nmapping = "demo"\n'
    settings = load_settings(write_config(folder / "instance", "demo", "Benchmark District", "America/Chicago", extra),
                             env={})
    create_missing_keys(settings)
    for name in migrate.DATABASES:
        migration_engine = create_rw_engine(getattr(settings, name).url)
        migrate.upgrade(name, migration_engine)
        migration_engine.dispose()
    run_sync(settings, registry.build(settings.connectors[0], settings), "full")
    return Site(folder, settings, source, create_parents(settings, source, parents), databases)


def create_parents(settings: Settings, source: Path, count: int) -> list[tuple[str, str]]:
    """Accounts for the first ``count`` guardians with portal access, every child activated in 2024."""
    sis = create_engine(f"sqlite:///{source}")
    with sis.connect() as connection:
        links = connection.execute(text(
            "SELECT contact_id, pupil_id FROM pupil_contacts WHERE edu_rights AND valid_to IS NULL "
            "ORDER BY contact_id, pupil_id")).all()
    sis.dispose()
    children: dict[int, list[int]] = {}
    for contact, pupil in links:
        if contact in children or len(children) < count:
            children.setdefault(contact, []).append(pupil)
    logins = []
    ring = load_keyring(settings, "blind_index")
    with Session(create_rw_engine(settings.portal.url)) as session, Session(create_ro_engine(settings.replica.url)) as replica:
        version = guidelines.ensure_published(session)
        for contact, pupils in children.items():
            username, password = f"bench-parent-{contact}", secrets.token_urlsafe(18)
            user = create_user(session, settings, username=username, password=password, role="parent",
                               display_name=f"Parent {contact}", source_system="sis", guardian_source_id=str(contact))
            for pupil in pupils:
                code = activation.issue(session, replica, settings, "guardian", "sis", str(pupil), str(contact))
                activation.redeem_for(session, replica, settings, ring, code.code, user)
            session.execute(update(UserStudent).where(UserStudent.user_id == user.id).values(activated_at=LONG_AGO))
            guidelines.accept(session, user.id, version.id)
            logins.append((username, password))
        session.commit()
    return logins


class Server:
    """``gateway serve`` (gunicorn) on a free loopback port, in its own process group."""

    def __init__(self, site: Site, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (site.folder / "gunicorn.log").open("w")
        self.process = subprocess.Popen(
            gateway_command(site.config, "serve", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log.name}")
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 60 s; see {self.log.name}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.close()


@contextlib.contextmanager
def served(site: Site, workers: int) -> Iterator[Server]:
    server = Server(site, workers)
    try:
        yield server
    finally:
        server.stop()
