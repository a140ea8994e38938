"""A loopback Ed-Fi ODS/API for tests: hand-written Ed-Fi JSON, real HTTP, its own OAuth 2 endpoint.

It serves the version document at ``/``, tokens at ``/oauth/token`` (client credentials,
HTTP Basic only, as the ODS/API documents), collections at ``/data/v3/ed-fi/{resource}``
with ``limit``/``offset``/``totalCount`` and ``minChangeVersion``/``maxChangeVersion``,
``/deletes`` (with key values, or id and change version only, as older versions answer)
and ``/keyChanges``, and ``availableChangeVersions``. Tests edit the district through
``put``, ``delete`` and ``change_key``, each of which bumps the change version as an ODS does.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edfi"
# The key fields of each resource, as an ODS reports them in keyValues (references flattened).
KEY_FIELDS = {
    "students": ("studentUniqueId",), "contacts": ("contactUniqueId",), "parents": ("parentUniqueId",),
    "studentSchoolAssociations": ("studentUniqueId", "schoolId", "entryDate"),
    "studentContactAssociations": ("studentUniqueId", "contactUniqueId"),
    "studentParentAssociations": ("studentUniqueId", "parentUniqueId"),
    "studentSectionAssociations": ("studentUniqueId", "beginDate", "localCourseCode", "schoolId", "schoolYear",
                                   "sectionIdentifier", "sessionName"),
}


@dataclass
class EdFiState:
    client_id: str = "edfi-gateway"
    secret: str = "edfi-s3cret"
    data_standard: str = "5.2.0"
    max_limit: int = 500
    min_limit: int = 0  # 1: limit=0 is refused with 400, as some API versions validate it (1 to 500)
    deletes_with_keys: bool = True  # False: /deletes answer id and changeVersion only (ODS/API before 5.3)
    total_skew: dict[str, int] = field(default_factory=dict)  # resource -> added to Total-Count
    change_queries: bool = True  # False: an operator turned change queries off (availableChangeVersions is 404)
    key_changes: bool = True  # False: an API version from before /keyChanges (404)
    year_route: int | None = None  # a year-specific deployment: /data/v3/{year}/..., a route template in the version document
    forbidden: set[str] = field(default_factory=set)  # resources this client's profile refuses (403)
    change_version: int = 0
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # resource -> items with "_cv"
    deletes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    key_changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)

    def load(self, *files: Path) -> None:
        for path in files:
            for resource, items in json.loads(path.read_text(encoding="utf-8")).items():
                for item in items:
                    self.change_version += 1
                    self.items.setdefault(resource, []).append({**item, "_cv": self.change_version})

    def put(self, resource: str, item: dict[str, Any]) -> None:
        """Create or replace the item with this id (a POST or PUT on an ODS)."""
        self.change_version += 1
        kept = [i for i in self.items.get(resource, []) if i["id"] != item["id"]]
        self.items[resource] = [*kept, {**item, "_cv": self.change_version}]

    def find(self, resource: str, item_id: str) -> dict[str, Any]:
        return copy.deepcopy(next(i for i in self.items[resource] if i["id"] == item_id))

    def delete(self, resource: str, item_id: str) -> None:
        item = self.find(resource, item_id)
        self.change_version += 1
        self.items[resource] = [i for i in self.items[resource] if i["id"] != item_id]
        self.deletes.setdefault(resource, []).append({"id": item_id, "changeVersion": self.change_version,
                                                      "keyValues": key_values(resource, item)})

    def change_key(self, resource: str, item_id: str, name: str, value: str) -> None:
        """A natural key corrected: the item and every reference to it follow (the ODS cascades)."""
        item = self.find(resource, item_id)
        old = key_values(resource, item)
        self.change_version += 1
        item[name] = value
        self.put(resource, {k: v for k, v in item.items() if k != "_cv"})
        self.key_changes.setdefault(resource, []).append({"id": item_id, "changeVersion": self.change_version,
                                                          "oldKeyValues": old, "newKeyValues": key_values(resource, item)})
        for other, items in self.items.items():
            for candidate in list(items):
                reference = next((v for v in candidate.values() if isinstance(v, dict) and v.get(name) == old[name]), None)
                if reference is not None and other != resource:
                    before = key_values(other, candidate)
                    moved = {k: v for k, v in copy.deepcopy(candidate).items() if k != "_cv"}
                    next(v for v in moved.values() if isinstance(v, dict) and v.get(name) == old[name])[name] = value
                    self.put(other, moved)
                    self.key_changes.setdefault(other, []).append(
                        {"id": candidate["id"], "changeVersion": self.change_version,
                         "oldKeyValues": before, "newKeyValues": key_values(other, moved)})

PAGING_PARAMETERS = {"limit", "offset", "totalCount", "minChangeVersion", "maxChangeVersion", "pageToken", "pageSize",
                     "number"}


def page_token(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def key_values(resource: str, item: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in item.items():
        if name.endswith("Reference") and isinstance(value, dict):
            flat.update(value)
        else:
            flat.setdefault(name, value)
    names = KEY_FIELDS.get(resource) or [n for n, v in flat.items() if not isinstance(v, dict | list) and n not in ("id", "_cv")]
    return {name: flat[name] for name in names if name in flat}


class Handler(BaseHTTPRequestHandler):
    state: EdFiState
    base: str

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        body = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        self.state.requests.append(("POST", url.path, body, dict(self.headers)))
        if url.path != "/oauth/token":
            return self._send(404, {"message": "not found"})
        if body.get("grant_type") != ["client_credentials"]:
            return self._send(400, {"error": "unsupported_grant_type"})
        if self._basic() != (self.state.client_id, self.state.secret):
            return self._send(401, {"error": "invalid_client"})
        token = secrets.token_hex(12)
        self.state.tokens.add(token)
        self._send(200, {"access_token": token, "expires_in": 1800, "token_type": "bearer"})

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.state.requests.append(("GET", url.path, query, dict(self.headers)))
        if url.path == "/":
            return self._send(200, self._version())
        if self.headers.get("Authorization", "").removeprefix("Bearer ") not in self.state.tokens:
            return self._send(401, {"message": "Authorization denied."})
        year = f"{self.state.year_route}/" if self.state.year_route else ""
        if url.path == f"/changeQueries/v1/{year}availableChangeVersions" and self.state.change_queries:
            return self._send(200, {"oldestChangeVersion": 0, "newestChangeVersion": self.state.change_version})
        prefix = f"/data/v3/{year}ed-fi/"
        if not url.path.startswith(prefix):
            return self._send(404, {"message": "not found"})
        resource, _, kind = url.path.removeprefix(prefix).partition("/")
        if resource in self.state.forbidden:
            return self._send(403, {"message": "The API client's assigned claim set or profile does not allow it."})
        if (resource not in self.state.items and resource not in self.state.deletes) or (
                kind == "keyChanges" and not self.state.key_changes):
            return self._send(404, {"message": f"The specified resource '{resource}' could not be found."})
        rows = self._rows(resource, "" if kind == "partitions" else kind, query)
        if kind == "partitions":  # one partition: the token of the first page
            return self._send(200, {"pageTokens": [page_token(0)]})
        if "pageToken" in query:  # keyset paging (ODS/API 7): no Total-Count, the next token in a header
            start, size = int(base64.b64decode(query["pageToken"][0])), int(query["pageSize"][0])
            following = {"Next-Page-Token": page_token(start + size)} if start + size < len(rows) else {}
            return self._send(200, rows[start:start + size], following)
        offset, limit = int(query.get("offset", ["0"])[0]), min(int(query.get("limit", ["25"])[0]), self.state.max_limit)
        if limit < self.state.min_limit:
            return self._send(400, {"message": f"Limit must be omitted or set to a value between {self.state.min_limit} "
                                               f"and {self.state.max_limit}."})
        headers = {}
        if query.get("totalCount") == ["true"]:
            headers["Total-Count"] = str(len(rows) + self.state.total_skew.get(resource, 0))
        self._send(200, rows[offset:offset + limit], headers)

    def _rows(self, resource: str, kind: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        low = int(query.get("minChangeVersion", ["0"])[0])
        high = int(query.get("maxChangeVersion", [str(self.state.change_version)])[0])
        if kind == "deletes":
            found = [d for d in self.state.deletes.get(resource, []) if low <= d["changeVersion"] <= high]
            return found if self.state.deletes_with_keys else [{"id": d["id"], "changeVersion": d["changeVersion"]}
                                                               for d in found]
        if kind == "keyChanges":
            return [k for k in self.state.key_changes.get(resource, []) if low <= k["changeVersion"] <= high]
        # Any other parameter filters by a field's value, as the ODS/API does (e.g. ?studentUniqueId=604821).
        fields = {n: v[0] for n, v in query.items() if n not in PAGING_PARAMETERS}
        return [{k: v for k, v in item.items() if k != "_cv"} for item in self.state.items.get(resource, [])
                if low <= item["_cv"] <= high and all(str(key_values("", item).get(n)) == v for n, v in fields.items())]

    def _version(self) -> dict[str, Any]:
        year = "{schoolYearFromRoute}/" if self.state.year_route else ""
        return {"version": "7.1", "apiMode": "Sandbox", "dataModels": [{"name": "Ed-Fi", "version": self.state.data_standard}],
                "urls": {"dependencies": f"{self.base}/metadata/data/v3/dependencies",
                         "openApiMetadata": f"{self.base}/metadata/", "oauth": f"{self.base}/oauth/token",
                         "dataManagementApi": f"{self.base}/data/v3/{year}", "xsdMetadata": f"{self.base}/metadata/xsd",
                         "changeQueries": f"{self.base}/changeQueries/v1/{year}"}}

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return unquote_plus(user), unquote_plus(password)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class EdFiProvider:
    """The loopback ODS/API, serving the Grand Bend fixture (Data Standard 5 names, or 4 with parents)."""

    def __init__(self, data_standard: str = "5.2.0") -> None:
        self.state = EdFiState(data_standard=data_standard)
        district = FIXTURES / "grand-bend-ds5" / "district.json"
        if data_standard.startswith("5"):
            self.state.load(district)
        else:
            self.state.load(district, FIXTURES / "grand-bend-ds4" / "parents.json")
            for renamed in ("contacts", "studentContactAssociations"):
                self.state.items.pop(renamed)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.server.RequestHandlerClass = type("BoundHandler", (Handler,), {"state": self.state, "base": self.base_url})
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def gets(self, path_part: str) -> list[tuple[str, dict[str, list[str]], dict[str, str]]]:
        return [(path, query, headers) for method, path, query, headers in self.state.requests
                if method == "GET" and path_part in path]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
