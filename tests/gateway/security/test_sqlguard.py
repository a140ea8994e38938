"""The statement guard: one plain query passes, anything that could write does not."""

from __future__ import annotations

import pytest

from gateway.errors import ReadOnlyViolation
from gateway.security.sqlguard import check_read_only


@pytest.mark.parametrize("statement", [
    "SELECT 1",
    "select s.id, s.given_name from students s where s.source_id = ?",
    "WITH recent AS (SELECT * FROM attendance) SELECT count(*) FROM recent",
    "SELECT 'DELETE FROM students' AS quoted_text",
    'SELECT "update" FROM t',
    "SELECT 1 -- UPDATE in a comment\n",
    "SELECT /* INSERT */ 1",
    "SELECT replace(given_name, 'a', 'b') FROM students",
    "SELECT $$ DROP TABLE x $$",
    "SELECT 1;",
    "SELECT d.comment, d.replace, d.set, d.load, d.security FROM attendance_day d WHERE d.comment IS NOT NULL",
])
def test_plain_queries_pass(statement: str) -> None:
    check_read_only(statement)


@pytest.mark.parametrize("statement", [
    "UPDATE students SET given_name = 'x'",
    "INSERT INTO audit_log (id) VALUES (1)",
    "DELETE FROM students",
    "WITH d AS (DELETE FROM students RETURNING *) SELECT * FROM d",
    "SELECT * INTO stolen FROM students",
    "SELECT 1; DROP TABLE students",
    "SELECT * FROM students FOR UPDATE",
    "PRAGMA writable_schema = 1",
    "SET default_transaction_read_only = off",
    "COMMENT ON TABLE students IS 'x'",
    "LOAD 'plugin'",
    "REPLACE INTO students VALUES (1)",
    "ATTACH DATABASE 'x.db' AS x",
    "CREATE TABLE t (id int)",
    "COPY students TO '/tmp/x'",
    "  ",
    "EXPLAIN ANALYZE DELETE FROM students",
    "SELECT * FROM students /*!50000 INTO OUTFILE '/tmp/x' */",  # MySQL runs executable comments
    "SELECT * FROM students /*M!100000 INTO DUMPFILE '/tmp/x' */",  # and MariaDB its own
])
def test_anything_that_could_write_is_refused(statement: str) -> None:
    with pytest.raises(ReadOnlyViolation) as caught:
        check_read_only(statement)
    assert caught.value.statement == statement
