"""A statement guard for read-only connections: defence in depth, not the only wall.

The database refuses writes on its own (SQLite ``mode=ro``, PostgreSQL read-only
transactions, a SELECT-only role); this guard stops a write before it is even sent.
It reads the statement's words outside strings, quoted names and comments: the first
must start a query, no word may be one that writes or changes the session, and there
must be one statement only. A function that writes (``SELECT f()``) cannot be seen
here; that is what the read-only transaction is for.

This word list guards the replica's web engine, whose statements SQLAlchemy writes. SIS
sources, whose queries come from mapping files, are parsed instead
(``gateway.security.sqltree``): a word list misreads quoting it does not model and
refuses columns named ``comment`` or ``set``.
"""

from __future__ import annotations

import re

from gateway.errors import ReadOnlyViolation

QUERY_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
# Words refused anywhere in the statement: each can write from inside a query (a
# data-modifying CTE, SELECT ... INTO, FOR UPDATE) or follows a statement start.
# Words that can only begin a statement (COMMENT ON, SET, RESET, LOAD, REPLACE INTO,
# SECURITY LABEL) are not here: the first word must start a query and there is one
# statement, so inside a query they are names (a column called ``comment``).
WRITING_WORDS = frozenset({
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "CREATE", "DROP", "ALTER",
    "TRUNCATE", "GRANT", "REVOKE", "COPY", "CALL", "DO", "EXECUTE", "EXEC", "VACUUM",
    "ANALYZE", "REINDEX", "CLUSTER", "ATTACH", "DETACH", "PRAGMA", "LOCK",
    "REFRESH", "LISTEN", "NOTIFY", "PREPARE", "INTO", "IMPORT",
})

_SKIPPED = re.compile(
    r"""
      --[^\n]*                      # line comment
    | /\*(?!M?!).*?\*/               # block comment (MySQL runs /*! ... */ and /*M! ... */ as code)
    | [Ee]?'(?:[^']|'')*'           # string literal
    | "(?:[^"]|"")*"                # quoted identifier
    | `[^`]*`                       # MySQL-style quoted identifier
    | \[[^\]]*\]                    # SQL Server-style quoted identifier
    | (\$[A-Za-z_0-9]*\$).*?\1      # PostgreSQL dollar quoting
    """,
    re.VERBOSE | re.DOTALL,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|;")


def check_read_only(statement: str) -> None:
    """Raise ``ReadOnlyViolation`` unless the statement is one plain query."""
    stripped = _SKIPPED.sub(" ", statement)
    tokens = [(m.group().upper(), m.end()) for m in _WORD.finditer(stripped)]
    words = [word for word, _ in tokens]
    if not words or words[0] not in QUERY_STARTS:
        raise ReadOnlyViolation(statement, "only SELECT queries are allowed")
    if ";" in words[:-1]:
        raise ReadOnlyViolation(statement, "one statement at a time")
    for word, _end in tokens:
        if word in WRITING_WORDS:
            raise ReadOnlyViolation(statement, f"{word} is not a read")
