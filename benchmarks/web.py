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
  sign-in request's latency;
- sign-in by name: the sign-in request's time for unknown names and for known names (a
  wrong password each, interleaved, one try per known account), which must be within 10%
  of each other, or the time tells an attacker which names exist. ``--sign-in-only``
  measures just this, on a small site.

Prints one JSON object as its last line. Nothing is asserted: it reports.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
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


def sign_in_by_name(base: str, known: list[str], rounds: int) -> dict[str, Any]:
    """The sign-in request's time, a wrong password each, for unknown and known names."""
    samples: dict[str, list[float]] = {"unknown": [], "known": []}
    for index in range(rounds):
        for kind, name in (("unknown", f"nobody-{secrets.token_hex(6)}"), ("known", known[index % len(known)])):
            browser = requests.Session()
            token = load.TOKEN.search(browser.get(f"{base}/login", timeout=60).text)
            started = time.perf_counter()
            browser.post(f"{base}/login", data={"csrf_token": token.group(1) if token else "", "username": name,
                                                "password": "not the password of anyone"}, allow_redirects=False, timeout=60)
            samples[kind].append((time.perf_counter() - started) * 1000)
    figures = {kind: {"p50_ms": round(statistics.median(values), 1), "mean_ms": round(statistics.fmean(values), 1),
                      "count": len(values)} for kind, values in samples.items()}
    figures["unknown_to_known"] = round(figures["unknown"]["p50_ms"] / figures["known"]["p50_ms"], 3)
    return figures


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
    parser.add_argument("--sign-in-rounds", type=int, default=36, help="sign-ins timed per kind of name")
    parser.add_argument("--sign-in-only", action="store_true", help="measure only sign-in by name")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"db": args.db, "students": args.students, "workers": args.workers, "seconds": args.seconds,
                              "load_generator": "benchmarks.load (Python requests, 2 processes, a thread per parent)",
                              "argon2id_verify_ms": argon2_verify_ms()}
    with tempfile.TemporaryDirectory(prefix="gateway-web-") as scratch:
        # Each timed sign-in is a failure from this address: let the address's lockout allow them all.
        site = build_site(Path(scratch), args.students, max(64, args.sign_in_rounds), args.db, args.workers,
                          extra=f"\n[security]\nip_max_failures = {4 * args.sign_in_rounds + 50}\n")
        try:
            with served(site, args.workers) as server:
                report["sign_in_by_name"] = sign_in_by_name(server.url, [name for name, _ in site.parents],
                                                            args.sign_in_rounds)
                print(f"sign-in by name: {report['sign_in_by_name']}", file=sys.stderr)
                if args.sign_in_only:
                    print(json.dumps(report))
                    return report
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
        "sign_in_unknown_within_10pct_of_known": abs(report["sign_in_by_name"]["unknown_to_known"] - 1) <= 0.1,
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
