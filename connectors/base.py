"""The connector contract: declared streams and one way to read them.

A connector only reads and yields. It holds no sync state: the engine passes the cursor
in as ``since`` and decides what to store. Everything a connector yields is a canonical
record, a tombstone, a key change (a row's source id moving, before the stream's records)
or a reject; raw source rows never leave it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gateway.errors import ConfigError
from gateway.replica.records import RECORD_TYPES, KeyChange, Record, Reject, Tombstone
from gateway.settings import ConnectorSettings

Item = Record | Tombstone | Reject | KeyChange


@dataclass(frozen=True)
class StreamSpec:
    """One stream: the canonical table it fills and how it may be read.

    - ``incremental``: the stream honours ``since`` (records carry ``modified_at``).
    - ``complete_each_run``: always listed in full, so every run can delete what
      vanished (access-critical links and enrolments of sources that can list them).
    - ``delta_only``: the source only ever sends changes, with tombstones (a delta
      file); what is absent is unchanged, never deleted.
    """

    name: str
    table: str
    incremental: bool = False
    complete_each_run: bool = False
    delta_only: bool = False
    key: str = "source_id"

    @property
    def record_type(self) -> type[Record]:
        return RECORD_TYPES[self.table]


@runtime_checkable
class Connector(Protocol):
    """What the sync engine needs of a source."""

    name: str
    source_system: str

    @property
    def streams(self) -> tuple[StreamSpec, ...]: ...

    def iter_records(self, stream: str, since: dt.datetime | int | None) -> Iterator[Item]:
        """Yield the stream's records (from ``since`` on, inclusive, when given).

        With ``since``, also every record whose modification time is unknown (NULL): the
        rule of ``sync.cursors`` (such rows are read by every incremental run, never lost).
        """
        ...

    def unmapped_fields(self) -> Mapping[str, Counter[str]]:
        """Per stream, the source fields seen and not mapped, by name, with counts."""
        ...

    def close(self) -> None: ...


def payload_hash(*parts: object) -> str:
    """A fingerprint of a rejected row, so it can be found again without storing it."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


def stream_named(streams: tuple[StreamSpec, ...], name: str) -> StreamSpec:
    from gateway.errors import UnknownPlugin

    for spec in streams:
        if spec.name == name:
            return spec
    raise UnknownPlugin("stream", name, (s.name for s in streams))


def checked_options(entry: ConnectorSettings, allowed: set[str], required: tuple[str, ...]) -> dict[str, Any]:
    """A connector's own keys: unknown ones and missing required ones are refused by name."""
    options = dict(entry.options)
    unknown = set(options) - allowed
    if unknown:
        raise ConfigError(f"connectors.{entry.name}.{sorted(unknown)[0]}", "unknown key",
                          f"a {entry.kind} connector takes {', '.join(sorted(allowed))}")
    for key in required:
        if not options.get(key):
            raise ConfigError(f"connectors.{entry.name}.{key}", "is missing", "see gateway.example.toml")
    return options


def guardian_portal_access(entry: ConnectorSettings, options: dict[str, Any]) -> bool:
    """OneRoster has no educational-rights flag: the configuration must say, with no default."""
    value = options.get("guardian_portal_access")
    if not isinstance(value, bool):
        raise ConfigError(f"connectors.{entry.name}.guardian_portal_access", "must be true or false",
                          "OneRoster has no educational-rights flag: say whether its guardian links grant portal access")
    return value
