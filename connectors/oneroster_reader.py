"""OneRoster streams over any row source: a CSV bundle or a REST provider.

A ``RowSource`` hands over normalized rows (see ``connectors.oneroster``) with a position
a person can find again (``users.csv line 7``, ``GET users item 7``). This reader turns
them into canonical records, tombstones and rejects, with the same rules for both: the
same district read from files or from an API yields the same records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from gateway.replica.records import Record, Reject, Tombstone

from connectors import convert
from connectors import oneroster as one
from connectors.base import Item, StreamSpec, payload_hash, stream_named
from connectors.oneroster_notes import dates_in, merged_duplicates, nonstandard_date

Row = dict[str, str]
Reader = Callable[[str, Row], Iterator[Item]]
# Stream: (canonical table, the collection it is read from; 1.2 reads school memberships from roles).
STREAMS = {
    "schools": ("schools", "orgs"), "terms": ("terms", "academicSessions"), "courses": ("courses", "courses"),
    "sections": ("sections", "classes"), "section_terms": ("section_terms", "classes"),
    "students": ("students", "users"), "guardians": ("guardians", "users"),
    "student_guardians": ("student_guardians", "users"), "enrollments": ("enrollments", "users"),
    "section_enrollments": ("section_enrollments", "enrollments"),
    "assignments": ("assignments", "lineItems"), "scores": ("scores", "results"),
}
ACCESS_CRITICAL = ("student_guardians", "enrollments")
USED = {  # the fields each collection's mappings read; any other is reported as unmapped
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
ERROR = "__error__"  # a row the source could not even split into fields
# Streams whose rows this run derives from a users row: when that row is rejected, the
# stored rows naming the user in these columns are kept as the user's own row is.
DERIVED_FROM_USERS = {"student_guardians": ("student_source_id", "guardian_source_id"),
                      "enrollments": ("student_source_id",)}


class RowSource(Protocol):
    """Where OneRoster rows come from.

    A source may also set ``cheap_rereads = True`` (reading a listing again costs nothing,
    as with files): the reader then scans full listings for duplicate ``sourcedId``s.
    """

    version: str  # "1.1" or "1.2"
    incremental: bool  # whether rows(file, since) can filter by modification time

    def mode(self, file: str) -> str:
        """bulk, delta or absent."""
        ...

    def rows(self, file: str, since: dt.datetime | int | None = None) -> Iterator[tuple[str, Row]]:
        """(position, normalized row) for each record of the collection."""
        ...

    def fields(self, file: str) -> list[str]:
        """The collection's field names as last read (lower-cased)."""
        ...


