"""What a OneRoster source tells the run summary: unknown columns, dropped values, odd dates.

Nothing here changes a record; it only keeps counts and the first few positions
(``users.csv line 7``), never values, so a summary can say what was read with less than
full confidence without repeating anything sensitive.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FIRST = 5  # positions kept per warning
# The columns the standard defines per file (1.1 and 1.2 together), lower-cased.
STANDARD = {
    "orgs": "sourcedid status datelastmodified name type identifier parentsourcedid",
    "academicsessions": "sourcedid status datelastmodified title type startdate enddate parentsourcedid schoolyear",
    "courses": "sourcedid status datelastmodified schoolyearsourcedid title coursecode grades orgsourcedid subjects "
               "subjectcodes resourcesourcedids",
    "classes": "sourcedid status datelastmodified title grades coursesourcedid classcode classtype location "
               "schoolsourcedid termsourcedids subjects subjectcodes periods resourcesourcedids",
    "users": "sourcedid status datelastmodified enableduser orgsourcedids role username userids givenname familyname "
             "middlename identifier email sms phone agentsourcedids grades password usermasteridentifier "
             "resourcesourcedids preferredgivenname preferredmiddlename preferredfamilyname primaryorgsourcedid pronouns",
    "roles": "sourcedid status datelastmodified usersourcedid roletype role begindate enddate orgsourcedid "
             "userprofilesourcedid",
    "userprofiles": "sourcedid status datelastmodified usersourcedid profiletype vendorid applicationid description "
                    "credentialtype username password",
    "enrollments": "sourcedid status datelastmodified classsourcedid schoolsourcedid usersourcedid role primary "
                   "begindate enddate",
    "demographics": "sourcedid status datelastmodified birthdate sex americanindianoralaskanative asian "
                    "blackorafricanamerican nativehawaiianorotherpacificislander white demographicracetwoormoreraces "
                    "hispanicorlatinoethnicity countryofbirthcode stateofbirthabbreviation cityofbirth "
                    "publicschoolresidencestatus",
    "categories": "sourcedid status datelastmodified title weight",
    "lineitems": "sourcedid status datelastmodified title description assigndate duedate classsourcedid "
                 "categorysourcedid gradingperiodsourcedid academicsessionsourcedid schoolsourcedid resultvaluemin "
                 "resultvaluemax scorescalesourcedid learningobjectivesetsourcedids",
    "results": "sourcedid status datelastmodified lineitemsourcedid studentsourcedid classsourcedid scorescalesourcedid "
               "scorestatus score textscore scoredate comment learningobjectivesetsourcedids inprogress incomplete "
               "late missing",
}
DATE_COLUMNS = {"startdate": "startDate", "enddate": "endDate", "begindate": "beginDate", "birthdate": "birthDate",
                "assigndate": "assignDate", "duedate": "dueDate", "scoredate": "scoreDate"}
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?")


@dataclass
class Positions:
    """A count and the first few positions of one kind of event."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, position: str) -> None:
        self.count += 1
        if len(self.first) < FIRST:
            self.first.append(position)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "first": list(self.first)}


class FileNotes:
    """One full read of one file: its unknown columns and the values they (or blank ones) held."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.unknown: list[str] = []
        self.dropped: dict[str, Positions] = {}

    def header(self, names: list[str]) -> None:
        known = STANDARD.get(self.file.lower())
        self.unknown = [] if known is None else [n for n in names if n and n not in known.split()]

    def row(self, position: str, header: list[str], values: list[str]) -> None:
        """Count a value that no column keeps: under an unknown column or a blank one."""
        for index, value in enumerate(values):
            if not value.strip():
                continue
            name = header[index] if index < len(header) else ""
            if not name or name in self.unknown:
                label = f"{self.file}.csv {name or f'column {index + 1} (no header)'}"
                self.dropped.setdefault(label, Positions()).add(position)


def nonstandard_date(value: str | None) -> bool:
    """A date present but not in the standard's ``YYYY-MM-DD`` (or ISO-8601) form."""
    return bool(value and value.strip()) and not ISO_DATE.fullmatch(value.strip())  # type: ignore[union-attr]


def dates_in(row: dict[str, str]) -> list[str]:
    """The row's date columns whose value is not in the standard's form, by their standard name."""
    return [label for column, label in DATE_COLUMNS.items() if nonstandard_date(row.get(column))]


def merged_duplicates(counts: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {f"{file}.csv": {"identical": c["identical"], "conflicting": c["conflicting"]}
            for file, c in sorted(counts.items()) if c["identical"] or c["conflicting"]}
