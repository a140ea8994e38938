"""Mapping queries parsed in the source's dialect: one plain read passes, anything else does not."""

from __future__ import annotations

import pytest
from sqlglot import exp

from gateway.errors import ReadOnlyViolation
from gateway.security.sqltree import parse_query, statement_guard, to_sql, wrapped

READ = "SELECT CAST(pupil_id AS TEXT) AS source_id, first_name AS given_name, last_name AS family_name"
BREAKOUT = ") src; COMMIT; BEGIN READ WRITE; DELETE FROM pupils; COMMIT; --"


@pytest.mark.parametrize("dialect", ["postgres", "sqlite", "mysql", "tsql", "oracle"])
@pytest.mark.parametrize("column", ["comment", "replace", "set", "load", "security"])
def test_a_column_named_like_a_keyword_is_a_column(dialect: str, column: str) -> None:
    tree = parse_query(f"SELECT {column} AS given_name, t.{column} FROM t WHERE {column} IS NOT NULL", dialect)
    assert [c.name for c in tree.find_all(exp.Column)] == [column, column, column]
    again = parse_query(to_sql(tree, dialect), dialect)  # generated back (quoted where the dialect needs it)
    assert [c.name for c in again.find_all(exp.Column)] == [column, column, column]


@pytest.mark.parametrize("query", [
    f"{READ} FROM pupils",
    f"WITH p AS (SELECT * FROM pupils) {READ} FROM p",
    f"{READ} FROM pupils UNION ALL {READ} FROM alumni",
    "SELECT replace(first_name, 'a', 'b') AS given_name, E'\\'' AS q, $x$ ) x; DELETE $x$ AS d, a$b FROM pupils",
    'SELECT "a""b" AS c FROM pupils /* /* nested */ DELETE FROM pupils */',
    "SELECT COALESCE(updated_at, created_at) AS modified_at, upper(last_name), count(*) OVER () FROM pupils",
    "SELECT DISTINCT ON (a) a, EXTRACT(YEAR FROM d) AS y, NULLIF(b, '') AS b, data->>'email' AS email, "
    "ROW_NUMBER() OVER (PARTITION BY a ORDER BY b DESC NULLS LAST) AS rn FROM t ORDER BY a, b",
    "SELECT string_agg(a, ',' ORDER BY a), percentile_cont(0.5) WITHIN GROUP (ORDER BY a), "
    "COUNT(*) FILTER (WHERE a > 1) FROM t LEFT JOIN u USING (id) GROUP BY ROLLUP(b) HAVING count(*) > 1",
    "SELECT a FROM t WHERE d >= CURRENT_DATE - INTERVAL '30 days' AND a ~ '^x' AND c IS DISTINCT FROM d "
    "AND EXISTS (SELECT 1 FROM u WHERE u.id = t.id) FETCH FIRST 10 ROWS ONLY",
    "SELECT U&'d\\0061ta' AS a, B'101' AS b, X'1F' AS c, N'abc' AS d FROM t TABLESAMPLE SYSTEM (10)",
])
def test_plain_reads_in_postgresql_pass(query: str) -> None:
    parse_query(query, "postgres")


def test_what_is_sent_is_the_tree_without_its_comments() -> None:
    tree = parse_query("SELECT 1 AS x /* a comment ) x; DELETE */ -- and another\n", "postgres")
    assert to_sql(tree, "postgres") == "SELECT 1 AS x"


def test_the_incremental_query_wraps_the_tree_as_a_subquery_with_a_bound_cursor() -> None:
    tree = parse_query("SELECT a AS source_id, b AS modified_at FROM t WHERE c = 'at :noon'", "postgres")
    assert wrapped(tree, "postgres", "src.modified_at >= :since") == (
        "SELECT * FROM (SELECT a AS source_id, b AS modified_at FROM t WHERE c = 'at \\:noon') src "
        "WHERE src.modified_at >= :since")


