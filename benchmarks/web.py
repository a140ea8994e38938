"""Portal benchmark: the app under gunicorn on loopback, load from a separate process.

    python -m benchmarks.web --db postgres --students 2000 --seconds 30

Measured in one run (the load generator is ``benchmarks.load``: Python, ``requests``
with keep-alive, one thread per parent in two processes):

- (a) 16 and 64 signed-in parents, each pausing 1 s between pages: p50/p95/p99 of the
  child pages (and the dashboard);
- (b) the same parents with no pause: the maximum requests/s; and in the same run a
  trivial endpoint of the same app (``/livez``, no database) under the same concurrency:
  the framework's limit, reported as a ratio;
- (c) 16 parents pausing 1 s while a full sync runs: child-page p95 against idle;
- login cost: one argon2id verification with the production parameters, and the
  sign-in request's latency.

Prints one JSON object as its last line. Nothing is asserted: it reports.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from benchmarks import load
from benchmarks.site import Site, build_site, drop_databases, gateway_command, served


def argon2_verify_ms() -> float:
    hasher = PasswordHasher()  # what production instances use (passwords.hasher_for)
    stored = hasher.hash("a benchmark password of fair length")
    started = time.perf_counter()
    for _ in range(5):
        hasher.verify(stored, "a benchmark password of fair length")
    return round((time.perf_counter() - started) / 5 * 1000, 1)


def full_sync_in_background(site: Site, done: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        started = time.perf_counter()
        result = subprocess.run(gateway_command(site.config, "sync", "run", "sis", "--full", "--json"),
                                capture_output=True, text=True, check=False)
        done.update(exit=result.returncode, seconds=round(time.perf_counter() - started, 1))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def pages(report: dict[str, Any]) -> dict[str, Any]:
    return {kind: {k: v for k, v in figures.items() if k != "count"} | {"count": figures["count"]}
            for kind, figures in report.items() if kind in ("child", "dashboard", "trivial")}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30, help="length of each measured phase")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"db": args.db, "students": args.students, "workers": args.workers, "seconds": args.seconds,
                              "load_generator": "benchmarks.load (Python requests, 2 processes, a thread per parent)",
                              "argon2id_verify_ms": argon2_verify_ms()}
    with tempfile.TemporaryDirectory(prefix="gateway-web-") as scratch:
        site = build_site(Path(scratch), args.students, 64, args.db, args.workers)
        try:
            with served(site, args.workers) as server:
                # Warm every worker (templates compiled, translations and pools loaded): a
                # server in service is warm; its first seconds are not what parents see.
                load.run(server.url, site.parents[:16], min(5.0, args.seconds), pause=0.0)
                for count in (16, 64):
                    run = load.run(server.url, site.parents[:count], args.seconds, pause=1.0)
                    report[f"paced_{count}"] = pages(run)
                    report[f"login_{count}"] = {k: run["login"][k] for k in ("p50_ms", "p95_ms", "count")}
                    print(f"{count} parents, 1 s pause: {report[f'paced_{count}']['child']}", file=sys.stderr)
                for count in (16, 64):
                    busy = load.run(server.url, site.parents[:count], args.seconds, pause=0.0)
                    trivial = load.run(server.url, site.parents[:count], args.seconds, pause=0.0, trivial=True)
                    served_rps = busy["child"]["per_second"] + busy["dashboard"]["per_second"]
                    report[f"max_{count}"] = {"pages_per_second": round(served_rps, 1), "trivial_per_second": trivial["trivial"]["per_second"],
                                              "ratio_to_trivial": round(served_rps / trivial["trivial"]["per_second"], 3),
                                              "pages": pages(busy), "trivial": pages(trivial)}
                    print(f"{count} parents, no pause: {report[f'max_{count}']['pages_per_second']} pages/s, "
                          f"trivial {report[f'max_{count}']['trivial_per_second']}/s", file=sys.stderr)
                sync: dict[str, Any] = {}
                syncing = full_sync_in_background(site, sync)
                during = load.run(server.url, site.parents[:16], args.seconds, pause=1.0)
                syncing.join()
                idle_p95 = report["paced_16"]["child"]["p95_ms"]
                report["during_full_sync"] = {"sync": sync, "pages": pages(during),
                                              "p95_ratio_to_idle": round(during["child"]["p95_ms"] / idle_p95, 2)}
        finally:
            drop_databases(site.databases)
    report["targets"] = {
        "child_p95_under_50ms_16_paced": report["paced_16"]["child"]["p95_ms"] < 50,
        "max_throughput_at_least_0.3_of_trivial": report["max_64"]["ratio_to_trivial"] >= 0.3,
        "p95_during_sync_at_most_2x_idle": report["during_full_sync"]["p95_ratio_to_idle"] <= 2,
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
