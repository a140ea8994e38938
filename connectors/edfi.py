"""The ``edfi`` connector: an Ed-Fi ODS/API (Data Standard 3 to 5), read with GET only.

Discovery: ``GET base_url`` is the version document; it names the data standard (5.x
calls parents ``contacts``), the data, change-query and token URLs. Authentication is
OAuth 2 client credentials with HTTP Basic client authentication, through the same HTTP
layer as ``oneroster-rest`` (``ClientCredentials``: renewed before ``expires_in`` runs
out and once after a 401; 429 and 5xx retried honouring ``Retry-After``).

Source ids are natural keys (``studentUniqueId``, ``schoolId``, an association's key
values joined), never the server's resource ids, which differ between ODS instances.
The connector learns the resource id of every item it reads (``resource_ids``), so a
``/deletes`` item carrying only ``id`` and ``changeVersion`` (older API versions) can
still become a tombstone; the engine keeps that map with the published run.

A listing is complete or it fails: ``limit``/``offset`` with ``totalCount=true``, and the
items received must add up to ``Total-Count``. Incremental runs read every resource with
``minChangeVersion`` = cursor + 1 and ``maxChangeVersion`` = the newest change version
available at the start of the run (one bound for the whole run), optionally under
``Use-Snapshot``; each record carries that newest version, so the integer cursor moves to
it with the published run. ``/keyChanges`` become ``KeyChange`` items (the row moves).

Resources that decide access (``REQUIRED_STREAMS``) must be readable or the run fails;
any other resource a profile or data standard leaves out (404, or 403) is skipped with a
warning of the run. A student's school and grade come from their latest school
association, so a student whose association alone changed is read again and re-sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from gateway.errors import ConfigError
from gateway.replica.records import (
    AssignmentRecord, AttendanceRecord, CourseRecord, EnrollmentRecord, GuardianRecord, KeyChange, Record, Reject,
    SchoolRecord, ScoreRecord, SectionEnrollmentRecord, SectionRecord, SectionTermRecord, StudentGuardianRecord,
    StudentRecord, TermGradeRecord, TermRecord, Tombstone,
)
from gateway.security.keys import env_var, load_secret
from gateway.settings import ConnectorSettings, Settings

from connectors import convert
from connectors.base import Item, StreamSpec, checked_options, payload_hash, stream_named
from connectors.edfi_descriptors import SHIPPED
from connectors.oneroster_rest import ClientCredentials, ProviderError, Spool, retrying_session, secure_or_loopback

Flat = dict[str, Any]
OPTION_KEYS = {"base_url", "client_id", "school_year", "descriptor_map", "guardian_portal_access", "page_size",
               "timeout_seconds", "retries", "use_snapshot", "paging"}
PORTAL_RULES = ("legal-guardian", "all", "none")
INCOMPLETE_HINT = ("nothing of this listing was applied; items may have changed during the read: run again "
                   "(set use_snapshot = true if the API offers snapshots)")


# --- natural keys: one function per resource, over an item or a keyValues object, flattened ---------

def flatten(item: Mapping[str, Any]) -> Flat:
    """Top-level values with every ``…Reference`` object's key values merged in (as ``keyValues`` are)."""
    flat: Flat = {}
    for name, value in item.items():
        if name.endswith("Reference") and isinstance(value, dict):
            flat.update({k: v for k, v in value.items() if k != "link"})
        else:
            flat.setdefault(name, value)
    return flat


def _part(flat: Flat, name: str) -> str:
    value = flat.get(name)
    if value is None or value == "":
        raise ValueError(f"{name} is missing")
    return str(value)[:10] if name.endswith("Date") else str(value)


def session_key(flat: Flat) -> str:
    return f"{_part(flat, 'schoolId')}-{_part(flat, 'schoolYear')}-{_part(flat, 'sessionName')}"


def offering_key(flat: Flat) -> str:
    return f"{session_key(flat)}-{_part(flat, 'localCourseCode')}"


def section_key(flat: Flat) -> str:
    return f"{offering_key(flat)}-{_part(flat, 'sectionIdentifier')}"


def gradebook_key(flat: Flat) -> str:
    if flat.get("gradebookEntryIdentifier"):  # Data Standard 5
        return f"{flat.get('namespace') or ''}#{_part(flat, 'gradebookEntryIdentifier')}"
    return f"{section_key(flat)}:{_part(flat, 'gradebookEntryTitle')}:{_part(flat, 'dateAssigned')}"


def descriptor_code(value: Any) -> str | None:
    """``uri://ed-fi.org/TermDescriptor#Fall Semester`` -> ``Fall Semester``."""
    if not value:
        return None
    return str(value).rsplit("#", 1)[-1] or None


@dataclass(frozen=True)
class Resource:
    """An Ed-Fi resource (its collection's path) and its natural key, over a flattened item or keyValues."""

    path: str
    key: Callable[[Flat], str]


def _guardian_id(flat: Flat) -> str:
    return _part(flat, "contactUniqueId" if "contactUniqueId" in flat else "parentUniqueId")


