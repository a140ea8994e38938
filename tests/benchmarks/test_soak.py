"""A short soak in CI: the same script as the two-minute run, smaller, on PostgreSQL (as production).

Parents on gunicorn while syncs run: no 5xx, every view audited, the audit chain
verifies, the replica consistent. The full-size run and its figures are in docs/soak.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..conftest import REPO


@pytest.mark.postgres
def test_a_short_soak_passes_every_check(pg_server: str) -> None:
    # SQLite's multi-worker behaviour has its own test (web/test_app.py); the soak itself runs
    # on either with --db (docs/soak.md).
    run = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--db", "postgres", "--students", "120", "--sessions", "8",
                          "--seconds", "8", "--syncs", "2", "--workers", "2"],
                         cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
                         env={**os.environ, "GATEWAY_BENCH_PG_URL": pg_server})
    assert run.stdout.strip(), run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["checks"] == {"no_5xx": True, "every_request_answered": True, "views_audited": True,
                                "refusals_audited": True, "audit_verifies": True, "syncs_succeeded": True,
                                "no_dangling_references": True, "final_full_sync_changes_nothing": True}, run.stderr[-3000:]
    assert report["traffic"]["child"]["statuses"].get("200", 0) > 10  # pages were really served and counted
    assert run.returncode == 0