class OneRosterReader:
    """Streams of one OneRoster source; indexes (roles, birth dates, teachers) built once."""

    def __init__(self, name: str, source_system: str, source: RowSource, guardian_portal_access: bool) -> None:
        self.name, self.source_system, self.source = name, source_system, source
        self.portal_access = guardian_portal_access
        self._unmapped: dict[str, Counter[str]] = {}
        self._indexes: dict[str, dict[str, object]] = {}
        self._odd_dates: dict[str, None] = {}  # "position field", in order, once each
        self._bad_dates: dict[str, None] = {}
        self._bad_modified: dict[str, None] = {}
        self._duplicates: dict[str, Counter[str]] = {}

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        specs = []
        for name, (table, _) in STREAMS.items():
            mode = self.source.mode(self._collection(name))
            if mode != "absent":
                incremental = self.source.incremental
                specs.append(StreamSpec(name=name, table=table, incremental=incremental, delta_only=mode == "delta",
                                        complete_each_run=incremental and name in ACCESS_CRITICAL))
        return tuple(specs)

    def iter_records(self, stream: str, since: dt.datetime | int | None) -> Iterator[Item]:
        stream_named(self.streams, stream)
        table, collection = STREAMS[stream][0], self._collection(stream)
        read = self._reader(stream)
        # Duplicates are looked for in full listings (a delta read asks only for changes), where
        # reading the listing twice is cheap (files; a REST source says so when it caches).
        scan = since is None and getattr(self.source, "cheap_rereads", False)
        conflicts, repeats = self._repeats(collection) if scan else ({}, set())
        if collection == "users":
            conflicts = {**self._role_conflicts(), **conflicts}
        listing: Iterable[tuple[str, Row]] = self.source.rows(collection, since)
        if stream == "schools":  # orgs are few: read once, so their parent chains need no second listing
            listing = list(listing)
            self._indexes["org_parents"] = {row.get("sourcedid", "").strip(): (row.get("parentsourcedid") or "").strip()
                                            for _, row in listing if ERROR not in row and not one.is_deleted(row)}
        rows = 0
        for position, row in listing:
            rows += 1
            source_id = row.get("sourcedid") or None
            if position in repeats:
                continue  # the same row again: counted once, reported as a duplicate
            if ERROR in row or source_id in conflicts:
                reason = row.get(ERROR) or conflicts[source_id or ""]
                yield self._quarantined(stream, table, collection, position, reason, source_id)
                continue
            self._note_dates(position, row)
            try:
                if any(isinstance(value, str) and "\x00" in value for value in row.values()):
                    raise ValueError(convert.NUL_REFUSED)
                yield from read(position, row)
            except ValueError as exc:
                bad_date = "not a date" in str(exc) or "ambiguous" in str(exc)
                if bad_date:
                    self._bad_dates[position] = None
                yield Reject(table, position, str(exc), payload_hash(sorted(row.items())), source_id,
                             narrows=bad_date and stream == "enrollments" and self._ends(row))
        unknown = [f for f in self.source.fields(collection) if f and f not in USED.get(collection, "").split()]
        if unknown and rows:
            self._unmapped[stream] = Counter({f"{collection}:{field}": rows for field in unknown})

    def findings(self) -> dict[str, object]:
        """What the run summary should say about this source beyond rejects (never values)."""
        notes = getattr(self.source, "notes", {})
        found: dict[str, object] = {
            "unknown_columns": {f"{n.file}.csv": n.unknown for _, n in sorted(notes.items()) if n.unknown},
            "values_dropped": {label: p.as_dict() for n in notes.values() for label, p in sorted(n.dropped.items())},
            "nonstandard_dates": _positions(self._odd_dates),
            "unreadable_dates": _positions(self._bad_dates),
            "unreadable_modification_times": _positions(self._bad_modified),
            "duplicates": merged_duplicates(self._duplicates),
        }
        return {key: value for key, value in found.items() if value}

    def _quarantined(self, stream: str, table: str, collection: str, position: str, reason: str,
                     source_id: str | None) -> Reject:
        """A row that cannot be read as one record: its own row is kept, and so are what it derives."""
        if collection == "users" and stream in DERIVED_FROM_USERS and source_id:
            keep = tuple((column, source_id) for column in DERIVED_FROM_USERS[stream])
            return Reject(table, position, reason, payload_hash(position), None, keep)
        return Reject(table, position, reason, payload_hash(position), source_id)

    def _note_dates(self, position: str, row: Row) -> None:
        for label in dates_in(row):
            self._odd_dates[f"{position} {label}"] = None
        if one.text(row, "datelastmodified") and one.modified(row) is None:
            self._bad_modified[position] = None  # the record loads, its modification time unknown

    @staticmethod
    def _ends(row: Row) -> bool:
        """A school membership whose end date is there but unreadable: it ends (fail closed)."""
        return bool(one.text(row, "enddate"))

    def _repeats(self, collection: str) -> tuple[dict[str, str], set[str]]:
        """(conflicting source ids with why, positions of identical repeats), from a full listing."""

        def build() -> dict[str, object]:
            first: dict[str, tuple[str, bytes]] = {}  # a row's position and a 16-byte digest: flat memory
            lines: dict[str, list[str]] = {}  # only for ids seen more than once
            conflicting: set[str] = set()
            repeats: set[str] = set()
            counts: Counter[str] = Counter()
            for position, row in self.source.rows(collection):
                key = row.get("sourcedid", "").strip()
                if not key or ERROR in row:
                    continue
                digest = _digest(row)
                if key not in first:
                    first[key] = (position, digest)
                    continue
                lines.setdefault(key, [first[key][0]]).append(position)
                if first[key][1] == digest:
                    repeats.add(position)
                    counts["identical"] += 1
                else:
                    counts["conflicting"] += key not in conflicting
                    conflicting.add(key)
            self._duplicates[collection] = counts
            why = {key: f"sourcedId {key} appears {len(lines[key])} times with different values "
                        f"(lines {', '.join(p.rsplit(' ', 1)[-1] for p in lines[key])}): none is applied, "
                        "the stored rows are kept" for key in conflicting}
            return {"conflicts": why, "repeats": repeats}

        index = self._index(f"repeats:{collection}", build)
        return index["conflicts"], index["repeats"]  # type: ignore[return-value]

    def unmapped_fields(self) -> Mapping[str, Counter[str]]:
        return self._unmapped

    def close(self) -> None:
        self._indexes.clear()
        close = getattr(self.source, "close", None)  # a REST source drops the listings it kept for the run
        if close is not None:
            close()

    def _reader(self, stream: str) -> Reader:
        simple = {"schools": self._school, "terms": one.term, "courses": one.course, "scores": one.score}
        if stream in simple:
            return _simple(STREAMS[stream][0], simple[stream])
        if stream == "student_guardians":
            return self._links(seen=set())  # each pair once per read, whichever side lists it
        return {"sections": self._section, "section_terms": self._section_terms, "students": self._student,
                "guardians": self._guardian, "enrollments": self._membership,
                "section_enrollments": self._roster, "assignments": self._assignment}[stream]

    def _collection(self, stream: str) -> str:
        return "roles" if stream == "enrollments" and self.source.version == "1.2" else STREAMS[stream][1]

    # --- streams ---------------------------------------------------------------------------

    def _school(self, row: Row) -> Record:
        record = one.school(row)
        loop = self._org_loop(record.source_id)
        if loop:
            raise ValueError(f"org {record.source_id} is its own ancestor ({' → '.join(loop)})")
        return record

    def _org_loop(self, org: str) -> list[str]:
        """The chain of parents from ``org`` back to itself, or empty when it ends elsewhere."""
        parents = self._index("org_parents", lambda: {row.get("sourcedid", "").strip(): (row.get("parentsourcedid") or "").strip()
                                                      for row in self._all("orgs")})
        chain, at = [org], parents.get(org)
        while at and at not in chain[1:]:
            chain.append(str(at))
            if at == org:
                return chain
            at = parents.get(str(at))
        return []

    def _section(self, position: str, row: Row) -> Iterator[Item]:
        if one.is_deleted(row):
            yield Tombstone("sections", one.required(row, "sourcedid"), one.modified(row))
        else:
            yield one.section(row, self._teachers().get(one.required(row, "sourcedid")))

    def _section_terms(self, position: str, row: Row) -> Iterator[Item]:
        for record in one.section_terms(row):
            yield Tombstone("section_terms", record.source_id) if one.is_deleted(row) else record

    def _student(self, position: str, row: Row) -> Iterator[Item]:
        user = one.required(row, "sourcedid")
        if self._roles().get(user) != "student":
            return
        if one.is_deleted(row):
            yield Tombstone("students", user, one.modified(row))
            return
        position_of_birth, born = self._birth_dates().get(user, ("", ""))
        if nonstandard_date(born):
            self._odd_dates[f"{position_of_birth} birthDate"] = None
        school = one.text(row, "primaryorgsourcedid") or one.first(row, "orgsourcedids") or self._role_orgs().get(user)
        try:
            birth = one.parse_date(born, "demographics birthDate")
        except ValueError as exc:
            self._bad_dates[f"{position_of_birth} birthDate"] = None
            reason = str(exc).replace(f" {born!r}", "")  # a birth date is not repeated in rejects
            yield Reject("students", position, f"{reason} ({position_of_birth})", payload_hash(position, position_of_birth),
                         user, unknown_birth_date=one.student(row, None, school))
            return
        yield one.student(row, birth, school)

    def _guardian(self, position: str, row: Row) -> Iterator[Item]:
        user = one.required(row, "sourcedid")
        if self._roles().get(user) not in one.GUARDIAN_ROLES:
            return
        yield Tombstone("guardians", user, one.modified(row)) if one.is_deleted(row) else one.guardian(row)

    def _links(self, seen: set[str]) -> Reader:
        def read(position: str, row: Row) -> Iterator[Item]:
            user, roles = one.required(row, "sourcedid"), self._roles()
            conflicted = self._conflicted_users()
            for agent in one.listed(row, "agentsourcedids"):
                if agent in conflicted:
                    continue  # that user's own rows are quarantined, with their links
                pair = _pair(user, roles.get(user), agent, roles.get(agent))
                if isinstance(pair, str):
                    yield Reject("student_guardians", position, pair, payload_hash(user, agent))
                    continue
                source_id = f"{pair[0]}:{pair[1]}"
                if source_id in seen:
                    continue
                seen.add(source_id)
                if one.is_deleted(row):
                    yield Tombstone("student_guardians", source_id, one.modified(row))
                else:
                    yield one.link(pair[0], pair[1], roles.get(pair[1]), self.portal_access, one.modified(row))

        return read

    def _membership(self, position: str, row: Row) -> Iterator[Item]:
        """School enrolments: 1.1 from a student's orgSourcedIds; 1.2 from roles."""
        if self.source.version == "1.2":
            if one.role_of(row) != "student":
                return
            source_id = one.required(row, "sourcedid")
            conflict = self._role_conflicts().get(one.text(row, "usersourcedid") or "")
            if conflict:
                raise ValueError(conflict)  # a reject naming this role row: its stored enrolment is kept
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
                if self.source.mode("users") == "delta":
                    yield Tombstone("enrollments", source_id, one.modified(row))
                continue  # in a full listing, leaving it out ends the enrolment
            yield one.membership(source_id, user, org, None, None, one.modified(row))

    def _roster(self, position: str, row: Row) -> Iterator[Item]:
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

    def _assignment(self, position: str, row: Row) -> Iterator[Item]:
        if one.is_deleted(row):
            yield Tombstone("assignments", one.required(row, "sourcedid"), one.modified(row))
        else:
            yield one.assignment(row, self._categories())

    # --- indexes, each built once from full listings ------------------------------------------

    def _index(self, key: str, build: Callable[[], dict[str, object]]) -> dict[str, object]:
        if key not in self._indexes:
            self._indexes[key] = build()
        return self._indexes[key]

    def _roles(self) -> dict[str, str]:
        """Each user's role: users (1.1), or roles with primary roles first (1.2).

        Rows being deleted count too: a tombstoned student is still a student.
        """

        def build() -> dict[str, object]:
            if self.source.version == "1.1":
                conflicted = self._repeats("users")[0] if getattr(self.source, "cheap_rereads", False) else {}
                return {row.get("sourcedid", ""): one.role_of(row) or "" for row in self._all("users", True)
                        if row.get("sourcedid", "") not in conflicted}
            roles: dict[str, object] = {}
            primary: dict[str, set[str]] = {}
            for primary_pass in (True, False):
                for row in self._all("roles", True):
                    if (row.get("roletype", "").lower() == "primary") == primary_pass and one.role_of(row):
                        roles.setdefault(row.get("usersourcedid", ""), one.role_of(row))
                        if primary_pass:
                            primary.setdefault(row.get("usersourcedid", ""), set()).add(one.role_of(row) or "")
            conflicts = {user: f"user {user} has the primary roles {' and '.join(sorted(kinds))} in roles.csv: "
                               "none is applied, the stored rows are kept"
                         for user, kinds in primary.items()
                         if "student" in kinds and kinds & set(one.GUARDIAN_ROLES)}
            self._indexes["role_conflicts"] = conflicts  # type: ignore[assignment]
            return {user: role for user, role in roles.items() if user not in conflicts}

        return self._index("roles", build)  # type: ignore[return-value]

    def _role_conflicts(self) -> dict[str, str]:
        """1.2: users whose primary roles make them both a student and a parent, with why."""
        if self.source.version != "1.2":
            return {}
        self._roles()
        return self._indexes.get("role_conflicts", {})  # type: ignore[return-value]

    def _conflicted_users(self) -> dict[str, str]:
        found = dict(self._role_conflicts())
        if getattr(self.source, "cheap_rereads", False):
            found.update(self._repeats("users")[0])
        return found

    def _role_orgs(self) -> dict[str, str]:
        if self.source.version != "1.2":
            return {}
        return self._index("role_orgs", lambda: {row.get("usersourcedid", ""): row.get("orgsourcedid", "")
                                                 for row in self._all("roles") if row.get("roletype", "").lower() == "primary"})  # type: ignore[return-value]

    def _birth_dates(self) -> dict[str, tuple[str, str]]:
        """Each user's (demographics position, birth date as written)."""
        def build() -> dict[str, object]:
            if self.source.mode("demographics") == "absent":
                return {}
            return {row.get("sourcedid", ""): (position, row.get("birthdate", ""))
                    for position, row in self.source.rows("demographics") if ERROR not in row and not one.is_deleted(row)}

        return self._index("births", build)  # type: ignore[return-value]

    def _categories(self) -> dict[str, str]:
        return self._index("categories", lambda: {row.get("sourcedid", ""): row.get("title", "")
                                                  for row in self._all("categories")})  # type: ignore[return-value]

    def _teachers(self) -> dict[str, tuple[str, str | None]]:
        """Each class's teacher (primary first) from enrollments, named from users."""

        def build() -> dict[str, object]:
            chosen: dict[str, tuple[bool, str]] = {}
            for row in self._all("enrollments"):
                if one.role_of(row) == "teacher":
                    primary = one.parse_bool(one.text(row, "primary")) is True
                    class_id = row.get("classsourcedid", "")
                    if class_id not in chosen or (primary and not chosen[class_id][0]):
                        chosen[class_id] = (primary, row.get("usersourcedid", ""))
            wanted = {user for _, user in chosen.values()}
            names = {row.get("sourcedid", ""): (f"{row.get('givenname', '')} {row.get('familyname', '')}".strip(),
                                                one.text(row, "email"))
                     for row in self._all("users") if row.get("sourcedid") in wanted}
            return {cls: names[user] for cls, (_, user) in chosen.items() if user in names}

        return self._index("teachers", build)  # type: ignore[return-value]

    def _all(self, collection: str, deleted_too: bool = False) -> Iterator[Row]:
        """Every usable row of a collection (a full listing, whatever the stream's cursor)."""
        if self.source.mode(collection) == "absent":
            return iter(())
        return (row for _, row in self.source.rows(collection)
                if ERROR not in row and (deleted_too or not one.is_deleted(row)))


def _digest(row: Row) -> bytes:
    """A row's values (its modification time aside) as 16 bytes, to tell repeats from conflicts."""
    shape = sorted((k, v.strip()) for k, v in row.items() if k != "datelastmodified")
    return hashlib.blake2b(repr(shape).encode(), digest_size=16).digest()


def _positions(found: dict[str, None]) -> dict[str, object]:
    if not found:
        return {}
    return {"count": len(found), "first": list(found)[:5]}


def _simple(table: str, build: Callable[[dict[str, str]], Record]) -> Reader:
    def read(position: str, row: Row) -> Iterator[Item]:
        if one.is_deleted(row):
            yield Tombstone(table, one.required(row, "sourcedid"), one.modified(row))
        else:
            yield build(row)

    return read


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