RESOURCES: dict[str, Resource] = {r.path: r for r in (
    Resource("localEducationAgencies", lambda f: _part(f, "localEducationAgencyId")),
    Resource("schools", lambda f: _part(f, "schoolId")),
    Resource("sessions", session_key),
    Resource("students", lambda f: _part(f, "studentUniqueId")),
    Resource("parents", _guardian_id), Resource("contacts", _guardian_id),
    Resource("studentParentAssociations", lambda f: f"{_part(f, 'studentUniqueId')}:{_guardian_id(f)}"),
    Resource("studentContactAssociations", lambda f: f"{_part(f, 'studentUniqueId')}:{_guardian_id(f)}"),
    Resource("studentSchoolAssociations",
             lambda f: f"{_part(f, 'studentUniqueId')}@{_part(f, 'schoolId')}:{_part(f, 'entryDate')}"),
    Resource("courseOfferings", offering_key),
    Resource("sections", section_key),
    Resource("studentSectionAssociations",
             lambda f: f"{_part(f, 'studentUniqueId')}@{section_key(f)}:{_part(f, 'beginDate')}"),
    Resource("gradebookEntries", gradebook_key),
    Resource("studentGradebookEntries", lambda f: f"{gradebook_key(f)}:{_part(f, 'studentUniqueId')}"),
    Resource("grades", lambda f: f"{_part(f, 'studentUniqueId')}@{section_key(f)}:"
                                 f"{descriptor_code(f.get('gradingPeriodDescriptor')) or ''}-"
                                 f"{f.get('periodSequence') or ''}:{descriptor_code(f.get('gradeTypeDescriptor'))}"),
    Resource("studentSchoolAttendanceEvents",
             lambda f: f"{_part(f, 'studentUniqueId')}@{session_key(f)}:{_part(f, 'eventDate')}:"
                       f"{descriptor_code(f.get('attendanceEventCategoryDescriptor'))}"),
    Resource("studentSectionAttendanceEvents",
             lambda f: f"{_part(f, 'studentUniqueId')}@{section_key(f)}:{_part(f, 'eventDate')}:"
                       f"{descriptor_code(f.get('attendanceEventCategoryDescriptor'))}"),
)}


class Descriptors:
    """Descriptor URI -> canonical value: the shipped table, overridden by ``descriptor_map``."""

    def __init__(self, overrides: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.table = {kind: dict(codes) for kind, codes in SHIPPED.items()}
        for kind, codes in (overrides or {}).items():
            self.table.setdefault(kind, {}).update(codes)

    def get(self, kind: str, uri: Any) -> str | None:
        if not uri:
            return None
        codes = self.table.get(kind, {})
        return codes.get(str(uri)) or codes.get(descriptor_code(uri) or "")

    def required(self, kind: str, uri: Any) -> str:
        value = self.get(kind, uri)
        if value is None:
            raise ValueError(f"{kind} {uri!r} is not in the descriptor table: add it to descriptor_map")
        return value


def load_descriptor_map(entry_name: str, path: str | None) -> Descriptors:
    if not path:
        return Descriptors()
    where = f"connectors.{entry_name}.descriptor_map"
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(where, f"{path} does not exist", "give a TOML file of [DescriptorType] tables") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, f"{path} is not valid TOML ({exc})", "fix the file") from None
    for kind, codes in data.items():
        if not isinstance(codes, dict) or not all(isinstance(v, str) for v in codes.values()):
            raise ConfigError(where, f"[{kind}] must map descriptor URIs or code values to text",
                              '"uri://district.org/AttendanceEventCategoryDescriptor#Sick" = "excused"')
    return Descriptors(data)


# --- the API -----------------------------------------------------------------------------------------

class NotExposed(ProviderError):
    """A 404 for a whole resource: the API's profile or data standard version does not expose it."""


class BadRequest(ProviderError):
    """A 400: the API refused a parameter (some refuse ``limit=0``)."""


class NotPermitted(ProviderError):
    """A 401 or 403 for a resource: this client's claim set (or its API profile) may not read it."""