HOSTILE = {
    "data-modifying CTE": f"WITH d AS (DELETE FROM pupils RETURNING pupil_id) {READ} FROM d",
    "updating CTE": f"WITH u AS (UPDATE pupils SET first_name = 'x' RETURNING *) {READ} FROM u",
    "inserting CTE": f"WITH i AS (INSERT INTO pupils (pupil_id) VALUES (9) RETURNING *) {READ} FROM i",
    "nested CTE": f"{READ} FROM (WITH d AS (DELETE FROM pupils RETURNING *) SELECT * FROM d) AS x",
    "merge": "MERGE INTO pupils USING other ON true WHEN MATCHED THEN DELETE",
    "breakout": f"{READ} FROM pupils {BREAKOUT}",
    "E-string breakout": f"{READ} FROM pupils WHERE first_name <> E'\\'' {BREAKOUT}'",
    "standard string breakout": f"{READ} FROM pupils WHERE first_name <> 'a\\' {BREAKOUT}'",
    "dollar-identifier breakout": f"{READ}, first_name AS given$x$ FROM pupils {BREAKOUT} $x$",
    "tagged dollar breakout": f"{READ} FROM pupils WHERE first_name <> $x$ $y$ $x$ {BREAKOUT} $y$",
    "doubled-quote breakout": f'{READ}, first_name AS "a""" FROM pupils {BREAKOUT} "',
    "nested comment breakout": f"{READ} FROM pupils /* /* */ */ {BREAKOUT}",
    "two statements": f"{READ} FROM pupils; DELETE FROM pupils",
    "set_config": f"{READ}, set_config('default_transaction_read_only', 'off', false) AS x FROM pupils",
    "qualified set_config": f"{READ}, pg_catalog.set_config('a', 'b', false) AS x FROM pupils",
    "advisory lock": f"{READ}, pg_advisory_lock(1) AS x FROM pupils",
    "lo_import": f"{READ}, lo_import('/etc/passwd') AS x FROM pupils",
    "dblink_exec": f"{READ}, dblink_exec('dbname=sis', 'DELETE FROM pupils') AS x FROM pupils",
    "nextval": f"{READ}, nextval('pupils_seq') AS x FROM pupils",
    "a file on the server": f"{READ} FROM read_csv('/etc/passwd')",
    "user-defined function": f"{READ}, bump_everything() AS x FROM pupils",
    "schema-qualified built-in name": f"{READ}, public.upper(first_name) AS x FROM pupils",
    "for update": f"{READ} FROM pupils FOR UPDATE",
    "for share": f"{READ} FROM pupils FOR SHARE",
    "for no key update": f"{READ} FROM pupils FOR NO KEY UPDATE",
    "select into": f"{READ} INTO stolen FROM pupils",
    "update": "UPDATE pupils SET first_name = 'x'",
    "copy": "COPY (SELECT 1) TO PROGRAM 'rm -rf /'",
    "call": "CALL bump_everything()",
    "set": "SET default_transaction_read_only = off",
    "commit": "COMMIT",
    "do": "DO $$ BEGIN DELETE FROM pupils; END $$",
    "explain analyze": "EXPLAIN ANALYZE DELETE FROM pupils",
    "create": "CREATE TABLE stolen AS SELECT * FROM pupils",
    "truncate": "TRUNCATE pupils",
    "a bound parameter": f"{READ} FROM pupils WHERE pupil_id = :id",
    "nothing": "  -- only a comment",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_anything_but_one_plain_read_is_refused_naming_the_stream(name: str) -> None:
    with pytest.raises(ReadOnlyViolation) as caught:
        parse_query(HOSTILE[name], "postgres", "mapping evil: streams.students.query")
    assert caught.value.reason.startswith("mapping evil: streams.students.query: ")
    assert caught.value.statement == HOSTILE[name]


def test_an_unreadable_query_is_refused_with_its_position() -> None:
    with pytest.raises(ReadOnlyViolation) as caught:
        parse_query("SELECT a,\n  FROM pupils WHERE (", "postgres", "mapping m: streams.students.query")
    assert "streams.students.query: cannot be read at line 2, column" in caught.value.reason


@pytest.mark.parametrize("query", [
    f"{READ} FROM pupils; DELETE FROM pupils",
    f"{READ}, load_extension('/tmp/evil.so') AS x FROM pupils",
    f"{READ}, writefile('/tmp/x', first_name) AS x FROM pupils",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "PRAGMA writable_schema = 1",
    f"WITH d AS (DELETE FROM pupils RETURNING *) {READ} FROM d",
    "REPLACE INTO pupils (pupil_id) VALUES (1)",
    f"{READ} FROM pupils WHERE first_name <> 'it''s' {BREAKOUT}'",
])
def test_sqlite_forms_that_write_are_refused(query: str) -> None:
    with pytest.raises(ReadOnlyViolation):
        parse_query(query, "sqlite")


def test_the_statement_guard_passes_compiled_reads_with_binds_and_nothing_else() -> None:
    guard = statement_guard("postgres", frozenset({"SHOW GRANTS"}))
    guard("SELECT * FROM (SELECT a AS source_id FROM t) src WHERE src.modified_at >= %(since)s")
    guard("SHOW GRANTS")  # a catalogue query of the login check, trusted verbatim
    with pytest.raises(ReadOnlyViolation):
        guard("SELECT 1; DELETE FROM t")
    with pytest.raises(ReadOnlyViolation):
        guard("SHOW GRANTS; DELETE FROM t")


@pytest.mark.parametrize("query", [
    "SELECT id FROM kids /*!50000 ; DELETE FROM kids */",
    "SELECT id FROM kids /*M!100000 ; DELETE FROM kids */",
    "SELECT id FROM kids /*! INTO OUTFILE '/tmp/x' */",
])
def test_a_mysql_executable_comment_is_refused_as_the_code_it_hides(query: str) -> None:
    with pytest.raises(ReadOnlyViolation, match="executable comment"):
        parse_query(query, "mysql", "mapping m: streams.students.query")
    with pytest.raises(ReadOnlyViolation, match="executable comment"):
        statement_guard("mysql", frozenset())(query)


def test_double_pipes_in_a_mysql_mapping_concatenate_as_in_standard_sql() -> None:
    sent = to_sql(parse_query("SELECT id || '-' || name AS label, a OR b AS flag FROM kids", "mysqlpipes"), "mysqlpipes")
    assert sent == "SELECT CONCAT(id, '-', name) AS label, a OR b AS flag FROM kids"
