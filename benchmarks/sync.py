"""Sync benchmark: the engine against the bulk-copy limit, on the demo SIS.

    python -m benchmarks.sync --students 2000 --db sqlite
    python -m benchmarks.sync --students 10000 --db postgres

Measures, in one run: the initial full sync into an empty replica; a full re-sync with
nothing changed; an incremental sync after 1% of source rows changed; and the limit: the
same source rows read and written, unchanged, into the same replica tables by the
database's fastest bulk path in one transaction (SQLite ``executemany``, PostgreSQL
``COPY``). Both sides include reading the source. Also: rows/s per table in the initial
sync, the peak RSS of the syncs, where the time goes (a profiled first sync into another
empty replica, ``--no-profile`` to skip) and the peer: dlt copying the same source tables
into the same kind of database (``bench`` extra; ``--no-peer`` to skip). Prints figures as
it goes and one JSON object as its last line. Nothing here is asserted: it reports.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import pstats
import itertools
import dataclasses
import datetime as dt
import json
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert

from benchmarks import peer
from benchmarks.site import database_urls, drop_databases, empty_database
from gateway import migrate
from gateway.db import create_rw_engine
from gateway.demo.sis import generate, mutate
from gateway.replica.dbtypes import utcnow
from gateway.instance import create_missing_keys, write_config
from gateway.replica.records import Record
from gateway.replica.schema import canonical_tables
from gateway.settings import ConnectorSettings, Settings, load_settings

TODAY = dt.date(2026, 11, 28)


def make_instance(folder: Path, source: Path, db: str, databases: list[str]) -> Settings:
    """A fresh instance whose replica (and portal) are on ``db``; PostgreSQL databases are noted for dropping."""
    urls, created = database_urls(db)
    databases += created
    extra = f'\n[policy]\ntoday = "{TODAY}"\n' + "".join(f'\n[{name}]\nurl = "{url}"\n' for name, url in urls.items())
    config = write_config(folder, "test", "Benchmark District", "America/Chicago", extra=extra)
    settings = load_settings(config, env={})
    create_missing_keys(settings)
    for name in migrate.DATABASES:
        engine = create_rw_engine(getattr(settings, name).url)
        migrate.upgrade(name, engine)
        engine.dispose()
    entry = ConnectorSettings("sis", "sql", "sis", {"url": f"sqlite:///{source}", "mapping": "demo"})
    return dataclasses.replace(settings, connectors=(entry,))


def timed_sync(settings: Settings, mode: str, rates: dict[str, float] | None = None) -> tuple[float, dict[str, Any]]:
    """Seconds and row totals of one run; ``rates`` gets rows/s per stream (reading and
    writing it; the run's shared steps, deletions and references, come after)."""
    from connectors import registry
    from sync.engine import run_sync

    progress: dict[str, tuple[int, float]] = {}
    connector = registry.build(settings.connectors[0], settings)
    started = time.perf_counter()
    result = run_sync(settings, connector, mode,
                      progress=lambda stream, rows, seconds: progress.update({stream: (rows, seconds)}))
    seconds = time.perf_counter() - started
    connector.close()
    if rates is not None:
        rates.update({stream: round(rows / max(spent, 1e-6)) for stream, (rows, spent) in progress.items()})
    totals = {k: sum(getattr(c, k) for c in result.counts.values()) for k in ("inserted", "updated", "deleted", "unchanged")}
    return seconds, totals


# Where a first sync's time goes: the engine's steps, by their functions' cumulative time.
PHASES = {
    "sanitize_and_hash": ("sync/apply.py", "plaintext"),
    "encrypt_and_index": ("sync/apply.py", "stored"),
    "find_existing_rows": ("sync/apply.py", "_existing"),
    "look_up_references": ("sync/apply.py", "_attach_references"),
    "write_new_rows": ("sync/apply.py", "_insert"),
    "find_and_delete_vanished": ("sync/apply.py", "delete_vanished"),
    "resolve_late_references": ("sync/apply.py", "resolve_references"),
    "planner_statistics": ("sync/engine.py", "_refresh_statistics"),
    "stream_total": ("sync/engine.py", "_stream"),
    "write_total": ("sync/apply.py", "write"),
    "run_total": ("sync/engine.py", "run_sync"),
}


def profiled_sync(settings: Settings) -> dict[str, Any]:
    """A first full sync under cProfile: seconds per engine step and the top functions by own time.

    The profiler slows Python code more than the database's, so read shares, not seconds.
    """
    profile = cProfile.Profile()
    profile.enable()
    timed_sync(settings, "full")
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    cumulative: dict[tuple[str, str], float] = {}
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in stats.items():
        for suffix, name in PHASES.values():
            if function == name and filename.endswith(suffix):
                cumulative[(suffix, name)] = cumulative.get((suffix, name), 0.0) + ct
    phases = {phase: round(cumulative.get(key, 0.0), 2) for phase, key in PHASES.items()}
    # What _stream spends outside the writer: reading, converting and validating source rows.
    phases["read_and_validate_source"] = round(phases.pop("stream_total") - phases.pop("write_total"), 2)
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
    return {"phases_seconds": phases,
            "top_own_time": [f"{round(tt, 2)}s {Path(f).name}:{line}({fn})" for (f, line, fn), (_, _, tt, _, _) in top]}


def limit_rows(connector: Any, spec: Any, now: dt.datetime) -> Iterator[dict[str, Any]]:
    """The stream's records as replica rows, unchanged: no sanitizing, encryption or diff."""
    for item in connector.iter_records(spec.name, None):
        if isinstance(item, Record):
            yield {**item.values(), "source_system": "limit", "source_id": item.source_id, "row_hash": "-",
                   "synced_at": now, "sync_run_id": 0,
                   **({"birth_date": str(item.birth_date)} if spec.table == "students" else {})}


def the_limit(settings: Settings) -> tuple[float, int]:
    """Read every stream and write its rows as they are by the database's fastest bulk path,
    in one transaction: SQLite ``executemany``, PostgreSQL ``COPY``."""
    from connectors import registry

    connector = registry.build(settings.connectors[0], settings)
    engine = create_rw_engine(settings.replica.url)
    tables, now, rows = canonical_tables(), utcnow(), 0
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        with raw.cursor() as cursor:
            for spec in connector.streams:
                rows += copy_stream(cursor, spec.table, limit_rows(connector, spec, now))
        raw.commit()
        raw.close()
    else:
        with engine.begin() as connection:
            for spec in connector.streams:
                batch: list[dict[str, Any]] = []
                for row in limit_rows(connector, spec, now):
                    batch.append(row)
                    if len(batch) >= 5000:
                        connection.execute(insert(tables[spec.table]), batch)
                        rows, batch = rows + len(batch), []
                if batch:
                    connection.execute(insert(tables[spec.table]), batch)
                    rows += len(batch)
    seconds = time.perf_counter() - started
    connector.close()
    engine.dispose()
    return seconds, rows


def copy_stream(cursor: Any, table: str, rows: Iterator[dict[str, Any]]) -> int:
    first = next(rows, None)
    if first is None:
        return 0
    columns = list(first)
    count = 0
    with cursor.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
        for row in itertools.chain([first], rows):
            copy.write_row([row[name] for name in columns])
            count += 1
    return count


def generate_source(path: Path, students: int, seed: int) -> None:
    """The demo SIS, generated in a child process so the peak RSS reported is the syncs'."""
    source_engine = create_engine(f"sqlite:///{path}")
    generate(source_engine, students, seed, TODAY, attendance_days=20, assignments=5)
    source_engine.dispose()


def peer_copy(source: Path, db: str, folder: Path, databases: list[str]) -> dict[str, Any]:
    if not peer.dlt_available():
        print("dlt is not installed (pip install -e '.[bench]'): no peer figure", file=sys.stderr)
        return {"dlt_seconds": None, "dlt_rows": None}
    if db == "sqlite":
        url = f"sqlite:///{folder / 'dlt.sqlite3'}"
    else:
        url, name = empty_database("dlt")
        databases.append(name)
    seconds, rows = peer.dlt_copy(source, url, folder)
    print(f"peer, dlt sql_database -> {db}: {rows} rows in {seconds:.2f}s", file=sys.stderr)
    return {"dlt_seconds": round(seconds, 3), "dlt_rows": rows}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite",
                        help="where the replica lives (postgres: GATEWAY_BENCH_PG_URL's server)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled extra first sync")
    parser.add_argument("--no-peer", action="store_true", help="skip dlt's copy of the same tables")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"students": args.students, "db": args.db}
    databases: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as scratch:
        try:
            report |= run_all(Path(scratch), args, databases)
        finally:
            drop_databases(databases)
    print(json.dumps(report))
    return report