class EdFiApi:
    """The ODS/API's version document, change versions and complete listings, each read once per run."""

    def __init__(self, name: str, base_url: str, session: requests.Session, page_size: int = 500,
                 timeout: float = 30.0, school_year: int | None = None, use_snapshot: bool = False,
                 keyset: bool = False) -> None:
        self.name, self.base_url, self.session = name, base_url.rstrip("/") + "/", session
        self.keyset = keyset
        self.page_size, self.timeout, self.school_year, self.use_snapshot = page_size, timeout, school_year, use_snapshot
        self.data_url = self.change_url = self.token_url = ""
        self.data_standard = ""
        self.warnings: set[str] = set()
        self._listings: dict[tuple[str, str, int | None, int | None], Spool] = {}
        self._newest: int | None = None
        self._changes: bool | None = None

    def discover(self) -> None:
        """Read the version document: the data standard and where data, change queries and tokens are."""
        body = self._json(self._send(self.base_url, None, "the version document"), self.base_url, "the version document")
        urls = body.get("urls") if isinstance(body, dict) else None
        if not isinstance(urls, dict) or not urls.get("dataManagementApi") or not urls.get("oauth"):
            raise ProviderError(self.name, self.base_url, "the version document names no dataManagementApi and oauth URLs",
                                "base_url must be the ODS/API's root (the URL whose GET shows its version)")
        models = {str(m.get("name")): str(m.get("version")) for m in body.get("dataModels") or [] if isinstance(m, dict)}
        self.data_standard = models.get("Ed-Fi", "")
        self.data_url = self._route(str(urls["dataManagementApi"]))
        self.token_url = urljoin(self.base_url, str(urls["oauth"]))
        change = urls.get("changeQueries")
        self.change_url = self._route(str(change)) if change else ""

    def _route(self, url: str) -> str:
        """A URL of the version document with the school year in it, where the deployment has one."""
        url = urljoin(self.base_url, url).rstrip("/") + "/"
        if "{" in url:  # a route template, e.g. …/data/v3/{schoolYearFromRoute}/
            if not self.school_year:
                raise ConfigError(f"connectors.{self.name}.school_year", "is missing",
                                  f"this API's routes take a school year ({url}): set school_year")
            return re.sub(r"\{[^}]*\}", str(self.school_year), url)
        return f"{url}{self.school_year}/" if self.school_year else url

    @property
    def contacts(self) -> bool:
        """Data Standard 5 renamed parents to contacts."""
        major = self.data_standard.split(".", 1)[0]
        return major.isdigit() and int(major) >= 5

    @property
    def change_queries(self) -> bool:
        """Whether the API answers change queries (an operator can turn them off): without, every run reads all."""
        if self._changes is None:
            try:
                self.newest_change_version()
                self._changes = True
            except NotExposed:
                self._changes = False
        return self._changes

    def newest_change_version(self) -> int | None:
        """``newestChangeVersion`` at the start of the run: the upper bound of every read in it."""
        if self._changes is False:
            return None
        if self._newest is None:
            if not self.change_url:
                raise NotExposed(self.name, self.base_url, "the API offers no change queries", "every run reads everything")
            url = self.change_url + "availableChangeVersions"
            body = self._json(self._get(url, None, "availableChangeVersions"), url, "availableChangeVersions")
            value = body.get("newestChangeVersion", body.get("NewestChangeVersion")) if isinstance(body, dict) else None
            if not isinstance(value, int):
                raise ProviderError(self.name, url, "the answer has no newestChangeVersion", "tell the API's operator")
            self._newest = value
        return self._newest

    def items(self, resource: str, since: int | None, suffix: str = "") -> Iterator[Mapping[str, Any]]:
        """The resource's items (or its ``/deletes`` or ``/keyChanges``) changed after ``since``, or all."""
        newest = self.newest_change_version()
        low = None if since is None else since + 1
        key = (resource, suffix, low, newest if since is not None else None)
        if key not in self._listings:
            try:
                self._listings[key] = self._read(resource, suffix, low, key[3])
            except NotExposed:
                if suffix != "/keyChanges":
                    self._listings.clear()
                    raise
                # API versions before key changes were tracked (about 5.3) have no /keyChanges.
                self.warnings.add(f"the API has no {resource}/keyChanges: a corrected natural key arrives as a "
                                  "new row (and the old one stays until a full run)")
                self._listings[key] = Spool()
            except ProviderError:
                self._listings.clear()  # a retried run reads everything afresh
                raise
        return iter(self._listings[key])

    def exposed(self, resource: str) -> str | None:
        """Why this client cannot read ``resource`` (a 404, or a 403 from its profile), or None if it can."""
        url = f"{self.data_url}ed-fi/{resource}"
        try:
            self._peek(url, {}, resource)
        except NotExposed:
            return "not found (404)"
        except NotPermitted as exc:
            return exc.problem
        return None

    def find(self, resource: str, query: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The items whose fields equal ``query`` (a key lookup: the ODS/API filters a collection by its fields)."""
        url = f"{self.data_url}ed-fi/{resource}"
        return self._items(self._get(url, {**query, "limit": self.page_size, "offset": 0}, resource), url, resource)

    def close(self) -> None:
        self._listings.clear()
        self._newest = None

    def _read(self, resource: str, suffix: str, low: int | None, high: int | None) -> Spool:
        """Every page of a listing, checked: as many items as the API counted, or the stream fails."""
        url = f"{self.data_url}ed-fi/{resource}{suffix}"
        window: dict[str, Any] = {} if low is None else {"minChangeVersion": low, "maxChangeVersion": high}
        spool = Spool()
        if self.keyset and not suffix:
            total = self._count(url, window, resource)
            for page in self._token_pages(url, window, resource):
                for item in page:
                    spool.add(item)
        else:
            total = self._offset_pages(url, window, resource + suffix, spool)
        if total is None and not suffix:
            raise ProviderError(self.name, url, f"the API sent no Total-Count for {resource}",
                                "a listing cannot be checked complete without it; tell the API's operator")
        if total is not None and spool.count != total:
            raise ProviderError(self.name, url, f"the API counted {total} {resource}{suffix} (Total-Count) but sent "
                                f"{spool.count}", INCOMPLETE_HINT, retriable=True)
        spool.seal()
        return spool

    def _offset_pages(self, url: str, window: dict[str, Any], what: str, spool: Spool) -> int | None:
        """Pages by ``limit``/``offset`` into ``spool``; returns the API's ``Total-Count``."""
        params: dict[str, Any] = {"limit": self.page_size, "offset": 0, "totalCount": "true", **window}
        total = None
        while True:
            response = self._get(url, params, what)
            page = self._items(response, url, what)
            for item in page:
                spool.add(item)
            total = _total(response, total)
            if not page or (total is not None and spool.count >= total) or (total is None and len(page) < self.page_size):
                return total
            params = {**params, "offset": spool.count}  # from what was received: servers cap limit silently

    def _count(self, url: str, window: dict[str, Any], what: str) -> int | None:
        """The listing's ``Total-Count`` (keyset pages carry none), asked for on its own."""
        return _total(self._peek(url, {"totalCount": "true", **window}, what), None)

    def _peek(self, url: str, params: Mapping[str, Any], what: str) -> requests.Response:
        """A request that reads no items (``limit=0``, as edfi-api-client counts); one item where 0 is refused (400)."""
        try:
            return self._get(url, {**params, "limit": 0, "offset": 0}, what)
        except BadRequest:
            return self._get(url, {**params, "limit": 1, "offset": 0}, what)

    def _token_pages(self, url: str, window: dict[str, Any], what: str) -> Iterator[list[Mapping[str, Any]]]:
        """Keyset pages (ODS/API 7): a start token from ``/partitions``, then each ``Next-Page-Token``."""
        body = self._json(self._get(f"{url}/partitions", {"number": 1, **window}, f"{what}/partitions"), url, what)
        tokens = body.get("pageTokens") if isinstance(body, dict) else None
        if not isinstance(tokens, list):
            raise ProviderError(self.name, url, f"{what}/partitions gave no pageTokens",
                                'this API may not offer keyset paging: set paging = "offset"')
        for token in tokens:
            while token:
                response = self._get(url, {"pageToken": token, "pageSize": self.page_size, **window}, what)
                page = self._items(response, url, what)
                yield page
                token = response.headers.get("Next-Page-Token") if page else None

    def _items(self, response: requests.Response, url: str, what: str) -> list[Mapping[str, Any]]:
        page = self._json(response, url, what)
        if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
            raise ProviderError(self.name, url, "the answer is not a list of items", "check base_url and school_year")
        return page

    def _get(self, url: str, params: Mapping[str, Any] | None, what: str) -> requests.Response:
        response = self._send(url, params, what)
        if response.status_code == 401 and isinstance(self.session.auth, ClientCredentials):
            self.session.auth.renew()  # expired or revoked early: one more try with a new token
            response = self._send(url, params, what)
        if response.status_code == 404:
            raise NotExposed(self.name, url, f"{what} is not found (404)",
                                "the API's profile or data standard may not expose it; check base_url and school_year")
        if response.status_code in (401, 403):
            raise NotPermitted(self.name, url, f"not allowed to read {what} ({response.status_code})",
                                "ask the API's operator to give this client's claim set read access to it")
        if response.status_code == 400:
            raise BadRequest(self.name, url, f"{what}: answered 400 (bad request)",
                             "tell the API's operator which request was refused")
        if response.status_code >= 400:
            raise ProviderError(self.name, url, f"answered {response.status_code}",
                                "if use_snapshot is on, the API may have no snapshot: turn it off or ask for one")
        return response

    def _send(self, url: str, params: Mapping[str, Any] | None, what: str) -> requests.Response:
        headers = {"Use-Snapshot": "true"} if self.use_snapshot and self.session.auth is not None else {}
        try:
            return self.session.get(url, params=params, timeout=self.timeout, headers=headers)
        except requests.exceptions.RetryError as exc:
            raise ProviderError(self.name, url, f"still failing after retries ({exc})", "try again later") from None
        except requests.exceptions.RequestException as exc:
            raise ProviderError(self.name, url, f"cannot reach the API ({type(exc).__name__})",
                                "check base_url and the network", retriable=True) from None

    def _json(self, response: requests.Response, url: str, what: str) -> Any:
        if response.status_code >= 400:
            raise ProviderError(self.name, url, f"{what}: answered {response.status_code}", "check base_url")
        try:
            return response.json()
        except ValueError:
            raise ProviderError(self.name, url, f"{what} is not JSON", "check base_url: it may point at a web page") from None


# --- the connector -----------------------------------------------------------------------------------

# Stream -> (canonical table, the resources it reads).
STREAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "schools": ("schools", ("localEducationAgencies", "schools")), "terms": ("terms", ("sessions",)),
    "students": ("students", ("students",)), "guardians": ("guardians", ("contacts",)),
    "student_guardians": ("student_guardians", ("studentContactAssociations",)),
    "enrollments": ("enrollments", ("studentSchoolAssociations",)), "courses": ("courses", ("courseOfferings",)),
    "sections": ("sections", ("sections",)), "section_terms": ("section_terms", ("sections",)),
    "section_enrollments": ("section_enrollments", ("studentSectionAssociations",)),
    "assignments": ("assignments", ("gradebookEntries",)), "scores": ("scores", ("studentGradebookEntries",)),
    "term_grades": ("term_grades", ("grades",)),
    "attendance": ("attendance", ("studentSchoolAttendanceEvents", "studentSectionAttendanceEvents")),
}
# The streams that decide who may see which student (schools, students, guardians, their links,
# enrolments): an API that will not give them fails the run. Every other stream is optional:
# a profile or data standard without it (a 404, or a 403 from the profile) skips it with a warning.
REQUIRED_STREAMS = frozenset({"schools", "students", "guardians", "student_guardians", "enrollments"})
LOOKUP_LIMIT = 25  # more students than this to re-read one by one: read the students listing once instead
OLD_NAMES = {"contacts": "parents", "studentContactAssociations": "studentParentAssociations"}
USED = {  # the fields each resource's mapping reads (after flattening references); any other is reported
    "localEducationAgencies": "localEducationAgencyId nameOfInstitution",
    "schools": "schoolId nameOfInstitution localEducationAgencyId",
    "sessions": "schoolId schoolYear sessionName termDescriptor beginDate endDate",
    "students": "studentUniqueId firstName lastSurname middleName preferredFirstName birthDate",
    "contacts": "contactUniqueId parentUniqueId firstName lastSurname electronicMails telephones",
    "studentContactAssociations": "studentUniqueId contactUniqueId parentUniqueId relationDescriptor legalGuardian "
                                  "livesWith primaryContactStatus emergencyContactStatus contactPriority",
    "studentSchoolAssociations": "studentUniqueId schoolId entryDate exitWithdrawDate exitWithdrawTypeDescriptor "
                                 "entryGradeLevelDescriptor",
    "courseOfferings": "schoolId schoolYear sessionName localCourseCode localCourseTitle courseCode",
    "sections": "schoolId schoolYear sessionName localCourseCode sectionIdentifier sectionName classPeriods "
                "classroomIdentificationCode",
    "studentSectionAssociations": "studentUniqueId schoolId schoolYear sessionName localCourseCode sectionIdentifier "
                                  "beginDate endDate",
    "gradebookEntries": "gradebookEntryIdentifier namespace title gradebookEntryTitle dateAssigned dueDate maxPoints "
                        "gradebookEntryTypeDescriptor schoolId schoolYear sessionName localCourseCode sectionIdentifier",
    "studentGradebookEntries": "gradebookEntryIdentifier namespace gradebookEntryTitle dateAssigned studentUniqueId "
                               "numericGradeEarned letterGradeEarned dateFulfilled schoolId schoolYear sessionName "
                               "localCourseCode sectionIdentifier beginDate",
    "grades": "studentUniqueId schoolId schoolYear sessionName localCourseCode sectionIdentifier beginDate "
              "gradingPeriodDescriptor periodSequence gradeTypeDescriptor letterGradeEarned numericGradeEarned",
    "studentSchoolAttendanceEvents": "studentUniqueId schoolId eventDate attendanceEventCategoryDescriptor "
                                     "sessionName schoolYear eventDuration",
    "studentSectionAttendanceEvents": "studentUniqueId schoolId schoolYear sessionName localCourseCode "
                                      "sectionIdentifier eventDate attendanceEventCategoryDescriptor eventDuration",
}
BOOKKEEPING = {"id", "_etag", "_lastModifiedDate", "link"}


