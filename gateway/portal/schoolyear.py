"""School-year calendar arithmetic: calendar dates in the district's time zone."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class SchoolYear:
    """From the configured start (default 1 July) to the day before the next start."""

    first_day: dt.date
    last_day: dt.date

    @property
    def start_year(self) -> int:
        return self.first_day.year

    def __contains__(self, day: dt.date) -> bool:
        return self.first_day <= day <= self.last_day

    def previous(self, start: str = "07-01") -> SchoolYear:
        return school_year_containing(self.first_day - dt.timedelta(days=1), start)


def parse_month_day(start: str) -> tuple[int, int]:
    month, day = (int(part) for part in start.split("-"))
    return month, day


def school_year_containing(day: dt.date, start: str = "07-01") -> SchoolYear:
    month, first = parse_month_day(start)
    this_start = dt.date(day.year, month, first)
    first_day = this_start if day >= this_start else dt.date(day.year - 1, month, first)
    next_start = dt.date(first_day.year + 1, month, first)
    return SchoolYear(first_day, next_start - dt.timedelta(days=1))


def add_years(day: dt.date, years: int) -> dt.date:
    """The same calendar date ``years`` later; 29 February falls on 1 March in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return dt.date(day.year + years, 3, 1)


def eighteenth_birthday(birth_date: dt.date) -> dt.date:
    return add_years(birth_date, 18)


def local_today(zone: dt.tzinfo, pinned: dt.date | None = None) -> dt.date:
    """Today as a calendar date in the district's zone (or the demo/test instance's pin)."""
    return pinned or dt.datetime.now(zone).date()
