"""CSV cells a spreadsheet will not run: formula injection neutralised at write time.

A cell starting with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
spreadsheets skip before reading one of those) is taken as a formula when the file is
opened. Such a cell gets a leading apostrophe, as OWASP recommends: shown, never run.
Every CSV the product writes goes through ``write_rows``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """The value to write: text that could start a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_rows(out: TextIO, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    writer = csv.writer(out)
    writer.writerow([neutralise(name) for name in header])
    for row in rows:
        writer.writerow([neutralise(value) for value in row])