class EdFiConnector:
    """Streams of one Ed-Fi ODS/API."""

    def __init__(self, name: str, source_system: str, api: EdFiApi, descriptors: Descriptors | None = None,
                 portal_rule: str = "legal-guardian") -> None:
        self.name, self.source_system, self.api = name, source_system, api
        self.descriptors, self.portal_rule = descriptors or Descriptors(), portal_rule
        self.resource_ids: dict[tuple[str, str], str] = {}  # (resource, server id) -> natural key
        self._unmapped: dict[str, Counter[str]] = {}
        self._schools_of: dict[str, tuple[str, str | None]] | None = None
        self._unreadable: dict[str, str | None] = {}  # optional resource -> why this client cannot read it

    @property
    def streams(self) -> tuple[StreamSpec, ...]:
        # Every stream is incremental by change version, with /deletes for what went: no stream
        # needs a full listing each run to see deletions.
        incremental = self.api.change_queries  # else each run reads everything, and what vanished is deleted
        # A skipped stream is left out, not listed empty: the engine then keeps its rows and cursor as they are.
        return tuple(StreamSpec(name=name, table=table, incremental=incremental)
                     for name, (table, _) in STREAMS.items() if self._readable(name))

    def _readable(self, stream: str) -> bool:
        """Whether an optional stream has a resource this client may read; each one skipped is a warning of the run."""
        if stream in REQUIRED_STREAMS:
            return True
        resources = [self.resource(path) for path in STREAMS[stream][1]]
        fresh = [r for r in resources if r not in self._unreadable]
        for resource in fresh:
            self._unreadable[resource] = self.api.exposed(resource)
        readable = [r for r in resources if self._unreadable[r] is None]
        for resource in fresh:
            if self._unreadable[resource] is not None:
                effect = (f"the {stream} stream reads {', '.join(readable)} only" if readable else
                          f"the {stream} stream is skipped (its rows in the replica stay as they were)")
                self.api.warnings.add(f"the API gives this client no {resource} ({self._unreadable[resource]}): "
                                      f"{effect}; if the district keeps {resource}, ask the API's operator to add it "
                                      "to this client's profile and claim set")
        return bool(readable)

    def resource(self, path: str) -> str:
        return path if self.api.contacts else OLD_NAMES.get(path, path)

    def iter_records(self, stream: str, since: dt.datetime | int | None) -> Iterator[Item]:
        stream_named(self.streams, stream)
        if isinstance(since, dt.datetime):
            raise ValueError("Ed-Fi reads by change version, an integer, not a time")
        table, resources = STREAMS[stream]
        newest = self.api.newest_change_version()
        build = getattr(self, f"_{stream}")
        sent: set[str] = set()
        for path in resources:
            resource = self.resource(path)
            if self._unreadable.get(resource):
                continue  # an optional resource this client cannot read: warned of in streams
            if since is not None:
                yield from self._key_changes(stream, resource, since, newest)
            seen: Counter[str] = Counter()
            for number, item in enumerate(self._listing(stream, resource, since), start=1):
                flat = flatten(item)
                seen.update(self._unused(path, item))
                position = f"GET {resource} item {number}"
                try:
                    self._learn(stream, resource, item, flat)
                    if any(isinstance(v, str) and "\x00" in v for v in flat.values()):
                        raise ValueError(convert.NUL_REFUSED)
                    for record in build(flat, path):
                        sent.add(record.source_id)
                        yield _stamped(record, newest)
                except ValueError as exc:  # with its source id when known: its stored row is kept, not deleted
                    yield Reject(table, position, str(exc), payload_hash(sorted(map(str, flat.items()))),
                                 self._known_id(stream, resource, flat))
            if seen:
                self._unmapped.setdefault(stream, Counter()).update(seen)
            if since is not None:
                yield from self._deletes(stream, resource, since, newest)
        if stream == "students" and since is not None:
            yield from self._moved_students(since, newest, sent)

    def _listing(self, stream: str, resource: str, since: int | None) -> Iterator[Mapping[str, Any]]:
        """The resource's items; a required resource the API will not give fails the run saying what to ask for."""
        try:
            return self.api.items(resource, since)
        except (NotExposed, NotPermitted) as exc:
            if stream not in REQUIRED_STREAMS:
                raise
            raise ProviderError(self.name, exc.url, exc.problem,
                                f"{resource} is required: it decides who may see which student. Check base_url and "
                                "school_year, and ask the API's operator to give this client's profile and claim set "
                                f"read access to {resource}") from None

    def _moved_students(self, since: int, newest: int | None, sent: set[str]) -> Iterator[Item]:
        """Students whose school association changed (not the student): sent again with the school and grade it gives."""
        changed = self._students_with_changed_schools(since) - sent
        if not changed:
            return
        if len(changed) > LOOKUP_LIMIT:
            items: list[Mapping[str, Any]] = [i for i in self.api.items("students", None)
                                              if str(flatten(i).get("studentUniqueId")) in changed]
        else:
            items = [i for student in sorted(changed) for i in self.api.find("students", {"studentUniqueId": student})]
        for number, item in enumerate(items, start=1):
            flat = flatten(item)
            try:
                self._learn("students", "students", item, flat)
                for record in self._students(flat, "students"):
                    yield _stamped(record, newest)
            except ValueError as exc:
                yield Reject("students", f"GET students (school association changed) item {number}", str(exc),
                             payload_hash(sorted(map(str, flat.items()))), self._known_id("students", "students", flat))

    def _students_with_changed_schools(self, since: int) -> set[str]:
        """Students named by a studentSchoolAssociation changed, moved or deleted after ``since``."""
        resource = "studentSchoolAssociations"
        students = {str(flatten(i).get("studentUniqueId") or "") for i in self.api.items(resource, since)}
        for item in self.api.items(resource, since, "/deletes"):
            key_values = item.get("keyValues")
            if isinstance(key_values, dict) and key_values.get("studentUniqueId"):
                students.add(str(key_values["studentUniqueId"]))
            else:  # older APIs: the key this gateway saw it with, "student@school:entry date"
                known = self.resource_ids.get((resource, str(item.get("id"))), "")
                students.add(known.split("@", 1)[0])
        for item in self.api.items(resource, since, "/keyChanges"):
            for side in ("oldKeyValues", "newKeyValues"):
                students.add(str(flatten(item.get(side) or {}).get("studentUniqueId") or ""))
        students.discard("")
        return students

    def unmapped_fields(self) -> Mapping[str, Counter[str]]:
        return self._unmapped

    def warnings(self) -> list[str]:
        """What this run's summary must say about the API (the engine keeps it with the run)."""
        return sorted(self.api.warnings)

    def close(self) -> None:
        self.api.close()
        self._schools_of = None
        self._unreadable.clear()

    # --- change queries ------------------------------------------------------------------------

    def _deletes(self, stream: str, resource: str, since: int, newest: int | None) -> Iterator[Item]:
        table = STREAMS[stream][0]
        for number, item in enumerate(self.api.items(resource, since, "/deletes"), start=1):
            key_values = item.get("keyValues")
            try:
                if isinstance(key_values, dict) and key_values:
                    source_id = self._id(stream, resource, flatten(key_values))
                else:  # older APIs: only the id; the natural key is the one we saw it with
                    source_id = self.resource_ids.get((_label(stream, resource), str(item.get("id"))), "")
                    if not source_id:
                        raise ValueError(f"deleted {resource} id {item.get('id')} was never read by this gateway, "
                                         "so its natural key is unknown: a full run removes it")
            except ValueError as exc:
                yield Reject(table, f"GET {resource}/deletes item {number}", str(exc), payload_hash(str(item)))
                continue
            yield Tombstone(table, source_id, newest)

    def _key_changes(self, stream: str, resource: str, since: int, newest: int | None) -> Iterator[Item]:
        table = STREAMS[stream][0]
        for number, item in enumerate(self.api.items(resource, since, "/keyChanges"), start=1):
            try:
                old = self._id(stream, resource, flatten(item.get("oldKeyValues") or {}))
                new = self._id(stream, resource, flatten(item.get("newKeyValues") or {}))
            except ValueError as exc:
                yield Reject(table, f"GET {resource}/keyChanges item {number}", str(exc), payload_hash(str(item)))
                continue
            if item.get("id"):
                self.resource_ids[(_label(stream, resource), str(item["id"]))] = new
            yield KeyChange(table, old, new, newest)

    def _id(self, stream: str, resource: str, flat: Flat) -> str:
        """The source id an item (or a keyValues object) has in this stream."""
        if stream == "section_terms":  # a section's one term: the session its course offering is in
            return f"{section_key(flat)}:{session_key(flat)}"
        return RESOURCES[resource].key(flat)

    def _known_id(self, stream: str, resource: str, flat: Flat) -> str | None:
        try:
            return self._id(stream, resource, flat)
        except ValueError:
            return None

    def _learn(self, stream: str, resource: str, item: Mapping[str, Any], flat: Flat) -> None:
        if item.get("id"):
            self.resource_ids[(_label(stream, resource), str(item["id"]))] = self._id(stream, resource, flat)

    def _unused(self, path: str, item: Mapping[str, Any]) -> Counter[str]:
        used = set(USED.get(path, "").split()) | BOOKKEEPING
        names = Counter(f"{path}:{name}" for name in flatten(item) if name not in used and name != "_ext")
        for extension in (item.get("_ext") or {}).values():  # district extensions: reported by name only
            if isinstance(extension, dict):
                names.update(f"{path}:_ext.{name}" for name in extension)
        return names

    # --- one builder per stream ----------------------------------------------------------------

    def _schools(self, f: Flat, path: str) -> Iterator[Record]:
        if path == "localEducationAgencies":
            yield SchoolRecord(source_id=_part(f, "localEducationAgencyId"), name=_part(f, "nameOfInstitution"),
                               kind="district", school_number=None)
        else:
            district = f.get("localEducationAgencyId")
            yield SchoolRecord(source_id=_part(f, "schoolId"), name=_part(f, "nameOfInstitution"), kind="school",
                               school_number=_part(f, "schoolId"), parent_source_id=str(district) if district else None)

    def _terms(self, f: Flat, path: str) -> Iterator[Record]:
        yield TermRecord(source_id=session_key(f), title=_part(f, "sessionName"),
                         kind=self.descriptors.required("TermDescriptor", f.get("termDescriptor")),
                         start_date=convert.to_date(f.get("beginDate")), end_date=convert.to_date(f.get("endDate")),
                         school_year=convert.to_int(f.get("schoolYear")))

    def _students(self, f: Flat, path: str) -> Iterator[Record]:
        student = _part(f, "studentUniqueId")
        school, grade = self._schools_by_student().get(student, (None, None))
        yield StudentRecord(source_id=student, given_name=_part(f, "firstName"), family_name=_part(f, "lastSurname"),
                            middle_name=convert.to_text(f.get("middleName")),
                            preferred_name=convert.to_text(f.get("preferredFirstName")), student_number=student,
                            grade_level=grade, school_source_id=school, birth_date=convert.to_date(f.get("birthDate")))

    def _guardians(self, f: Flat, path: str) -> Iterator[Record]:
        emails = [e for e in f.get("electronicMails") or [] if isinstance(e, dict)]
        emails.sort(key=lambda e: not e.get("primaryEmailAddressIndicator"))
        phones = sorted((p for p in f.get("telephones") or [] if isinstance(p, dict)),
                        key=lambda p: p.get("orderOfPriority") or 99)
        yield GuardianRecord(source_id=_guardian_id(f), given_name=_part(f, "firstName"), family_name=_part(f, "lastSurname"),
                             email=convert.to_text(emails[0].get("electronicMailAddress")) if emails else None,
                             phone=convert.to_text(phones[0].get("telephoneNumber")) if phones else None)

    def _student_guardians(self, f: Flat, path: str) -> Iterator[Record]:
        student, guardian = _part(f, "studentUniqueId"), _guardian_id(f)
        relationship = self.descriptors.get("RelationDescriptor", f.get("relationDescriptor"))
        yield StudentGuardianRecord(source_id=f"{student}:{guardian}", student_source_id=student,
                                    guardian_source_id=guardian,
                                    relationship=relationship or descriptor_code(f.get("relationDescriptor")),
                                    portal_access=self._portal_access(f, relationship),
                                    custody=convert.to_bool(f.get("legalGuardian")),
                                    lives_with=convert.to_bool(f.get("livesWith")))

    def _portal_access(self, f: Flat, relationship: str | None) -> bool:
        """The documented rule: a legal guardian has access; when the API does not say, a parent or guardian has."""
        if self.portal_rule != "legal-guardian":
            return self.portal_rule == "all"
        legal = convert.to_bool(f.get("legalGuardian"))
        return legal if legal is not None else relationship in ("parent", "guardian")

    def _enrollments(self, f: Flat, path: str) -> Iterator[Record]:
        student, school = _part(f, "studentUniqueId"), _part(f, "schoolId")
        exit_date = convert.to_date(f.get("exitWithdrawDate"))
        kind = self.descriptors.get("ExitWithdrawTypeDescriptor", f.get("exitWithdrawTypeDescriptor"))
        yield EnrollmentRecord(source_id=f"{student}@{school}:{_part(f, 'entryDate')}", student_source_id=student,
                               school_source_id=school, entry_date=convert.to_date(f.get("entryDate")),
                               exit_date=exit_date, exit_kind=kind or ("unknown" if exit_date else None),
                               grade_level=self.descriptors.get("GradeLevelDescriptor", f.get("entryGradeLevelDescriptor")))

    def _courses(self, f: Flat, path: str) -> Iterator[Record]:
        yield CourseRecord(source_id=offering_key(f), title=str(f.get("localCourseTitle") or _part(f, "localCourseCode")),
                           code=_part(f, "localCourseCode"), school_source_id=_part(f, "schoolId"))

    def _sections(self, f: Flat, path: str) -> Iterator[Record]:
        periods = [p.get("classPeriodReference", {}).get("classPeriodName") for p in f.get("classPeriods") or []
                   if isinstance(p, dict)]
        yield SectionRecord(source_id=section_key(f), title=str(f.get("sectionName") or _part(f, "sectionIdentifier")),
                            course_source_id=offering_key(f), school_source_id=_part(f, "schoolId"),
                            section_code=_part(f, "sectionIdentifier"), period=",".join(p for p in periods if p) or None,
                            room=convert.to_text(f.get("classroomIdentificationCode")))

    def _section_terms(self, f: Flat, path: str) -> Iterator[Record]:
        section = section_key(f)
        yield SectionTermRecord(source_id=f"{section}:{session_key(f)}", section_source_id=section,
                                term_source_id=session_key(f))

    def _section_enrollments(self, f: Flat, path: str) -> Iterator[Record]:
        student, section = _part(f, "studentUniqueId"), section_key(f)
        yield SectionEnrollmentRecord(source_id=f"{student}@{section}:{_part(f, 'beginDate')}", section_source_id=section,
                                      student_source_id=student, start_date=convert.to_date(f.get("beginDate")),
                                      end_date=convert.to_date(f.get("endDate")))

    def _assignments(self, f: Flat, path: str) -> Iterator[Record]:
        yield AssignmentRecord(source_id=gradebook_key(f), section_source_id=section_key(f),
                               title=str(f.get("title") or _part(f, "gradebookEntryTitle")),
                               category=descriptor_code(f.get("gradebookEntryTypeDescriptor")),
                               assigned_date=convert.to_date(f.get("dateAssigned")),
                               due_date=convert.to_date(f.get("dueDate")), points_possible=convert.to_float(f.get("maxPoints")))

    def _scores(self, f: Flat, path: str) -> Iterator[Record]:
        student, entry = _part(f, "studentUniqueId"), gradebook_key(f)
        yield ScoreRecord(source_id=f"{entry}:{student}", assignment_source_id=entry, student_source_id=student,
                          points=convert.to_float(f.get("numericGradeEarned")),
                          score_text=convert.to_text(f.get("letterGradeEarned")),
                          scored_on=convert.to_date(f.get("dateFulfilled")))

    def _term_grades(self, f: Flat, path: str) -> Iterator[Record]:
        yield TermGradeRecord(source_id=RESOURCES["grades"].key(f), student_source_id=_part(f, "studentUniqueId"),
                              section_source_id=section_key(f), term_source_id=session_key(f),
                              mark=convert.to_text(f.get("letterGradeEarned")),
                              percent=convert.to_float(f.get("numericGradeEarned")))

    def _attendance(self, f: Flat, path: str) -> Iterator[Record]:
        category = f.get("attendanceEventCategoryDescriptor")
        section = section_key(f) if path == "studentSectionAttendanceEvents" else None
        duration = convert.to_float(f.get("eventDuration"))
        yield AttendanceRecord(source_id=RESOURCES[path].key(f), student_source_id=_part(f, "studentUniqueId"),
                               date=convert.to_date(_part(f, "eventDate")),  # type: ignore[arg-type]
                               status=self.descriptors.required("AttendanceEventCategoryDescriptor", category),
                               school_source_id=_part(f, "schoolId"), section_source_id=section,
                               code=descriptor_code(category), minutes=round(duration * 60) if duration else None)

    def _schools_by_student(self) -> dict[str, tuple[str, str | None]]:
        """Each student's school and grade: the association entered last (a full listing, once per run)."""
        if self._schools_of is None:
            latest: dict[str, tuple[str, str, str | None]] = {}
            for item in self.api.items("studentSchoolAssociations", None):
                f = flatten(item)
                student, entry = str(f.get("studentUniqueId") or ""), str(f.get("entryDate") or "")
                if student and (student not in latest or entry >= latest[student][0]):
                    grade = self.descriptors.get("GradeLevelDescriptor", f.get("entryGradeLevelDescriptor"))
                    latest[student] = (entry, str(f.get("schoolId") or ""), grade)
            self._schools_of = {student: (school, grade) for student, (_, school, grade) in latest.items()}
        return self._schools_of