def run_all(folder: Path, args: argparse.Namespace, databases: list[str]) -> dict[str, Any]:
    source = folder / "sis.sqlite3"
    started = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(target=generate_source, args=(source, args.students, args.seed))
    child.start()
    child.join()
    print(f"demo SIS: {args.students} students in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    source_engine = create_engine(f"sqlite:///{source}")
    settings = make_instance(folder / "sync", source, args.db, databases)
    rates: dict[str, float] = {}
    full, counts = timed_sync(settings, "full", rates)
    rows = counts["inserted"]
    print(f"initial full sync: {rows} rows in {full:.2f}s ({rows / full:.0f} rows/s)", file=sys.stderr)
    resync, resync_counts = timed_sync(settings, "full")
    print(f"unchanged full re-sync: {resync:.2f}s", file=sys.stderr)
    rss = peak_rss_mb()  # the two full syncs' peak: mutate() below holds the source's keys in this process
    # Steady state: the first incremental after a full run moves every cursor to the
    # source's newest change; the second, after another 1% changed, is measured.
    mutate(source_engine, 0.01, args.seed + 1, dt.datetime(2026, 11, 28, 19, tzinfo=dt.timezone.utc))
    timed_sync(settings, "incremental")
    changed = mutate(source_engine, 0.01, args.seed, dt.datetime(2026, 11, 28, 20, tzinfo=dt.timezone.utc))
    incremental, incremental_counts = timed_sync(settings, "incremental")
    print(f"incremental after 1% changed: {incremental:.2f}s ({incremental_counts})", file=sys.stderr)
    limit, limit_count = the_limit(make_instance(folder / "limit", source, args.db, databases))
    path = "COPY" if args.db == "postgres" else "executemany"
    print(f"the limit (read + {path}, one transaction): {limit_count} rows in {limit:.2f}s", file=sys.stderr)
    report = {
        "rows": rows, "limit_rows": limit_count,
        "resync_rows_written": resync_counts["inserted"] + resync_counts["updated"] + resync_counts["deleted"],
        "incremental_rows": incremental_counts, "full_seconds": round(full, 3), "resync_seconds": round(resync, 3),
        "incremental_seconds": round(incremental, 3), "limit_seconds": round(limit, 3),
        "changed_source_rows": sum(len(v) for v in changed.values()),
        "full_throughput_vs_limit": round(limit / full, 3), "resync_vs_limit": round(resync / limit, 3),
        "incremental_share_of_full": round(incremental / full, 4), "peak_rss_mb": round(rss, 1),
        "rows_per_second_by_stream": rates,
    }
    if not args.no_peer:
        report |= peer_copy(source, args.db, folder, databases)
        if report["dlt_seconds"]:
            report["full_vs_dlt_seconds"] = round(full / report["dlt_seconds"], 3)
    if not args.no_profile:
        report["profile"] = profiled_sync(make_instance(folder / "profiled", source, args.db, databases))
        print(f"profile of a first sync: {json.dumps(report['profile'], indent=1)}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
