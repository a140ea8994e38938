"""The ``oneroster-csv`` connector: a OneRoster 1.1 or 1.2 CSV bundle, folder or zip.

The manifest decides which files are read and whether each is a bulk snapshot (the whole
truth: what is missing is gone) or a delta (changes and ``tobedeleted`` tombstones).
Headers are matched by name, case-insensitively; a BOM and unknown or blank columns are
tolerated (unknown ones reported by name). A bad row becomes a reject naming its file and
line; a bad file (no manifest, not UTF-8, a truncated zip) stops with a clear error.
No ``password`` column is ever read into a record.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

from gateway.errors import ConfigError, GatewayError
from gateway.records import Record, Reject, Tombstone
from gateway.settings import ConnectorSettings, Settings

from connectors import oneroster as one
from connectors.base import Item, StreamSpec, payload_hash, stream_named

OPTION_KEYS = {"path", "guardian_portal_access"}
# Stream: (canonical table, the file it is read from; 1.2 reads school memberships from roles).
STREAMS = {
    "schools": ("schools", "orgs"), "terms": ("terms", "academicSessions"), "courses": ("courses", "courses"),
    "sections": ("sections", "classes"), "section_terms": ("section_terms", "classes"),
    "students": ("students", "users"), "guardians": ("guardians", "users"),
    "student_guardians": ("student_guardians", "users"), "enrollments": ("enrollments", "users"),
    "section_enrollments": ("section_enrollments", "enrollments"),
    "assignments": ("assignments", "lineItems"), "scores": ("scores", "results"),
}
USED = {  # the columns each file's mappings read; any other is reported as unmapped
    "orgs": "sourcedid status datelastmodified name type identifier parentsourcedid",
    "academicSessions": "sourcedid status datelastmodified title type startdate enddate parentsourcedid schoolyear",
    "courses": "sourcedid status datelastmodified title coursecode subjects orgsourcedid",
    "classes": "sourcedid status datelastmodified title coursesourcedid schoolsourcedid classcode periods location termsourcedids",
    "users": "sourcedid status datelastmodified enableduser orgsourcedids role givenname familyname middlename identifier "
             "email sms phone agentsourcedids grades preferredgivenname primaryorgsourcedid",
    "roles": "sourcedid status datelastmodified usersourcedid roletype role begindate enddate orgsourcedid",
    "enrollments": "sourcedid status datelastmodified classsourcedid usersourcedid role primary begindate enddate",
    "lineItems": "sourcedid status datelastmodified classsourcedid title gradingperiodsourcedid categorysourcedid "
                 "assigndate duedate resultvaluemax",
    "results": "sourcedid status datelastmodified lineitemsourcedid studentsourcedid score textscore scorestatus "
               "missing late scoredate",
}


class BundleError(GatewayError):
    """The bundle cannot be read at all (not a bad row: a bad file)."""

    exit_code = 2

    def __init__(self, path: str, problem: str, hint: str) -> None:
        self.path, self.problem, self.hint = path, problem, hint
        super().__init__(f"OneRoster bundle {path}: {problem}; {hint}")


class Bundle:
    """A folder or zip of OneRoster CSV files, driven by its manifest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = self._open_zip(path) if path.suffix.lower() == ".zip" else None
        if self._zip is None and not path.is_dir():
            raise BundleError(str(path), "is neither a folder nor a .zip", "point path at the export")
        self.names = self._names()
        if "manifest" not in self.names:
            raise BundleError(str(path), "has no manifest.csv", "export the bundle with its manifest")
        self.manifest = {row.get("propertyname", "").strip().lower(): (row.get("value") or "").strip().lower()
                         for _, row in self.rows("manifest")}
        self.version = self.manifest.get("oneroster.version", "1.1")
        if self.version not in ("1.1", "1.2"):
            raise BundleError(str(path), f"declares OneRoster {self.version}", "only 1.1 and 1.2 are read")

    def mode(self, file: str) -> str:
        """bulk, delta or absent (a file the manifest lists but the bundle lacks is an error)."""
        mode = self.manifest.get(f"file.{file.lower()}", "absent")
        if mode not in ("bulk", "delta", "absent"):
            raise BundleError(str(self.path), f"manifest says {mode!r} for {file}", "use bulk, delta or absent")
        if mode != "absent" and file.lower() not in self.names:
            raise BundleError(str(self.path), f"manifest lists {file}.csv as {mode} but the file is missing", "re-export")
        return mode

    def header(self, file: str) -> list[str]:
        with self._text(file) as handle:
            return [name.strip().lower() for name in next(csv.reader(handle), [])]

    def rows(self, file: str) -> Iterator[tuple[int, dict[str, str]]]:
        """(line number, row by lower-cased header name), skipping blank lines."""
        with self._text(file) as handle:
            reader = csv.reader(handle)
            try:
                header = [name.strip().lower() for name in next(reader, [])]
                for values in reader:
                    if any(value.strip() for value in values):
                        yield reader.line_num, _row(header, values)
            except UnicodeDecodeError as exc:
                raise BundleError(str(self.path), f"{file}.csv is not UTF-8 (near line {reader.line_num}, {exc.reason})",
                                  "re-export it as UTF-8") from None
            except csv.Error as exc:
                raise BundleError(str(self.path), f"{file}.csv line {reader.line_num}: {exc}", "fix the file") from None

    def _text(self, file: str) -> IO[str]:
        name = self.names[file.lower()]
        try:
            raw = self._zip.open(name) if self._zip else open(self.path / name, "rb")  # noqa: SIM115
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(str(self.path), f"cannot open {name} ({exc})", "re-export the bundle") from None
        return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

    def _names(self) -> dict[str, str]:
        listing = self._zip.namelist() if self._zip else [p.name for p in self.path.iterdir()]
        return {Path(name).name.lower().removesuffix(".csv"): name for name in listing if name.lower().endswith(".csv")}

    @staticmethod
    def _open_zip(path: Path) -> zipfile.ZipFile:
        try:
            bundle = zipfile.ZipFile(path)
            broken = bundle.testzip()
        except (zipfile.BadZipFile, OSError) as exc:
            raise BundleError(str(path), f"is not a readable zip ({exc})", "copy the export again; it may be truncated") from None
        if broken:
            raise BundleError(str(path), f"{broken} is damaged", "copy the export again; it may be truncated")
        return bundle


