"""Turning source values into the types of canonical record fields.

Sources hand over strings, integers for booleans, naive timestamps and dates in several
shapes; a value that cannot be read raises ``ValueError`` with what was wrong, which the
connector turns into a reject.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
from collections.abc import Callable
from typing import Any

from gateway.replica.records import Record

Converter = Callable[[Any], Any]
TRUE_WORDS = {"1", "true", "t", "yes", "y"}
FALSE_WORDS = {"0", "false", "f", "no", "n", ""}
# PostgreSQL cannot store a NUL in text: a value holding one makes its row a reject that
# names the place, rather than failing the whole run at the write.
NUL_REFUSED = "a value contains a NUL character"
# MySQL/MariaDB store "no date" as 0000-00-00 (and 0000-00-00 00:00:00), which is no day;
# PyMySQL hands it over as that text.
ZERO_DATE = "0000-00-00"


def to_text(value: Any) -> str | None:
    if value is None:
        return None
    text = _decoded(value).strip() if isinstance(value, bytes) else str(value).strip()
    if "\x00" in text:
        raise ValueError(NUL_REFUSED)
    return text or None


def to_required_text(value: Any) -> str:
    text = to_text(value)
    if text is None:
        raise ValueError("a required value is empty")
    return text


def to_date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    _refuse_zero_date(text)
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def to_datetime(value: Any, zone: dt.tzinfo = dt.timezone.utc) -> dt.datetime | None:
    """An aware UTC datetime; naive source values are taken to be in ``zone``."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        _refuse_zero_date(text)
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a timestamp (ISO 8601)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.timezone.utc)


def _decoded(value: bytes) -> str:
    # Binary columns (MySQL VARBINARY or BLOB, PostgreSQL bytea) holding text, as old schemas do.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("a binary value is not UTF-8 text") from None


def _refuse_zero_date(text: str) -> None:
    if text.startswith(ZERO_DATE):
        raise ValueError(f"{text!r} is a MySQL zero date, not a date (the SIS left it empty)")


def to_cursor(value: Any, zone: dt.tzinfo = dt.timezone.utc) -> dt.datetime | int | None:
    """A modification value: an integer row version stays an integer, anything else is a time."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return to_datetime(value, zone)


def to_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, bytes) and len(value) == 1 and value[0] in (0, 1):
        return bool(value[0])  # a MySQL BIT(1) flag
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False if text else None
    raise ValueError(f"{value!r} is not true or false")


def to_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None


def to_int(value: Any) -> int | None:
    number = to_float(value)
    if number is None:
        return None
    if number != int(number):
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def _required(convert: Converter, kind: str) -> Converter:
    def strict(value: Any) -> Any:
        result = convert(value)
        if result is None:
            raise ValueError(f"a required {kind} is empty")
        return result

    return strict


def _bool_default_false(value: Any) -> bool:
    return bool(to_bool(value))


BY_TYPE: dict[Any, Converter] = {str: to_text, dt.date: to_date, float: to_float, int: to_int, bool: to_bool}


def converters_for(record_type: type[Record]) -> dict[str, Converter]:
    """A converter per field of the record, strict where the field cannot be empty."""
    hints = typing.get_type_hints(record_type)
    result: dict[str, Converter] = {}
    for field in dataclasses.fields(record_type):
        hint = hints[field.name]
        optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
        base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
        if base is dt.datetime:
            continue  # modified_at is read on its own, in the source's zone
        convert = BY_TYPE[base]
        if optional:
            result[field.name] = convert
        elif base is bool:
            result[field.name] = _bool_default_false
        else:
            result[field.name] = to_required_text if base is str else _required(convert, base.__name__)
    return result
