"""Sources for connector tests: a small demo SIS, generated once per session."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from gateway.demo.sis import DemoSummary, generate

from ..conftest import MysqlAdmin
from .provider import Provider

DEMO_TODAY = dt.date(2026, 11, 28)


@pytest.fixture(scope="session")
def demo_sis(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, DemoSummary]:
    """A 60-student demo SIS on SQLite: its URL and what the generator wrote."""
    path = Path(tmp_path_factory.mktemp("demo-sis")) / "sis.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    summary = generate(engine, students=60, seed=7, today=DEMO_TODAY)
    engine.dispose()
    return f"sqlite:///{path}", summary


@pytest.fixture(scope="session")
def mysql_demo_sis(mysql_admin: MysqlAdmin) -> Iterator[tuple[str, DemoSummary]]:
    """The same 60-student demo SIS on MariaDB: root's URL for it (no password) and the summary."""
    name = f"gw_demo_{uuid.uuid4().hex[:12]}"
    mysql_admin.create(name)
    url = mysql_admin.admin_url_for(name)
    engine = create_engine(url)
    summary = generate(engine, students=60, seed=7, today=DEMO_TODAY)
    engine.dispose()
    yield url, summary
    mysql_admin.drop(name)


@pytest.fixture
def provider() -> Iterator[Provider]:
    """A OneRoster REST provider on a loopback port, for this test only."""
    server = Provider()
    yield server
    server.stop()
