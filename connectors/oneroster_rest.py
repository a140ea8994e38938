"""The ``oneroster-rest`` connector: a OneRoster 1.1 or 1.2 REST provider, read with GET only.

Authentication goes through oauthlib: OAuth 2 client credentials (a bearer token fetched
with the one POST this connector makes, renewed before it expires and once after a 401;
the client authenticates with HTTP Basic or in the body, RFC 6749 §2.3.1) or OAuth 1.0a
signed requests (HMAC-SHA256, via requests-oauthlib). Plain http is refused except on
loopback addresses (tests).

A listing is complete or it fails: pages follow the ``Link`` header's ``next``, else
``offset`` by the rows received so far (providers cap ``limit`` without saying so); rows
are asked for sorted by ``sourcedId`` so a row modified mid-read does not move; and the
rows received must add up to ``X-Total-Count`` with no ``sourcedId`` on two pages, or the
stream fails before any of it is handed on. Each collection is read once per run and kept
(compressed, in memory) for the streams and indexes that derive from it.

Changes since a cursor are asked for with a closed bound (``dateLastModified>=``); the
duplicates that brings are removed by key downstream. 429 and 5xx answers are retried with
jittered exponential backoff honouring ``Retry-After`` (urllib3's ``Retry``). JSON objects
are normalized into the rows ``connectors.oneroster`` reads, so CSV and REST agree.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import zlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote_plus, urljoin, urlsplit

import requests
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth1
from urllib3.util.retry import Retry

from gateway.errors import ConfigError, SyncError
from gateway.security.keys import env_var, load_secret
from gateway.settings import ConnectorSettings, Settings

from connectors.base import checked_options, guardian_portal_access
from connectors.oneroster import parse_timestamp
from connectors.oneroster_reader import OneRosterReader, Row

OPTION_KEYS = {"base_url", "version", "auth", "client_id", "token_url", "client_auth", "scope", "guardian_portal_access",
               "page_size", "sort", "timeout_seconds", "retries", "gradebook", "demographics"}
CLIENT_AUTH = ("client_secret_basic", "client_secret_post")
ROSTERING = ("orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics")
GRADEBOOK = ("categories", "lineItems", "results")
# Listed in full every run whatever the cursor (the reader needs every user's role), so a
# filtered read of them is taken from that listing instead of asked for again. A provider
# that shows ``tobedeleted`` users only to filtered requests has them deleted at the next
# full run; their links and memberships, complete each run, go at once.
FULL_EACH_RUN = ("users",)
REFERENCES = {  # JSON reference field -> the normalized row's field
    "parent": "parentsourcedid", "course": "coursesourcedid", "school": "schoolsourcedid", "org": "orgsourcedid",
    "user": "usersourcedid", "class": "classsourcedid", "lineitem": "lineitemsourcedid", "student": "studentsourcedid",
    "category": "categorysourcedid", "gradingperiod": "gradingperiodsourcedid", "primaryorg": "primaryorgsourcedid",
    "schoolyear": "schoolyearsourcedid", "terms": "termsourcedids", "orgs": "orgsourcedids", "agents": "agentsourcedids",
}
RENAMED = {"preferredfirstname": "preferredgivenname", "preferredlastname": "preferredfamilyname"}
INCOMPLETE_HINT = ("nothing of this listing was applied; rows may have changed during the read: run again, "
                   "and tell the provider if it lasts")


class ProviderError(SyncError):
    """The provider (or its token endpoint) answered, but not with what was asked for.

    ``step`` names the request that failed: the token request (a POST) or a listing's GET.
    """

    def __init__(self, connector: str, url: str, problem: str, hint: str, retriable: bool = False,
                 step: str | None = None) -> None:
        self.connector, self.url, self.problem = connector, url, problem
        self.disposition = "retriable" if retriable else "fatal"
        self.step = step or f"GET {url}"
        super().__init__(f"connector {connector}: {self.step}: {problem}; {hint}")


class Spool:
    """One listing's items as the provider sent them, kept for the rest of the run.

    Compressed in chunks in memory: a 200,000-user district takes a few MB, no student
    data is written to disk, and any number of readers can go through it at once.
    """

    CHUNK = 1000

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pending: list[str] = []
        self.count = 0

    def add(self, item: Mapping[str, Any]) -> None:
        self._pending.append(json.dumps(item, separators=(",", ":")))  # one line: json escapes newlines
        self.count += 1
        if len(self._pending) >= self.CHUNK:
            self.seal()

    def seal(self) -> None:
        if self._pending:
            self._chunks.append(zlib.compress("\n".join(self._pending).encode(), 1))
            self._pending = []

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for chunk in self._chunks:
            for line in zlib.decompress(chunk).decode().split("\n"):
                yield json.loads(line)


class RestSource:
    """Rows of a OneRoster REST provider, one collection at a time, each listed once per run."""

    incremental = True

    def __init__(self, name: str, base_url: str, version: str, session: requests.Session, page_size: int = 100,
                 timeout: float = 30.0, gradebook: bool = True, demographics: bool = True, sort: bool = True) -> None:
        self.name, self.base_url, self.version = name, base_url.rstrip("/"), version
        self.session, self.page_size, self.timeout, self.sort = session, page_size, timeout, sort
        self.available = set(ROSTERING) | (set(GRADEBOOK) if gradebook else set()) | {"roles"}
        if not demographics:
            self.available.discard("demographics")
        if version == "1.1":
            self.available.discard("roles")  # 1.1 users carry their own role
        self._fields: dict[str, list[str]] = {}
        self._listings: dict[tuple[str, dt.datetime | None], Spool] = {}

    def mode(self, file: str) -> str:
        return "bulk" if file in self.available else "absent"

    def fields(self, file: str) -> list[str]:
        return self._fields.get(file, [])

    def close(self) -> None:
        self._listings.clear()

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
        """The collection's items (changed since ``since``), from this run's one read of it."""
        if since is not None and (collection in FULL_EACH_RUN or (collection, None) in self._listings):
            return (item for item in self._listing(collection, None) if _modified_since(item, since))
        return iter(self._listing(collection, since))

    def _listing(self, collection: str, since: dt.datetime | None) -> Spool:
        key = (collection, since)
        if key not in self._listings:
            try:
                self._listings[key] = self._read(collection, since)
            except ProviderError:
                self._listings.clear()  # a retried run reads everything afresh
                raise
        return self._listings[key]

    def _read(self, collection: str, since: dt.datetime | None) -> Spool:
        """Every page of a listing, checked: complete, each row once, as many as the provider counted."""
        first, params = self._url(collection), self._query(since)
        spool, earlier = Spool(), set[str]()
        total: int | None = None
        url = first
        query: dict[str, Any] | None = params  # None on a Link header's page: it carries its own
        while True:
            response = self._get(url, query, collection)
            page = self._page(response, collection, url)
            self._check_not_repeated(collection, url, page, earlier)
            for item in page:
                spool.add(item)
            total = _total(response, total)
            following = self._following(response, url, collection)
            if following and page:
                url, query = following, None
            elif page and (total is None or spool.count < total):
                # No Link, or it stopped early: go on from what was received, not by the
                # page size asked for (providers cap limit without saying so).
                url, query = first, {**params, "offset": spool.count}
            else:
                break
        if total is not None and spool.count != total:
            raise ProviderError(self.name, first, f"the provider counted {total} {collection} (X-Total-Count) "
                                f"but sent {spool.count}", INCOMPLETE_HINT, retriable=True,
                                step=f"GET {first} (listing {collection})")
        spool.seal()
        return spool

    def _query(self, since: dt.datetime | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": self.page_size, "offset": 0}
        if self.sort:  # a stable order: a row modified mid-read neither moves nor pushes others off a page
            params.update(sort="sourcedId", orderBy="asc")
        if since is not None:
            stamp = since.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            params["filter"] = f"dateLastModified>='{stamp}'"
        return params

    def _following(self, response: requests.Response, url: str, collection: str) -> str | None:
        """The ``Link`` header's next page, on the provider's own host (the token goes wherever we GET)."""
        following = response.links.get("next", {}).get("url")
        if not following:
            return None
        resolved, here = urljoin(url, following), urlsplit(self.base_url)
        there = urlsplit(resolved)
        if (there.scheme, there.netloc) != (here.scheme, here.netloc):
            raise ProviderError(self.name, url, f"the Link header's next page is on another host ({there.netloc})",
                                "tell the provider: credentials are sent to base_url's host only",
                                step=f"GET {url} (listing {collection})")
        return resolved

    def _check_not_repeated(self, collection: str, url: str, page: list[Mapping[str, Any]], earlier: set[str]) -> None:
        ids = {str(item.get("sourcedId") or "") for item in page} - {""}
        repeated = sorted(ids & earlier)
        if repeated:
            raise ProviderError(self.name, url, f"{repeated[0]} came on two pages of {collection} "
                                f"({len(repeated)} repeated): a row may have been skipped",
                                INCOMPLETE_HINT + (" (it may not take sort=sourcedId)" if self.sort else
                                                   "; set sort = true if the provider takes it"),
                                retriable=True, step=f"GET {url} (listing {collection})")
        earlier.update(ids)

    def _url(self, collection: str) -> str:
        if self.version == "1.1":
            return f"{self.base_url}/v1p1/{collection}"
        service = "gradebook" if collection in GRADEBOOK else "rostering"
        return f"{self.base_url}/{service}/v1p2/{collection}"

    def _get(self, url: str, params: Mapping[str, Any] | None, collection: str) -> requests.Response:
        step = f"GET {url} (listing {collection})"
        response = self._send(url, params, step)
        if response.status_code == 401 and isinstance(self.session.auth, ClientCredentials):
            self.session.auth.renew()  # expired or revoked early: one more try with a new token
            response = self._send(url, params, step)
            if response.status_code == 401:
                raise ProviderError(self.name, url, "the provider refused a new token too (401)",
                                    "the token request succeeded: check that this client may read "
                                    f"{collection} (its scopes; see scope)", step=step)
        _check_status(self.name, url, response, step, self.sort)
        return response

    def _send(self, url: str, params: Mapping[str, Any] | None, step: str) -> requests.Response:
        try:
            return self.session.get(url, params=params, timeout=self.timeout)
        except requests.exceptions.RetryError as exc:
            raise ProviderError(self.name, url, f"still failing after retries ({exc})", "try again later",
                                step=step) from None
        except requests.exceptions.RequestException as exc:
            raise ProviderError(self.name, url, f"cannot reach the provider ({type(exc).__name__})",
                                "check base_url and the network", retriable=True, step=step) from None

    def _page(self, response: requests.Response, collection: str, url: str) -> list[Mapping[str, Any]]:
        step = f"GET {url} (listing {collection})"
        try:
            body = response.json()
        except ValueError:
            raise ProviderError(self.name, url, "the answer is not JSON", "check base_url: it may point at a web page",
                                step=step) from None
        items = body.get(collection) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ProviderError(self.name, url, f"the answer has no {collection!r} list", "check the version setting",
                                step=step)
        return items


def _modified_since(item: Mapping[str, Any], since: dt.datetime) -> bool:
    """What ``dateLastModified>=since`` would answer; an unreadable time is kept (an unchanged row costs nothing)."""
    modified = parse_timestamp(str(item.get("dateLastModified") or ""))
    bound = since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
    return modified is None or modified >= bound


def _total(response: requests.Response, previous: int | None) -> int | None:
    """``X-Total-Count`` of this page (the latest count wins), or the previous one when not sent."""
    value = response.headers.get("X-Total-Count", "").strip()
    return int(value) if value.isdigit() else previous


def _check_status(name: str, url: str, response: requests.Response, step: str, sort: bool) -> None:
    hints = {401: ("the provider refused the credentials (401)", "check client_id and the client secret"),
             403: ("not allowed to read this (403)", "ask the provider to grant this client the rostering scopes"),
             404: ("not found (404)", "check base_url and version, or turn off gradebook/demographics"),
             400: ("the provider refused the request (400)",
                   "if it does not take sort=sourcedId, set sort = false" if sort else "tell the provider")}
    if response.status_code in hints:
        problem, hint = hints[response.status_code]
        raise ProviderError(name, url, problem, hint, step=step)
    if response.status_code >= 400:
        raise ProviderError(name, url, f"answered {response.status_code}", "try again later; tell the provider if it lasts",
                            step=step)


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


class ClientCredentials(requests.auth.AuthBase):
    """OAuth 2 client credentials (RFC 6749 §4.4): a bearer token on every request.

    Renewed shortly before ``expires_in`` runs out (a quarter of its life, at most a minute,
    measured from when it was asked for), and on demand after a 401.
    """

    def __init__(self, connector: str, token_url: str, client_id: str, client_secret: str,
                 client_auth: str = "client_secret_basic", scope: str = "", timeout: float = 30.0) -> None:
        self.connector, self.token_url, self.client_id = connector, token_url, client_id
        self._secret, self.client_auth, self.scope, self.timeout = client_secret, client_auth, scope, timeout
        self._token: str | None = None
        self._renew_at: float | None = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._token is None or (self._renew_at is not None and time.monotonic() >= self._renew_at):
            self.renew()
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def renew(self) -> None:
        asked_at = time.monotonic()
        self._token, lifetime = fetch_token(self.connector, self.token_url, self.client_id, self._secret,
                                            self.client_auth, self.scope, self.timeout)
        self._renew_at = None if lifetime is None else asked_at + lifetime - min(60.0, lifetime / 4)


def basic_credentials(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then HTTP Basic (so ``:`` or ``+`` in a secret survive)."""
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def fetch_token(connector: str, token_url: str, client_id: str, client_secret: str, client_auth: str = "client_secret_basic",
                scope: str = "", timeout: float = 30.0) -> tuple[str, float | None]:
    """(access token, lifetime in seconds or None) by client credentials; oauthlib writes the body and reads the answer."""
    step = f"POST {token_url} (the OAuth 2 token request)"
    client = BackendApplicationClient(client_id=client_id)  # a new one each time: it keeps the last answer's expiry
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if client_auth == "client_secret_post":
        body = client.prepare_request_body(include_client_id=True, client_secret=client_secret, scope=scope or None)
    else:
        body = client.prepare_request_body(include_client_id=False, scope=scope or None)
        headers["Authorization"] = basic_credentials(client_id, client_secret)
    try:
        response = requests.post(token_url, data=body, timeout=timeout, headers=headers)
    except requests.exceptions.RequestException as exc:
        raise ProviderError(connector, token_url, f"cannot reach the token endpoint ({type(exc).__name__})",
                            "check token_url and the network", retriable=True, step=step) from None
    try:
        token = client.parse_request_body_response(response.text)  # raises on an error answer or a missing token
    except (OAuth2Error, ValueError, Warning) as exc:
        problem, hint = _token_failure(response.status_code, getattr(exc, "error", ""), getattr(exc, "description", ""))
        raise ProviderError(connector, token_url, problem, hint, retriable=response.status_code >= 500, step=step) from None
    return str(token["access_token"]), _lifetime(token.get("expires_in"))


