"""The district's sanitization policy: it may only tighten what the schema fixes.

The canonical schema decides how each column is stored (plain, encrypted, blind index);
a policy may only drop a column (store it empty) that the portal can do without. A policy
naming an unknown column, loosening one ("plain" for an encrypted column), or dropping a
column a row cannot exist without, stops the run before anything is read.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from gateway.replica.dbtypes import ENCRYPTED, PLAIN
from gateway.errors import ConfigError
from gateway.replica.schema import canonical_tables, storage

DROP = "drop"


@dataclass(frozen=True)
class SanitizePolicy:
    source: str
    dropped: frozenset[tuple[str, str]]

    def keeps(self, table: str, column: str) -> bool:
        return (table, column) not in self.dropped

    def storage_of(self, table: str, column: str) -> str:
        """The column's class under this policy: plain, encrypted, blind_index, ... or dropped."""
        if (table, column) in self.dropped:
            return DROP
        return storage(canonical_tables()[table].columns[column])


def load_policy(path: str | Path | None = None) -> SanitizePolicy:
    """The policy at ``path``, or the shipped default (which drops nothing)."""
    if path:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("sync.sanitize_policy", f"cannot read {path} ({exc.strerror})", "fix the path") from None
    else:
        source = "gateway.config/sanitize.toml"
        text = files("gateway.config").joinpath("sanitize.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"is not valid TOML ({exc})", "fix the file") from None
    return SanitizePolicy(source, frozenset(_checked(source, data.get("columns", {}))))


def _checked(source: str, columns: dict[str, object]) -> list[tuple[str, str]]:
    tables = canonical_tables()
    dropped = []
    for name, wanted in columns.items():
        key = f"{source}: columns.{name}"
        table_name, _, column_name = name.partition(".")
        table = tables.get(table_name)
        if table is None or column_name not in table.columns:
            raise ConfigError(key, "is not a canonical column", "write TABLE.COLUMN as in DESIGN.md")
        column = table.columns[column_name]
        kind = storage(column)
        if wanted == kind:
            continue  # restating the schema changes nothing
        if wanted != DROP:
            raise ConfigError(key, f"cannot be stored as {wanted!r}: the schema stores it {kind}",
                              "a policy may only drop columns")
        if kind not in (PLAIN, ENCRYPTED) or not column.nullable:
            raise ConfigError(key, "cannot be dropped: a row cannot exist without it", "remove this line")
        dropped.append((table_name, column_name))
    return dropped
