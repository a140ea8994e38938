"""Source queries parsed, not pattern-matched: the first wall of the SQL connector.

A mapping's query is parsed with sqlglot in the source's dialect. It must be exactly
one statement, a SELECT (or a set operation of SELECTs, with or without WITH), and
every node of its tree must be on an allowlist of node types that only read: anything
else (INSERT/UPDATE/DELETE/MERGE anywhere, including inside a CTE; INTO; FOR UPDATE or
FOR SHARE; DDL, COPY, CALL, SET, COMMIT and whatever sqlglot reads as a command) is
refused, whether or not it is named here. Functions: any function sqlglot knows as a
typed built-in (``upper``, ``coalesce``, ``max``…) is a read, except the few that are
not (``NEXT VALUE FOR``, reading or writing files); a function the parser does not know (a user-defined one,
``set_config``, ``pg_advisory_lock``, ``dblink_exec``, ``nextval``, ``load_extension``)
is refused unless it is on ``READ_ONLY_FUNCTIONS``, and so is any schema-qualified
call, because a function can write (even on another connection, which no read-only
transaction stops) and the parser cannot see inside it. One gap is left to the
read-only session: a function the SIS itself defines under a name sqlglot knows as a
built-in (of any dialect) passes; PostgreSQL, Oracle and MySQL's read-only sessions stop
it writing, SQL Server functions cannot write, and SQLite files hold no functions.

What is sent is never the mapping's text: the tree is generated back into SQL (without
comments), so the server runs what was checked, and the incremental and probe queries
wrap that tree as a subquery with bound parameters (``:since``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from gateway.errors import ReadOnlyViolation, UnknownPlugin



class MySQLPipes(MySQL):  # registered with sqlglot as "mysqlpipes"
    """MySQL as the gateway's source sessions speak it: ``sql_mode`` has ``PIPES_AS_CONCAT``.

    Plain MySQL reads ``a || b`` as OR; a mapping written in standard SQL means
    concatenation, so it is parsed as that and sent as ``CONCAT(a, b)``, which means the
    same on every server whatever its ``sql_mode``.
    """

    class Parser(MySQL.Parser):  # type: ignore[name-defined,misc,valid-type]  # sqlglot declares it as a variable
        DISJUNCTION = {token: kind for token, kind in MySQL.Parser.DISJUNCTION.items() if token != TokenType.DPIPE}

        def _parse_bitwise(self) -> exp.Expr | None:
            this = super()._parse_bitwise()
            while self._match(TokenType.DPIPE):
                this = self.expression(exp.DPipe(this=this, expression=super()._parse_bitwise(), safe=False))
            return this


# SQLAlchemy dialect name -> sqlglot dialect name.
DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite", "mysql": "mysqlpipes", "mariadb": "mysqlpipes",
            "mssql": "tsql", "oracle": "oracle"}

# Node types that only read. A node of any other type is refused: an allowlist, so a form
# nobody thought of is refused rather than passed.
READING_NODES: frozenset[type[exp.Expression]] = frozenset({
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.With, exp.CTE, exp.From, exp.Join,
    exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset, exp.Fetch, exp.Distinct,
    exp.Table, exp.TableAlias, exp.Column, exp.Identifier, exp.Star, exp.Alias, exp.Literal, exp.Null,
    exp.Boolean, exp.ByteString, exp.RawString, exp.National, exp.HexString, exp.BitString, exp.UnicodeString,
    exp.Cast, exp.TryCast,
    exp.DataType, exp.DataTypeParam, exp.Paren, exp.Tuple, exp.Case, exp.If, exp.Interval, exp.Var,
    exp.Bracket, exp.Array, exp.Window, exp.WindowSpec, exp.Filter, exp.Values, exp.Collate, exp.Escape,
    exp.Exists, exp.Any, exp.All, exp.Between, exp.In, exp.Is, exp.Like, exp.ILike, exp.SimilarTo,
    exp.Not, exp.Neg, exp.BitwiseNot, exp.And, exp.Or, exp.Xor, exp.EQ, exp.NEQ, exp.NullSafeEQ,
    exp.NullSafeNEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv,
    exp.Mod, exp.DPipe, exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseLeftShift,
    exp.BitwiseRightShift, exp.AtTimeZone, exp.Placeholder, exp.Slice, exp.Lateral, exp.Unnest,
    exp.Rollup, exp.Cube, exp.GroupingSets, exp.TableSample, exp.LimitOptions, exp.WithinGroup,
    exp.IgnoreNulls, exp.RespectNulls, exp.Glob, exp.JSONPath,
    exp.Dot, exp.Anonymous,  # both checked further below
})
# Typed built-ins that are not plain reads: a sequence step, files on the server.
REFUSED_BUILTINS: frozenset[type[exp.Expression]] = frozenset({exp.NextValueFor, exp.ReadCSV, exp.ReadParquet,
                                                              exp.ToFile})
# Functions sqlglot does not know by type but that only read (lower-case names).
READ_ONLY_FUNCTIONS = frozenset({"btrim", "initcap", "lpad", "rpad", "split_part", "to_char", "to_date",
                                 "date_part", "age", "justify_days", "ifnull", "nvl", "strftime", "julianday", "printf",
                                 "format"})
# Named only so the refusal says why; they are refused as unknown functions in any case.
KNOWN_WRITERS = frozenset({"set_config", "pg_advisory_lock", "pg_advisory_xact_lock", "pg_try_advisory_lock",
                           "lo_import", "lo_export", "lo_unlink", "dblink", "dblink_exec", "nextval", "setval",
                           "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "load_extension",
                           "writefile", "readfile", "pg_read_file", "pg_notify", "txid_current"})
_BIND = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")


def sqlglot_dialect(sqlalchemy_dialect: str) -> str:
    """The sqlglot dialect for a SQLAlchemy dialect name (``postgresql`` -> ``postgres``)."""
    if sqlalchemy_dialect not in DIALECTS:
        raise UnknownPlugin("SQL dialect for the query parser", sqlalchemy_dialect, DIALECTS)
    return DIALECTS[sqlalchemy_dialect]


EXECUTABLE_COMMENT = re.compile(r"/\*M?!")


def parse_query(sql: str, dialect: str, where: str = "query", binds: bool = False) -> exp.Query:
    """One read-only query, parsed in ``dialect`` (a sqlglot name); ``where`` names it in errors.

    ``binds``: whether bound parameters may appear (in statements the gateway compiled,
    not in a mapping, whose query takes none).
    """
    if dialect.startswith("mysql") and EXECUTABLE_COMMENT.search(sql):
        # MySQL and MariaDB run what is inside /*! … */ and /*M! … */: a parser that reads
        # them as comments would pass code it never saw.
        raise ReadOnlyViolation(sql, f"{where}: a MySQL executable comment (/*! … */) hides code the parser "
                                     "cannot check; write the query as plain SQL")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise ReadOnlyViolation(sql, f"{where}: cannot be read at line {first.get('line', '?')}, column "
                                     f"{first.get('col', '?')} ({first.get('description', exc)})") from None
    except TokenError as exc:
        raise ReadOnlyViolation(sql, f"{where}: cannot be read ({exc}); check its quotes and comments") from None
    if len(statements) != 1:
        raise ReadOnlyViolation(sql, f"{where}: {len(statements)} statements; give exactly one SELECT")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, exp.SetOperation)):
        raise ReadOnlyViolation(sql, f"{where}: a {tree.key.upper()} statement; only SELECT (or WITH … SELECT) reads")
    for node in tree.walk():
        if isinstance(node, exp.Placeholder) and not binds:
            raise ReadOnlyViolation(sql, f"{where}: a bound parameter ({node.sql(dialect=dialect)}); a mapping takes none")
        _check_node(node, sql, where, dialect)
    return tree


def _check_node(node: exp.Expr, sql: str, where: str, dialect: str) -> None:
    kind = type(node)
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name not in READ_ONLY_FUNCTIONS:
            why = "writes" if name in KNOWN_WRITERS else "is not known to read only"
            raise ReadOnlyViolation(sql, f"{where}: the function {node.name}() {why}; "
                                         "select plain columns and built-in functions")
        return
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        raise ReadOnlyViolation(sql, f"{where}: a schema-qualified function call ({_fragment(node, dialect)}) "
                                     "may run code that writes")
    if kind not in REFUSED_BUILTINS and (kind in READING_NODES or isinstance(node, (exp.Func, exp.JSONPathPart))):
        return  # a reading node, or a typed built-in: upper(), coalesce(), max(), …
    raise ReadOnlyViolation(sql, f"{where}: {kind.__name__.upper()} ({_fragment(node, dialect)}) is not part of "
                                 "a plain read")


def _fragment(node: exp.Expr, dialect: str) -> str:
    try:
        text = node.sql(dialect=dialect, comments=False)
    except Exception:  # noqa: BLE001 - a node the generator cannot render is still refused
        text = node.key
    return " ".join(text.split())[:80]


def to_sql(tree: exp.Expr, dialect: str) -> str:
    """The checked tree as SQL in ``dialect``: what the server will run, comments dropped."""
    return tree.sql(dialect=dialect, comments=False)


def as_text_clause(sql: str) -> str:
    """Generated SQL made safe for SQLAlchemy ``text()``: a ``:word`` inside it is not a bind."""
    return _BIND.sub(r"\\:\1", sql)


def wrapped(tree: exp.Query, dialect: str, where_sql: str) -> str:
    """``SELECT * FROM (<tree>) src WHERE <where_sql>``, for ``text()``; ``where_sql`` holds binds only.

    The alias has no ``AS``: that is the one spelling every dialect reads (Oracle has no
    ``AS`` for tables).
    """
    return f"SELECT * FROM ({as_text_clause(to_sql(tree, dialect))}) src WHERE {where_sql}"


def statement_guard(dialect: str, trusted: frozenset[str] = frozenset()) -> Callable[[str], None]:
    """A check for every statement a source engine sends: each must parse as one read.

    ``trusted``: the gateway's own catalogue queries (the login check), sent verbatim.
    """

    def check(statement: str) -> None:
        if statement not in trusted:
            parse_query(statement, dialect, "statement", binds=True)

    return check
