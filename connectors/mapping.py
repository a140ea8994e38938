"""SQL mapping files: per canonical table, the SELECT that reads it from a source schema.

A mapping is TOML. Each ``[streams.NAME]`` gives ``table`` (canonical), ``query`` (one
SELECT whose columns are named after the canonical record's fields: ``source_id`` and
the table's columns; ``modified_at`` too when ``incremental``), ``tables`` (the source
tables it reads, for the auditors' report of unmapped fields) and ``complete_each_run``
for access-critical streams. One stream per table. A query may select nothing else:
the connector refuses a non-canonical column before it reads a row, so no mapping can
carry an SSN into a record.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.replica.records import RECORD_TYPES

from connectors.base import StreamSpec

STREAM_KEYS = {"table", "query", "tables", "incremental", "complete_each_run"}


@dataclass(frozen=True)
class StreamQuery:
    spec: StreamSpec
    query: str
    tables: tuple[str, ...]


@dataclass(frozen=True)
class Mapping:
    name: str
    description: str
    streams: tuple[StreamQuery, ...]


def shipped_mappings() -> list[str]:
    folder = files("gateway.config").joinpath("mappings")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_mapping(name_or_path: str) -> Mapping:
    """A shipped mapping by name (``demo``, ``rosariosis``) or a TOML file by path."""
    key = f"mapping {name_or_path}"
    if name_or_path in shipped_mappings():
        text = files("gateway.config").joinpath("mappings", f"{name_or_path}.toml").read_text(encoding="utf-8")
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(key, "is neither a shipped mapping nor a file",
                              f"shipped mappings: {', '.join(shipped_mappings())}")
        text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(key, f"is not valid TOML ({exc})", "fix the file") from None
    streams = tuple(_stream(key, name, body) for name, body in data.get("streams", {}).items())
    tables = [stream.spec.table for stream in streams]
    for table in set(tables):
        if tables.count(table) > 1:
            raise ConfigError(key, f"has two streams for {table}", "read it in one query (UNION ALL)")
    if not streams:
        raise ConfigError(key, "declares no [streams.NAME]", "add one per canonical table it reads")
    return Mapping(str(data.get("name", name_or_path)), str(data.get("description", "")), streams)


def _stream(key: str, name: str, body: dict[str, Any]) -> StreamQuery:
    where = f"{key}: streams.{name}"
    unknown = set(body) - STREAM_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown key", f"valid keys: {', '.join(sorted(STREAM_KEYS))}")
    table = body.get("table")
    if table not in RECORD_TYPES:
        raise ConfigError(f"{where}.table", f"{table!r} is not a canonical table", f"use one of {', '.join(RECORD_TYPES)}")
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        raise ConfigError(f"{where}.query", "is missing", "give the SELECT that reads this table")
    spec = StreamSpec(name=name, table=table, incremental=bool(body.get("incremental", False)),
                      complete_each_run=bool(body.get("complete_each_run", False)))
    return StreamQuery(spec, body["query"], tuple(body.get("tables", ())))