def _total(response: requests.Response, previous: int | None) -> int | None:
    value = response.headers.get("Total-Count", "").strip()
    return int(value) if value.isdigit() else previous


def _label(stream: str, resource: str) -> str:
    """The id map's name for a resource as a stream reads it (sections give sections and section terms)."""
    return f"{resource}>{stream}" if stream == "section_terms" else resource


def _stamped(record: Record, newest: int | None) -> Record:
    """The record with the run's newest change version as its cursor value."""
    return dataclasses.replace(record, modified_at=newest)


# --- configuration -------------------------------------------------------------------------------------

def from_settings(entry: ConnectorSettings, settings: Settings) -> EdFiConnector:
    options = _checked(entry)
    secret = load_secret(settings, f"source-{entry.name}").reveal()
    timeout = float(options.get("timeout_seconds", 30))
    api = EdFiApi(entry.name, str(options["base_url"]), retrying_session(int(options.get("retries", 4))),
                  int(options.get("page_size", 500)), timeout, options.get("school_year"),
                  bool(options.get("use_snapshot", False)), options.get("paging", "offset") == "keyset")
    api.discover()  # before any token: the version document is public and names the token URL
    if not secure_or_loopback(api.token_url):
        raise ConfigError(f"connectors.{entry.name}.base_url", f"the API's token URL {api.token_url} is not https",
                          "credentials never travel in clear: ask the API's operator for https")
    credentials = ClientCredentials(entry.name, api.token_url, str(options["client_id"]), secret,
                                    "client_secret_basic", "", timeout)
    credentials.renew()  # a wrong secret is refused before any listing
    api.session.auth = credentials
    return EdFiConnector(entry.name, entry.source_system, api,
                         load_descriptor_map(entry.name, options.get("descriptor_map")),
                         _portal_rule(entry, options))