def _row(header: list[str], values: list[str]) -> dict[str, str]:
    if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
        return {"__error__": f"has {len(values)} fields but the header has {len(header)}"}
    return {name: value for name, value in zip(header, values, strict=False) if name}


class OneRosterCsvConnector:
    """Reads one bundle; indexes (roles, birth dates, teachers) are built once per instance."""

    def __init__(self, name: str, source_system: str, bundle: Bundle, guardian_portal_access: bool) -> None:
        self.name, self.source_system, self.bundle = name, source_system, bundle
        self.portal_access = guardian_portal_access
        self._unmapped: dict[str, Counter[str]] = {}
        self._cache: dict[str, object] = {}

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        specs = []
        for name, (table, file) in STREAMS.items():
            source = self._file_of(name, file)
            mode = self.bundle.mode(source)
            if mode != "absent":
                specs.append(StreamSpec(name=name, table=table, delta_only=mode == "delta"))
        return tuple(specs)

    def iter_records(self, stream: str, since: dt.datetime | None) -> Iterator[Item]:
        stream_named(self.streams, stream)
        table, file = STREAMS[stream]
        file = self._file_of(stream, file)
        unknown = self._unknown_columns(file)
        readers: dict[str, Callable[[int, dict[str, str]], Iterator[Item]]] = {
            "schools": self._simple("schools", one.school), "terms": self._simple("terms", one.term),
            "courses": self._simple("courses", one.course),
            "sections": self._section, "section_terms": self._section_terms, "students": self._student,
            "guardians": self._guardian, "student_guardians": self._links, "enrollments": self._membership,
            "section_enrollments": self._roster, "assignments": self._assignment,
            "scores": self._simple("scores", one.score),
        }
        read, rows = readers[stream], 0
        for line, row in self.bundle.rows(file):
            rows += 1
            position = f"{file}.csv line {line}"
            if "__error__" in row:
                yield Reject(table, position, row["__error__"], payload_hash(line))
                continue
            try:
                yield from read(line, row)
            except ValueError as exc:
                yield Reject(table, position, str(exc), payload_hash(sorted(row.items())), row.get("sourcedid") or None)
        if unknown:
            self._unmapped[stream] = Counter({f"{file}.csv:{column}": rows for column in unknown})

    def unmapped_fields(self) -> Mapping[str, Counter[str]]:
        return self._unmapped

    def close(self) -> None:
        self._cache.clear()

    # --- streams ---------------------------------------------------------------------------

    @staticmethod
    def _simple(table: str, build: Callable[[one.Row], Record]) -> Callable[[int, dict[str, str]], Iterator[Item]]:
        def read(line: int, row: dict[str, str]) -> Iterator[Item]:
            if one.is_deleted(row):
                yield Tombstone(table, one.required(row, "sourcedid"), one.modified(row))
            else:
                yield build(row)

        return read

    def _section(self, line: int, row: dict[str, str]) -> Iterator[Item]:
        if one.is_deleted(row):
            yield Tombstone("sections", one.required(row, "sourcedid"), one.modified(row))
        else:
            yield one.section(row, self._teachers().get(one.required(row, "sourcedid")))

    def _section_terms(self, line: int, row: dict[str, str]) -> Iterator[Item]:
        for record in one.section_terms(row):
            yield Tombstone("section_terms", record.source_id) if one.is_deleted(row) else record

    def _student(self, line: int, row: dict[str, str]) -> Iterator[Item]:
        user = one.required(row, "sourcedid")
        if self._roles().get(user) != "student":
            return
        if one.is_deleted(row):
            yield Tombstone("students", user, one.modified(row))
            return
        birth = one.parse_date(self._birth_dates().get(user), "demographics birthDate")
        school = one.text(row, "primaryorgsourcedid") or one.first(row, "orgsourcedids") or self._role_orgs().get(user)
        yield one.student(row, birth, school)

    def _guardian(self, line: int, row: dict[str, str]) -> Iterator[Item]:
        user = one.required(row, "sourcedid")
        if self._roles().get(user) not in one.GUARDIAN_ROLES:
            return
        yield Tombstone("guardians", user, one.modified(row)) if one.is_deleted(row) else one.guardian(row)

    def _links(self, line: int, row: dict[str, str]) -> Iterator[Item]:
        """Links from agentSourcedIds, whichever side lists them; each pair once."""
        user, roles = one.required(row, "sourcedid"), self._roles()
        seen: set[str] = self._cache.setdefault("link_pairs", set())  # type: ignore[assignment]
        role = roles.get(user)
        for agent in one.listed(row, "agentsourcedids"):
            pair = self._pair(user, role, agent, roles.get(agent))
            if isinstance(pair, str):
                yield Reject("student_guardians", f"users.csv line {line}", pair, payload_hash(user, agent))
                continue
            student, guardian = pair
            if f"{student}:{guardian}" in seen:
                continue
            seen.add(f"{student}:{guardian}")
            if one.is_deleted(row):
                yield Tombstone("student_guardians", f"{student}:{guardian}", one.modified(row))
            else:
                yield one.link(student, guardian, roles.get(guardian), self.portal_access, one.modified(row))

    @staticmethod
    def _pair(user: str, role: str | None, agent: str, agent_role: str | None) -> tuple[str, str] | str:
        """(student, guardian) for a link, or why it is not one (reported, never linked)."""
        if role == "student" and agent_role in (*one.GUARDIAN_ROLES, None):
            return user, agent
        if role in one.GUARDIAN_ROLES and agent_role in ("student", None):
            return agent, user
        if role == "student":
            return f"agent {agent} of student {user} is a {agent_role}, not a parent, guardian or relative: not linked"
        if role in one.GUARDIAN_ROLES:
            return f"agent {agent} of {role} {user} is a {agent_role}, not a student: not linked"
        return f"{user} is a {role or 'user without a role'}, not a parent, guardian or relative: not linked to {agent}"

    def _membership(self, line: int, row: dict[str, str]) -> Iterator[Item]:
        """School enrolments: 1.1 from a student's orgSourcedIds; 1.2 from roles.csv."""
        if self.bundle.version == "1.2":
            if one.role_of(row) != "student":
                return
            source_id = one.required(row, "sourcedid")
            if one.is_deleted(row):
                yield Tombstone("enrollments", source_id, one.modified(row))
                return
            yield one.membership(source_id, one.required(row, "usersourcedid"), one.text(row, "orgsourcedid"),
                                 one.text(row, "begindate"), one.text(row, "enddate"), one.modified(row))
            return
        user = one.required(row, "sourcedid")
        if self._roles().get(user) != "student":
            return
        enabled = one.parse_bool(one.text(row, "enableduser"))
        for org in one.listed(row, "orgsourcedids"):
            source_id = f"{user}@{org}"
            if one.is_deleted(row) or enabled is False:
                if self.bundle.mode("users") == "delta":
                    yield Tombstone("enrollments", source_id, one.modified(row))
                continue  # in a bulk file, leaving it out ends the enrolment
            yield one.membership(source_id, user, org, None, None, one.modified(row))

    def _roster(self, line: int, row: dict[str, str]) -> Iterator[Item]:
        if one.role_of(row) != "student":
            return  # teachers' enrolments name the section's teacher instead
        if one.is_deleted(row):
            yield Tombstone("section_enrollments", one.required(row, "sourcedid"), one.modified(row))
            return
        user = one.required(row, "usersourcedid")
        actual = self._roles().get(user)
        if actual is not None and actual != "student":
            raise ValueError(f"user {user} is a {actual}, enrolled as a student")
        yield one.roster(row)

    def _assignment(self, line: int, row: dict[str, str]) -> Iterator[Item]:
        if one.is_deleted(row):
            yield Tombstone("assignments", one.required(row, "sourcedid"), one.modified(row))
        else:
            yield one.assignment(row, self._categories())

    # --- indexes -------------------------------------------------------------------------------

    def _file_of(self, stream: str, file: str) -> str:
        return "roles" if stream == "enrollments" and self.bundle.version == "1.2" else file

    def _cached(self, key: str, build: Callable[[], dict[str, str]]) -> dict[str, str]:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]  # type: ignore[return-value]

    def _roles(self) -> dict[str, str]:
        """Each user's role: users.csv (1.1), or roles.csv, primary roles first (1.2)."""

        def build() -> dict[str, str]:
            # Rows being deleted count too: a tombstoned student is still a student.
            if self.bundle.version == "1.1":
                return {row.get("sourcedid", ""): one.role_of(row) or "" for _, row in self._present("users", True)}
            roles: dict[str, str] = {}
            for primary_pass in (True, False):
                for _, row in self._present("roles", True):
                    if (row.get("roletype", "").lower() == "primary") == primary_pass and one.role_of(row):
                        roles.setdefault(row.get("usersourcedid", ""), one.role_of(row) or "")
            return roles

        return self._cached("roles", build)

    def _role_orgs(self) -> dict[str, str]:
        if self.bundle.version != "1.2" or self.bundle.mode("roles") == "absent":
            return {}
        return self._cached("role_orgs", lambda: {
            row.get("usersourcedid", ""): row.get("orgsourcedid", "") for _, row in self._present("roles")
            if row.get("roletype", "").lower() == "primary"})

    def _birth_dates(self) -> dict[str, str]:
        if self.bundle.mode("demographics") == "absent":
            return {}
        return self._cached("births", lambda: {
            row.get("sourcedid", ""): row.get("birthdate", "") for _, row in self._present("demographics")})

    def _categories(self) -> dict[str, str]:
        if self.bundle.mode("categories") == "absent":
            return {}
        return self._cached("categories", lambda: {
            row.get("sourcedid", ""): row.get("title", "") for _, row in self._present("categories")})

    def _teachers(self) -> dict[str, tuple[str, str | None]]:
        """Each class's teacher (primary first) from enrollments.csv, named from users.csv."""
        if "teachers" not in self._cache:
            chosen: dict[str, tuple[bool, str]] = {}
            if self.bundle.mode("enrollments") != "absent":
                for _, row in self._present("enrollments"):
                    if one.role_of(row) == "teacher":
                        primary = one.parse_bool(one.text(row, "primary")) is True
                        class_id = row.get("classsourcedid", "")
                        if class_id not in chosen or (primary and not chosen[class_id][0]):
                            chosen[class_id] = (primary, row.get("usersourcedid", ""))
            wanted = {user for _, user in chosen.values()}
            names = {row.get("sourcedid", ""): (f"{row.get('givenname', '')} {row.get('familyname', '')}".strip(),
                                                one.text(row, "email"))
                     for _, row in self._present("users") if row.get("sourcedid") in wanted}
            self._cache["teachers"] = {cls: names[user] for cls, (_, user) in chosen.items() if user in names}
        return self._cache["teachers"]  # type: ignore[return-value]

    def _present(self, file: str, deleted_too: bool = False) -> Iterator[tuple[int, dict[str, str]]]:
        if self.bundle.mode(file) == "absent":
            return iter(())
        return ((line, row) for line, row in self.bundle.rows(file)
                if "__error__" not in row and (deleted_too or not one.is_deleted(row)))

    def _unknown_columns(self, file: str) -> list[str]:
        used = set(USED.get(file, "").split())
        return [column for column in self.bundle.header(file) if column and column not in used]


def from_settings(entry: ConnectorSettings, settings: Settings) -> OneRosterCsvConnector:
    options = dict(entry.options)
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise ConfigError(f"connectors.{entry.name}.{sorted(unknown)[0]}", "unknown key",
                          f"a oneroster-csv connector takes {', '.join(sorted(OPTION_KEYS))}")
    if not options.get("path"):
        raise ConfigError(f"connectors.{entry.name}.path", "is missing", "give the export's folder or .zip")
    access = options.get("guardian_portal_access")
    if not isinstance(access, bool):
        raise ConfigError(f"connectors.{entry.name}.guardian_portal_access", "must be true or false",
                          "OneRoster has no educational-rights flag: say whether its guardian links grant portal access")
    return OneRosterCsvConnector(entry.name, entry.source_system, Bundle(Path(options["path"])), access)
