"""Soak: concurrent parents on gunicorn while syncs run one after another; then the checks.

    python -m benchmarks.soak --db postgres --sessions 50 --seconds 120 --syncs 3

The portal runs under gunicorn (``gateway serve``) on loopback; ``benchmarks.load`` signs
in ``--sessions`` parents in a separate process and has them load their dashboards and
children's pages (``--pause`` seconds between pages). Meanwhile the SIS changes (1% of
rows) and ``gateway sync run`` runs ``--syncs`` times, one after another. Afterwards:

- no response was a 5xx, and no request went unanswered;
- every record view served was audited: ``record.view`` entries equal the child pages
  answered 200, ``record.refused`` entries the ones answered 404;
- ``gateway audit verify`` passes;
- the replica is consistent: every sync succeeded, no reference dangles, and one more
  full sync finds nothing to change.

Prints one JSON object as its last line and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from benchmarks import load
from benchmarks.site import Site, build_site, drop_databases, gateway_command, served
from gateway.db import create_rw_engine
from gateway.demo.sis import mutate
from gateway.portal.models import AuditEntry

# Each reference the portal follows, as (table, column, referenced table): none may dangle.
REFERENCES = [("student_guardians", "student_source_id", "students"), ("student_guardians", "guardian_source_id", "guardians"),
              ("enrollments", "student_source_id", "students"), ("section_enrollments", "section_source_id", "sections"),
              ("section_enrollments", "student_source_id", "students"), ("scores", "assignment_source_id", "assignments"),
              ("scores", "student_source_id", "students"), ("assignments", "section_source_id", "sections"),
              ("section_terms", "section_source_id", "sections"), ("term_grades", "student_source_id", "students"),
              ("attendance", "student_source_id", "students")]


def gateway(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(gateway_command(site.config, *args), capture_output=True, text=True, check=False)


def run_syncs(site: Site, count: int, gap: float, results: list[dict[str, Any]]) -> None:
    source = create_engine(f"sqlite:///{site.source}")
    for number in range(count):
        time.sleep(gap)
        mutate(source, 0.01, 100 + number, dt.datetime(2026, 11, 28, 20, number, tzinfo=dt.timezone.utc))
        started = time.perf_counter()
        done = gateway(site, "sync", "run", "sis", "--json")
        outcome = json.loads(done.stdout) if done.returncode == 0 else {"status": "failed", "error": done.stderr[-500:]}
        results.append({"exit": done.returncode, "status": outcome.get("status"), "seconds": round(time.perf_counter() - started, 1)})
    source.dispose()


def dangling(site: Site) -> dict[str, int]:
    engine = create_rw_engine(site.settings.replica.url)
    found = {}
    with engine.connect() as connection:
        for table, column, target in REFERENCES:
            count = connection.execute(text(
                f"SELECT COUNT(*) FROM {table} t WHERE t.{column} IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {target} r WHERE r.source_system = t.source_system AND r.source_id = t.{column})")).scalar_one()
            found[f"{table}.{column}"] = count
    engine.dispose()
    return found


def audited(site: Site) -> dict[str, int]:
    engine = create_rw_engine(site.settings.portal.url)
    with engine.connect() as connection:
        rows = connection.execute(select(AuditEntry.action, func.count()).where(
            AuditEntry.action.in_(("record.view", "record.refused"))).group_by(AuditEntry.action)).all()
    engine.dispose()
    return {action: count for action, count in rows}


def checks(site: Site, traffic: dict[str, Any], syncs: list[dict[str, Any]]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for kind in traffic.values():
        for code, count in kind["statuses"].items():
            statuses[code] = statuses.get(code, 0) + count
    child = traffic.get("child", {"statuses": {}})["statuses"]
    entries = audited(site)
    verify = gateway(site, "audit", "verify", "--json")
    final = gateway(site, "sync", "run", "sis", "--full", "--json")
    final_counts = json.loads(final.stdout)["counts"] if final.returncode == 0 else {}
    written = sum(c["inserted"] + c["updated"] + c["deleted"] for c in final_counts.values())
    refs = dangling(site)
    result = {
        "no_5xx": not any(code.startswith("5") for code in statuses), "every_request_answered": "0" not in statuses,
        "views_audited": entries.get("record.view", 0) == child.get("200", 0),
        "refusals_audited": entries.get("record.refused", 0) == child.get("404", 0),
        "audit_verifies": verify.returncode == 0,
        "syncs_succeeded": len(syncs) > 0 and all(s["exit"] == 0 and s["status"] == "succeeded" for s in syncs),
        "no_dangling_references": not any(refs.values()),
        "final_full_sync_changes_nothing": final.returncode == 0 and written == 0,
    }
    details = {"statuses": statuses, "child_pages": child, "audit_entries": entries, "dangling": refs,
               "final_sync_rows_written": written, "audit_verify": verify.stdout.strip()[-300:]}
    return {"checks": result, "details": details}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--pause", type=float, default=0.25)
    parser.add_argument("--syncs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gateway-soak-") as scratch:
        site = build_site(Path(scratch), args.students, args.sessions, args.db, args.workers)
        try:
            with served(site, args.workers) as server:
                syncs: list[dict[str, Any]] = []
                # The syncs start once sign-ins are done and are spread over the run.
                syncer = threading.Thread(target=run_syncs, args=(site, args.syncs, args.seconds / (args.syncs + 1), syncs))
                syncer.start()
                traffic = load.run(server.url, site.parents, args.seconds, args.pause)
                syncer.join()
            outcome = checks(site, traffic, syncs)
            if not all(outcome["checks"].values()):  # the server's own account of what went wrong
                errors = [line for line in (site.folder / "gunicorn.log").read_text().splitlines() if "Error" in line]
                print("\n".join(errors[-20:]), file=sys.stderr)
        finally:
            drop_databases(site.databases)
    report = {"db": args.db, "students": args.students, "sessions": len(site.parents), "seconds": args.seconds,
              "pause": args.pause, "workers": args.workers, "syncs": syncs, "traffic": traffic, **outcome,
              "passed": all(outcome["checks"].values())}
    print(json.dumps(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