def _portal_rule(entry: ConnectorSettings, options: Mapping[str, Any]) -> str:
    value = options.get("guardian_portal_access", "legal-guardian")
    if value is True:
        return "all"
    if value is False:
        return "none"
    if value not in PORTAL_RULES:
        raise ConfigError(f"connectors.{entry.name}.guardian_portal_access", f"{value!r} is not a rule",
                          '"legal-guardian" (the default: legalGuardian, else a parent or guardian relation), '
                          "true (every link) or false (none)")
    return str(value)


def _checked(entry: ConnectorSettings) -> dict[str, Any]:
    key = f"connectors.{entry.name}"
    if "secret" in entry.options or "client_secret" in entry.options:
        raise ConfigError(f"{key}.client_secret", "may not be in the config file", f"set {env_var('source-' + entry.name)}")
    options = checked_options(entry, OPTION_KEYS, ("base_url", "client_id"))
    if not secure_or_loopback(str(options["base_url"])):
        raise ConfigError(f"{key}.base_url", "must use https", "credentials and student data never travel in clear")
    year = options.get("school_year")
    if year is not None and not (isinstance(year, int) and 1900 < year < 2200):
        raise ConfigError(f"{key}.school_year", f"{year!r} is not a year", "e.g. school_year = 2025, or leave it out")
    for name in ("page_size", "retries"):
        if name in options and not (isinstance(options[name], int) and options[name] > 0):
            raise ConfigError(f"{key}.{name}", "must be a whole number above 0", "e.g. page_size = 500")
    if options.get("paging", "offset") not in ("offset", "keyset"):
        raise ConfigError(f"{key}.paging", f"{options['paging']!r} is not offset or keyset",
                          '"keyset" only for ODS/API 7 and later (pageToken paging); "offset" works everywhere')
    if not isinstance(options.get("use_snapshot", False), bool):
        raise ConfigError(f"{key}.use_snapshot", "must be true or false", "true only where the API offers snapshots")
    _portal_rule(entry, options)
    return options
