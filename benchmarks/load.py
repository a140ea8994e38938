"""The load generator: logged-in parents loading their dashboard and each child's pages.

Runs as its own process (never inside the server): ``--processes`` worker processes, each
with one thread per virtual parent, each thread its own ``requests.Session`` with
keep-alive. A parent signs in (timed apart as ``login``), then loops until the deadline:
the dashboard, then every child page the dashboard links, pausing ``--pause`` seconds
between pages. Pages are measured only once every parent of every process has signed in
(one barrier across the processes), and each parent starts at a random moment within its
first pause, as people do, rather than all in one burst. ``--trivial`` loads ``/livez``
instead (the framework's floor). Prints one JSON object: latency percentiles and status
counts per kind of request.

    python -m benchmarks.load --url http://127.0.0.1:8000 --parents creds.json --seconds 30 --pause 1
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import threading
import time
from collections import Counter, defaultdict
from typing import Any

import requests

CHILD_LINK = re.compile(r'href="(/students/[^/"]+/[^/"]+/(?:schedule|grades|assignments|attendance))"')
TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
Sample = tuple[str, int, float]  # (kind, status, seconds)


def timed(session: requests.Session, kind: str, method: str, url: str, samples: list[Sample], **kwargs: Any) -> requests.Response | None:
    started = time.perf_counter()
    try:
        response = session.request(method, url, allow_redirects=False, timeout=60, **kwargs)
    except requests.RequestException:
        samples.append((kind, 0, time.perf_counter() - started))  # 0: no answer at all
        return None
    samples.append((kind, response.status_code, time.perf_counter() - started))
    return response


def parent_loop(base: str, username: str, password: str, seconds: float, pause: float, samples: list[Sample],
                signed_in: Any) -> None:
    session, answer = requests.Session(), None
    try:
        page = session.get(f"{base}/login", timeout=60).text
        token = TOKEN.search(page)
        answer = timed(session, "login", "POST", f"{base}/login", samples,
                       data={"csrf_token": token.group(1) if token else "", "username": username, "password": password})
    finally:
        # Sign-ins (argon2id, deliberately slow) all happen first, so the pages are measured alone.
        signed_in.wait()
    if answer is None or answer.status_code != 302:
        return
    deadline = time.monotonic() + seconds
    time.sleep(random.uniform(0, pause))
    while time.monotonic() < deadline:
        dashboard = timed(session, "dashboard", "GET", f"{base}/dashboard", samples)
        links = CHILD_LINK.findall(dashboard.text) if dashboard is not None else []
        for link in dict.fromkeys(links):
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            timed(session, "child", "GET", f"{base}{link}", samples)
        time.sleep(pause)


def trivial_loop(base: str, seconds: float, pause: float, samples: list[Sample], signed_in: Any) -> None:
    session = requests.Session()
    signed_in.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        timed(session, "trivial", "GET", f"{base}/livez", samples)
        time.sleep(pause)


def process_main(base: str, parents: list[tuple[str, str]], trivial: bool, seconds: float, pause: float,
                 out: Any, signed_in: Any) -> None:
    samples: list[Sample] = []  # list.append is atomic under the GIL
    if trivial:
        threads = [threading.Thread(target=trivial_loop, args=(base, seconds, pause, samples, signed_in)) for _ in parents]
    else:
        threads = [threading.Thread(target=parent_loop, args=(base, user, password, seconds, pause, samples, signed_in))
                   for user, password in parents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(samples)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] if ordered else float("nan")


def summarize(samples: list[Sample], seconds: float) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    for kind, status, took in samples:
        by_kind[kind].append(took)
        statuses[kind][status] += 1
    return {kind: {"count": len(values), "per_second": round(len(values) / seconds, 1),
                   "p50_ms": round(percentile(values, 0.50) * 1000, 1), "p95_ms": round(percentile(values, 0.95) * 1000, 1),
                   "p99_ms": round(percentile(values, 0.99) * 1000, 1),
                   "statuses": {str(code): n for code, n in sorted(statuses[kind].items())}}
            for kind, values in by_kind.items()}


def run(base: str, parents: list[tuple[str, str]], seconds: float, pause: float, trivial: bool = False,
        processes: int = 2) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    queue: Any = spawn.Queue()
    signed_in = spawn.Barrier(len(parents))  # every thread of every process
    shares = [parents[i::processes] for i in range(processes)]
    workers = [spawn.Process(target=process_main, args=(base, share, trivial, seconds, pause, queue, signed_in))
               for share in shares if share]
    for worker in workers:
        worker.start()
    samples: list[Sample] = []
    for _ in workers:
        samples += queue.get()
    for worker in workers:
        worker.join()
    return summarize(samples, seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--parents", required=True, help="JSON file: [[username, password], ...]")
    parser.add_argument("--count", type=int, default=0, help="how many of them (default: all)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--pause", type=float, default=1.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--trivial", action="store_true")
    args = parser.parse_args(argv)
    with open(args.parents, encoding="utf-8") as handle:
        parents = [tuple(pair) for pair in json.load(handle)]
    chosen = parents[: args.count] if args.count else parents
    print(json.dumps(run(args.url, chosen, args.seconds, args.pause, args.trivial, args.processes)))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
