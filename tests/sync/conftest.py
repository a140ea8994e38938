"""Fixtures for sync tests: an instance whose connector reads its own copy of a demo SIS."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from gateway.db import create_rw_engine
from gateway.demo.sis import generate
from gateway.replica.records import RECORD_TYPES
from gateway.replica.tables import ReplicaBase
from gateway.settings import ConnectorSettings, Settings

DEMO_TODAY = dt.date(2026, 11, 28)
CONNECTOR = "sis"


@pytest.fixture(scope="session")
def demo_sis_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sis-template") / "sis.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    generate(engine, students=120, seed=3, today=DEMO_TODAY)
    engine.dispose()
    return path


@pytest.fixture
def source(tmp_path: Path, demo_sis_template: Path) -> Path:
    """This test's own, writable copy of the demo SIS."""
    path = tmp_path / "source.sqlite3"
    shutil.copyfile(demo_sis_template, path)
    return path


def with_connector(settings: Settings, source: Path, **options: Any) -> Settings:
    entry = ConnectorSettings(CONNECTOR, "sql", CONNECTOR, {"url": f"sqlite:///{source}", "mapping": "demo", **options})
    return dataclasses.replace(settings, connectors=(entry,))


@pytest.fixture
def synced(instance: Settings, source: Path) -> Settings:
    """An instance with the demo SIS as connector ``sis`` (not yet synced)."""
    return with_connector(instance, source)


def replica_state(settings: Settings) -> dict[str, dict[str, str]]:
    """Every canonical table as {source_id: row_hash}: what "unchanged" compares."""
    engine = create_rw_engine(settings.replica.url)
    state = {}
    with engine.connect() as connection:
        for name in RECORD_TYPES:
            table = ReplicaBase.metadata.tables[name]
            state[name] = dict(connection.execute(select(table.c.source_id, table.c.row_hash)).all())
    engine.dispose()
    return state


def decrypted_replica(settings: Settings) -> str:
    """Every value of every canonical table as text, encrypted columns decrypted."""
    from gateway.security.crypto import FieldCipher
    from gateway.security.keys import load_keyring
    from gateway.replica.schema import canonical_tables, encryption_context

    cipher = FieldCipher(load_keyring(settings, "field"))
    engine = create_rw_engine(settings.replica.url)
    values = []
    with engine.connect() as connection:
        for table in canonical_tables().values():
            for row in connection.execute(select(table)).mappings():
                for name, value in row.items():
                    if value is not None and table.columns[name].info.get("storage") == "encrypted":
                        value = cipher.decrypt(value, encryption_context(table.name, name))
                    values.append(str(value))
    engine.dispose()
    return "\n".join(values)