def _token_failure(status: int, error: str, description: str | None) -> tuple[str, str]:
    said = f" {error}" + (f" ({description})" if description else "") if error else ""
    problem = f"cannot get a token: answered {status}{said}"
    if error in ("invalid_client", "unauthorized_client") or status == 401:
        return problem, ("check client_id, the client secret, and client_auth (client_secret_basic or "
                         "client_secret_post: the provider may take only one)")
    if error == "invalid_scope":
        return problem, "check scope: ask the provider which scopes this client may ask for"
    if error in ("invalid_request", "unsupported_grant_type"):
        return problem, "check client_auth, and that the provider lets this client use client credentials"
    if status >= 500:
        return problem, "try again later; tell the provider if it lasts"
    return problem, "check token_url: it must be the provider's OAuth 2 token endpoint"


def _lifetime(value: Any) -> float | None:
    """RFC 6749 §5.1 ``expires_in`` (recommended, not required): unknown means renew only after a 401."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def retrying_session(retries: int) -> requests.Session:
    """A session retrying GETs on 429 and 5xx with jittered backoff, honouring ``Retry-After`` (shared with ``edfi``)."""
    retry = Retry(total=retries, backoff_factor=0.5, backoff_jitter=0.5, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=("GET",), respect_retry_after_header=True, raise_on_status=True)
    session = requests.Session()
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def make_session(name: str, options: Mapping[str, Any], client_secret: str, retries: int) -> requests.Session:
    """A GET-only session, signed per OAuth 1.0a (HMAC-SHA256) or carrying an OAuth 2 token (asked for now)."""
    session = retrying_session(retries)
    if options["auth"] == "oauth2":
        credentials = ClientCredentials(name, options["token_url"], options["client_id"], client_secret,
                                        options.get("client_auth", "client_secret_basic"), options.get("scope", ""),
                                        float(options.get("timeout_seconds", 30)))
        credentials.renew()  # a wrong secret or token URL is refused before any listing
        session.auth = credentials
    else:
        session.auth = OAuth1(options["client_id"], client_secret=client_secret, signature_method=SIGNATURE_HMAC_SHA256)
    return session


def from_settings(entry: ConnectorSettings, settings: Settings) -> OneRosterReader:
    options = _checked(entry)
    secret = load_secret(settings, f"source-{entry.name}").reveal()
    session = make_session(entry.name, options, secret, int(options.get("retries", 4)))
    source = RestSource(entry.name, options["base_url"], options["version"], session,
                        int(options.get("page_size", 100)), float(options.get("timeout_seconds", 30)),
                        bool(options.get("gradebook", True)), bool(options.get("demographics", True)),
                        bool(options.get("sort", True)))
    return OneRosterReader(entry.name, entry.source_system, source, options["guardian_portal_access"])


def secure_or_loopback(url: str) -> bool:
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
    if options.get("client_auth", CLIENT_AUTH[0]) not in CLIENT_AUTH:
        raise ConfigError(f"{key}.client_auth", f"{options['client_auth']!r} is not {' or '.join(CLIENT_AUTH)}",
                          "set client_auth = \"client_secret_basic\" (HTTP Basic, which every provider must take) "
                          "or \"client_secret_post\" (id and secret in the request body)")
    if not isinstance(options.get("scope", ""), str):
        raise ConfigError(f"{key}.scope", "must be a string", "scopes separated by spaces, as the provider names them")
    if not isinstance(options.get("sort", True), bool):
        raise ConfigError(f"{key}.sort", "must be true or false", "false only for providers that refuse sort=sourcedId")
    for name in ("base_url", "token_url"):
        if options.get(name) and not secure_or_loopback(str(options[name])):
            raise ConfigError(f"{key}.{name}", "must use https", "credentials and student data never travel in clear")
    guardian_portal_access(entry, options)
    return options
