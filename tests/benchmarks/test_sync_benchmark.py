"""The sync benchmark runs end to end and measures what it says (its figures are not checked:
timings belong to docs/benchmarks.md, never to a test)."""

from __future__ import annotations

import json
import subprocess
import sys

from ..conftest import REPO

STREAMS = {"schools", "terms", "students", "guardians", "student_guardians", "enrollments", "courses", "sections",
           "section_terms", "section_enrollments", "assignments", "scores", "term_grades", "attendance"}


def test_the_sync_benchmark_compares_like_with_like_and_reports_every_figure() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.sync", "--students", "40", "--db", "sqlite", "--no-peer"],
                         cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["rows"] > 1000 and report["limit_rows"] == report["rows"]  # the limit wrote the same rows
    assert report["resync_rows_written"] == 0  # the re-sync really found nothing changed
    assert report["incremental_rows"]["updated"] > 0 and report["incremental_rows"]["inserted"] == 0
    assert set(report["rows_per_second_by_stream"]) == STREAMS
    assert set(report["profile"]["phases_seconds"]) >= {"sanitize_and_hash", "write_new_rows", "read_and_validate_source"}
    assert len(report["profile"]["top_own_time"]) == 12
    for key in ("full_seconds", "resync_seconds", "incremental_seconds", "limit_seconds", "peak_rss_mb"):
        assert report[key] > 0
