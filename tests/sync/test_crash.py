"""A sync killed with SIGKILL mid-apply leaves the replica exactly as it was."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from gateway.db import create_rw_engine
from gateway.demo.sis import generate, mutate
from gateway.replica.tables import SyncRun
from gateway.settings import Settings, load_settings

from .conftest import CONNECTOR, DEMO_TODAY, replica_state


def write_lock_is_held(database: Path) -> bool:
    probe = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()


def sync_command(settings: Settings, *args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "--config", str(settings.config_path), "sync", "run", CONNECTOR, *args]


@pytest.fixture
def big_instance(instance: Settings, tmp_path: Path) -> Settings:
    """An instance whose connector reads a demo SIS large enough for a multi-second apply."""
    source = tmp_path / "big-sis.sqlite3"
    engine = create_engine(f"sqlite:///{source}")
    generate(engine, students=700, seed=11, today=DEMO_TODAY)
    engine.dispose()
    config = Path(str(instance.config_path))
    config.write_text(config.read_text() + f'\n[[connectors]]\nname = "{CONNECTOR}"\nkind = "sql"\n'
                      f'url = "sqlite:///{source}"\nmapping = "demo"\n')
    return load_settings(config, env={})


def test_sigkill_during_apply_leaves_the_replica_as_before_and_the_next_run_converges(big_instance: Settings) -> None:
    settings = big_instance
    subprocess.run(sync_command(settings, "--full"), check=True, capture_output=True, timeout=300)
    before = replica_state(settings)
    source = settings.connectors[0].options["url"].removeprefix("sqlite:///")
    mutate(create_rw_engine(f"sqlite:///{source}"), 0.3, seed=2, at=dt.datetime(2026, 11, 28, 20, tzinfo=dt.timezone.utc))

    replica_file = Path(settings.replica.url.removeprefix("sqlite:///"))
    process = subprocess.Popen(sync_command(settings, "--full"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not write_lock_is_held(replica_file):
        assert process.poll() is None, "the run ended before its apply phase was seen"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.5)  # well inside the apply phase
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL

    assert replica_state(settings) == before
    engine = create_rw_engine(settings.replica.url)
    with engine.connect() as connection:
        statuses = connection.execute(select(SyncRun.status).order_by(SyncRun.id)).scalars().all()
    assert statuses == ["succeeded", "running"]  # the killed run never published

    # The dead process's lease is taken over at once (same host, its pid is gone).
    subprocess.run(sync_command(settings, "--full"), check=True, capture_output=True, timeout=300)
    converged = replica_state(settings)
    assert converged != before
    again = subprocess.run(sync_command(settings, "--full", "--json"), check=True, capture_output=True, text=True, timeout=300)
    import json

    counts = json.loads(again.stdout)["counts"]
    assert all(c["inserted"] == c["updated"] == c["deleted"] == 0 for c in counts.values())
    with engine.connect() as connection:
        statuses = connection.execute(select(SyncRun.status, SyncRun.error).order_by(SyncRun.id)).all()
    assert statuses[1] == ("failed", "interrupted (the process ended mid-run)")
