"""The peer comparison: dlt's SQL-database source copying the demo SIS's tables.

dlt is installed only with the ``bench`` extra (``pip install -e '.[bench,postgres]'``);
without it the sync benchmark says so and reports no peer figure. dlt copies the tables
as they are (extract, normalize, load; ``write_disposition="replace"``); the gateway does
more with the same rows (sanitizing, encrypting, diffing, resolving references), and the
two figures side by side say what that costs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

# The demo SIS tables config/mappings/demo.toml reads (staff_members for teachers' names).
SOURCE_TABLES = (
    "district_orgs", "marking_periods", "pupils", "contacts", "pupil_contacts", "enrollment_history",
    "course_catalog", "class_sections", "section_mps", "staff_members", "rosters", "report_card",
    "attendance_daily", "attendance_period", "gb_assignments", "gb_scores",
)


def dlt_available() -> bool:
    try:
        import dlt  # noqa: F401
    except ImportError:
        return False
    return True


def dlt_copy(source: Path, destination_url: str, folder: Path) -> tuple[float, int]:
    """Seconds and rows for dlt copying SOURCE_TABLES from the demo SIS into ``destination_url``
    (``sqlite:///...`` through dlt's sqlalchemy destination, or a PostgreSQL database)."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # no calls home from a benchmark
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")  # its type warnings would bury the figures
    if destination_url.startswith("sqlite"):
        os.environ.setdefault("LOAD__WORKERS", "1")  # parallel loaders into one SQLite file fail "database is locked"
    import dlt
    from dlt.sources.sql_database import sql_database

    pipeline = dlt.pipeline(pipeline_name="bench", destination=_destination(dlt, destination_url),
                            dataset_name="sis_dlt", pipelines_dir=str(folder / "dlt-pipelines"))
    started = time.perf_counter()
    pipeline.run(sql_database(credentials=f"sqlite:///{source}", table_names=list(SOURCE_TABLES)),
                 write_disposition="replace")
    seconds = time.perf_counter() - started
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return seconds, sum(count for table, count in counts.items() if table in SOURCE_TABLES)


def _destination(dlt: Any, url: str) -> Any:
    if url.startswith("sqlite"):
        return dlt.destinations.sqlalchemy(credentials=url)
    # dlt's postgres destination uses psycopg2 and insists on a password; trust
    # authentication ignores the one given here.
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    if "@" in plain and ":" not in plain.split("@", 1)[0].removeprefix("postgresql://"):
        plain = plain.replace("@", ":unused@", 1)
    return dlt.destinations.postgres(credentials=plain)
