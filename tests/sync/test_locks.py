"""Leases: one holder at a time across processes, lapsing when the holder dies."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from gateway.db import create_rw_engine
from gateway.errors import LockHeld
from gateway.portal.models import Lock
from gateway.settings import Settings
from sync.locks import Lease


def test_a_second_holder_is_refused_at_once_naming_the_first(any_instance: Settings) -> None:
    engine = create_rw_engine(any_instance.portal.url)
    with Lease(engine, "sync:sis", 60, holder="host-a:1"):
        with pytest.raises(LockHeld) as caught:
            Lease(engine, "sync:sis", 60, holder="host-b:2").acquire()
    assert caught.value.holder == "host-a:1"
    assert caught.value.exit_code == 75


def test_a_released_lease_can_be_taken_again(any_instance: Settings) -> None:
    engine = create_rw_engine(any_instance.portal.url)
    with Lease(engine, "sync:sis", 60):
        pass
    with Lease(engine, "sync:sis", 60, holder="next"):
        assert Lease(engine, "sync:sis", 60).current_holder() == "next"


def test_different_connectors_do_not_block_each_other(instance: Settings) -> None:
    engine = create_rw_engine(instance.portal.url)
    with Lease(engine, "sync:a", 60), Lease(engine, "sync:b", 60):
        pass


def test_an_expired_lease_of_a_holder_on_another_host_is_taken_over(instance: Settings) -> None:
    engine = create_rw_engine(instance.portal.url)
    dead = Lease(engine, "sync:sis", 60, holder="dead")
    dead.acquire()
    with engine.begin() as connection:
        connection.execute(update(Lock).values(expires_at=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)))
    with Lease(engine, "sync:sis", 60, holder="alive"):
        with pytest.raises(LockHeld):
            dead.renew()  # the dead holder learns it lost the lease


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(instance: Settings) -> None:
    import socket
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    engine = create_rw_engine(instance.portal.url)
    Lease(engine, "sync:sis", 600, holder=f"{socket.gethostname()}:{dead_pid}:abc").acquire()
    with Lease(engine, "sync:sis", 600, holder="successor") as lease:
        assert lease.current_holder() == "successor"


def test_a_lease_of_a_live_process_or_another_host_is_respected(instance: Settings) -> None:
    import os
    import socket

    engine = create_rw_engine(instance.portal.url)
    Lease(engine, "sync:a", 600, holder=f"{socket.gethostname()}:{os.getpid()}:live").acquire()
    Lease(engine, "sync:b", 600, holder="elsewhere:1:x").acquire()
    for name in ("sync:a", "sync:b"):
        with pytest.raises(LockHeld):
            Lease(engine, name, 600).acquire()


HOLDER = """
import sys, time
from gateway.db import create_rw_engine
from sync.locks import Lease
Lease(create_rw_engine(sys.argv[1]), "sync:sis", 600, holder="far-away-host:1:x").acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_holder_killed_on_another_host_frees_the_lease_at_once_on_postgresql(pg_instance: Settings) -> None:
    import signal
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, pg_instance.portal.url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        engine = create_rw_engine(pg_instance.portal.url)
        with pytest.raises(LockHeld, match="far-away-host"):
            Lease(engine, "sync:sis", 600).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        # The row still names the dead holder, unexpired; PostgreSQL releases its advisory lock
        # as soon as the server notices the connection is gone (well before the 600 s TTL).
        import time

        deadline = time.monotonic() + 20
        while True:
            try:
                lease = Lease(engine, "sync:sis", 600, holder="successor")
                lease.acquire()
                break
            except LockHeld:
                assert time.monotonic() < deadline, "the advisory lock was never released"
                time.sleep(0.2)
        assert lease.current_holder() == "successor"
        lease.release()
    finally:
        holder.kill()
