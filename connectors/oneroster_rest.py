"""The ``oneroster-rest`` connector: a OneRoster 1.1 or 1.2 REST provider, read with GET only.

Authentication goes through oauthlib: OAuth 2 client credentials (a bearer token fetched
with the one POST this connector makes) or OAuth 1.0a signed requests (HMAC-SHA256, via
requests-oauthlib). Plain http is refused except on loopback addresses (tests). Pages follow the ``Link`` header's ``next``, else ``limit``/``offset``.
Changes since a cursor are asked for with a closed bound (``dateLastModified>=``); the
duplicates that brings are removed by key downstream. 429 and 5xx answers are retried with
jittered exponential backoff honouring ``Retry-After`` (urllib3's ``Retry``). JSON objects
are normalized into the rows ``connectors.oneroster`` reads, so CSV and REST agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from oauthlib.oauth2 import BackendApplicationClient
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth1
from urllib3.util.retry import Retry

from gateway.errors import ConfigError, GatewayError
from gateway.security.keys import env_var, load_secret
from gateway.settings import ConnectorSettings, Settings

from connectors.base import checked_options, guardian_portal_access
from connectors.oneroster_reader import OneRosterReader, Row

OPTION_KEYS = {"base_url", "version", "auth", "client_id", "token_url", "guardian_portal_access",
               "page_size", "timeout_seconds", "retries", "gradebook", "demographics"}
ROSTERING = ("orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics")
GRADEBOOK = ("categories", "lineItems", "results")
REFERENCES = {  # JSON reference field -> the normalized row's field
    "parent": "parentsourcedid", "course": "coursesourcedid", "school": "schoolsourcedid", "org": "orgsourcedid",
    "user": "usersourcedid", "class": "classsourcedid", "lineitem": "lineitemsourcedid", "student": "studentsourcedid",
    "category": "categorysourcedid", "gradingperiod": "gradingperiodsourcedid", "primaryorg": "primaryorgsourcedid",
    "schoolyear": "schoolyearsourcedid", "terms": "termsourcedids", "orgs": "orgsourcedids", "agents": "agentsourcedids",
}
RENAMED = {"preferredfirstname": "preferredgivenname", "preferredlastname": "preferredfamilyname"}


class ProviderError(GatewayError):
    """The provider answered, but not with what was asked for."""

    def __init__(self, connector: str, url: str, problem: str, hint: str, retriable: bool = False) -> None:
        self.connector, self.url, self.problem, self.retriable = connector, url, problem, retriable
        super().__init__(f"connector {connector}: GET {url}: {problem}; {hint}")


class RestSource:
    """Rows of a OneRoster REST provider, one collection at a time."""

    incremental = True

    def __init__(self, name: str, base_url: str, version: str, session: requests.Session, page_size: int = 100,
                 timeout: float = 30.0, gradebook: bool = True, demographics: bool = True) -> None:
        self.name, self.base_url, self.version = name, base_url.rstrip("/"), version
        self.session, self.page_size, self.timeout = session, page_size, timeout
        self.available = set(ROSTERING) | (set(GRADEBOOK) if gradebook else set()) | {"roles"}
        if not demographics:
            self.available.discard("demographics")
        if version == "1.1":
            self.available.discard("roles")  # 1.1 users carry their own role
        self._fields: dict[str, list[str]] = {}

    def mode(self, file: str) -> str:
        return "bulk" if file in self.available else "absent"

    def fields(self, file: str) -> list[str]:
        return self._fields.get(file, [])

    def rows(self, file: str, since: dt.datetime | int | None = None) -> Iterator[tuple[str, Row]]:
        if isinstance(since, int):
            raise ValueError("OneRoster filters by dateLastModified, a time, not an integer version")
        if file == "roles":  # 1.2 has no roles collection: each user lists its roles
            yield from self._roles(since)
            return
        seen: dict[str, None] = {}
        for number, item in enumerate(self._items(file, since), start=1):
            row = normalize(item)
            seen.update(dict.fromkeys(row))
            yield f"GET {file} item {number}", row
        self._fields[file] = list(seen)

    def _roles(self, since: dt.datetime | None) -> Iterator[tuple[str, Row]]:
        for number, user in enumerate(self._items("users", since), start=1):
            user_id = str(user.get("sourcedId", ""))
            for role in user.get("roles") or []:
                org = _reference(role.get("org"))
                yield f"GET users item {number} role", {
                    "sourcedid": f"{user_id}@{org}", "status": str(user.get("status") or ""),
                    "datelastmodified": str(user.get("dateLastModified") or ""), "usersourcedid": user_id,
                    "roletype": str(role.get("roleType") or ""), "role": str(role.get("role") or ""),
                    "orgsourcedid": org, "begindate": str(role.get("beginDate") or ""),
                    "enddate": str(role.get("endDate") or "")}

    def _items(self, collection: str, since: dt.datetime | None) -> Iterator[Mapping[str, Any]]:
        url: str | None = self._url(collection)
        params: dict[str, Any] | None = {"limit": self.page_size, "offset": 0}
        if since is not None:
            stamp = since.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            params["filter"] = f"dateLastModified>='{stamp}'"
        offset = 0
        while url:
            response = self._get(url, params)
            page = self._page(response, collection, url)
            yield from page
            following = response.links.get("next", {}).get("url")
            if following:
                url, params = following, None
            elif params is not None and len(page) == self.page_size:
                offset += self.page_size
                params = {**params, "offset": offset}
            else:
                url = None

    def _url(self, collection: str) -> str:
        if self.version == "1.1":
            return f"{self.base_url}/v1p1/{collection}"
        service = "gradebook" if collection in GRADEBOOK else "rostering"
        return f"{self.base_url}/{service}/v1p2/{collection}"

    def _get(self, url: str, params: Mapping[str, Any] | None) -> requests.Response:
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except requests.exceptions.RetryError as exc:
            raise ProviderError(self.name, url, f"still failing after retries ({exc})", "try again later") from None
        except requests.exceptions.RequestException as exc:
            raise ProviderError(self.name, url, f"cannot reach the provider ({type(exc).__name__})",
                                "check base_url and the network", retriable=True) from None
        _check_status(self.name, url, response)
        return response

    def _page(self, response: requests.Response, collection: str, url: str) -> list[Mapping[str, Any]]:
        try:
            body = response.json()
        except ValueError:
            raise ProviderError(self.name, url, "the answer is not JSON", "check base_url: it may point at a web page") from None
        items = body.get(collection) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ProviderError(self.name, url, f"the answer has no {collection!r} list", "check the version setting")
        return items


def _check_status(name: str, url: str, response: requests.Response) -> None:
    hints = {401: ("the provider refused the credentials (401)", "check client_id and the client secret"),
             403: ("not allowed to read this (403)", "ask the provider to grant this client the rostering scopes"),
             404: ("not found (404)", "check base_url and version, or turn off gradebook/demographics")}
    if response.status_code in hints:
        problem, hint = hints[response.status_code]
        raise ProviderError(name, url, problem, hint)
    if response.status_code >= 400:
        raise ProviderError(name, url, f"answered {response.status_code}", "try again later; tell the provider if it lasts")


def normalize(item: Mapping[str, Any]) -> Row:
    """A JSON object as a OneRoster CSV row: lower-cased names, references as ids, lists joined."""
    row: Row = {}
    for key, value in item.items():
        name = key.lower()
        if name in REFERENCES and (isinstance(value, dict | list)):
            row[REFERENCES[name]] = _reference(value)
        elif name == "roles" or name == "userids":
            continue  # roles become rows of their own; userIds are not read
        else:
            row[RENAMED.get(name, name)] = _text(value)
    return row


def _reference(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("sourcedId") or "")
    if isinstance(value, list):
        return ",".join(_reference(v) for v in value)
    return "" if value is None else str(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return _reference(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


class BearerToken(requests.auth.AuthBase):
    """An OAuth 2 bearer token on every request."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def fetch_token(token_url: str, client_id: str, client_secret: str, timeout: float) -> BearerToken:
    """OAuth 2 client credentials: oauthlib writes the request and checks the answer."""
    client = BackendApplicationClient(client_id=client_id)
    body = client.prepare_request_body(include_client_id=True, client_secret=client_secret)
    response = requests.post(token_url, data=body, timeout=timeout, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    client.parse_request_body_response(response.text)  # raises on an error answer or a missing token
    return BearerToken(str(client.access_token))


def make_session(options: Mapping[str, Any], client_secret: str, retries: int) -> requests.Session:
    """A GET-only session, signed per OAuth 1.0a (HMAC-SHA256) or carrying an OAuth 2 token."""
    retry = Retry(total=retries, backoff_factor=0.5, backoff_jitter=0.5, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=("GET",), respect_retry_after_header=True, raise_on_status=True)
    session = requests.Session()
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    if options["auth"] == "oauth2":
        session.auth = fetch_token(options["token_url"], options["client_id"], client_secret, 30.0)
    else:
        session.auth = OAuth1(options["client_id"], client_secret=client_secret, signature_method=SIGNATURE_HMAC_SHA256)
    return session


def from_settings(entry: ConnectorSettings, settings: Settings) -> OneRosterReader:
    options = _checked(entry)
    secret = load_secret(settings, f"source-{entry.name}").reveal()
    try:
        session = make_session(options, secret, int(options.get("retries", 4)))
    except Exception as exc:  # the token request: oauthlib and requests raise many kinds
        raise ProviderError(entry.name, options.get("token_url", ""), f"cannot get a token ({type(exc).__name__}: {exc})",
                            "check token_url, client_id and the client secret") from None
    source = RestSource(entry.name, options["base_url"], options["version"], session,
                        int(options.get("page_size", 100)), float(options.get("timeout_seconds", 30)),
                        bool(options.get("gradebook", True)), bool(options.get("demographics", True)))
    return OneRosterReader(entry.name, entry.source_system, source, options["guardian_portal_access"])


def _secure_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def _checked(entry: ConnectorSettings) -> dict[str, Any]:
    options = dict(entry.options)
    key = f"connectors.{entry.name}"
    if "secret" in options or "client_secret" in options:
        raise ConfigError(f"{key}.client_secret", "may not be in the config file", f"set {env_var('source-' + entry.name)}")
    options = checked_options(entry, OPTION_KEYS, ("base_url", "client_id"))
    if options.get("version") not in ("1.1", "1.2"):
        raise ConfigError(f"{key}.version", f"{options.get('version')!r} is not 1.1 or 1.2", "set version = \"1.1\" or \"1.2\"")
    if options.get("auth") not in ("oauth2", "oauth1"):
        raise ConfigError(f"{key}.auth", f"{options.get('auth')!r} is not oauth2 or oauth1", "set auth")
    if options["auth"] == "oauth2" and not options.get("token_url"):
        raise ConfigError(f"{key}.token_url", "is missing", "OAuth 2 needs the provider's token URL")
    for name in ("base_url", "token_url"):
        if options.get(name) and not _secure_or_loopback(str(options[name])):
            raise ConfigError(f"{key}.{name}", "must use https", "credentials and student data never travel in clear")
    guardian_portal_access(entry, options)
    return options
