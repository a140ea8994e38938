"""A loopback OneRoster 1.1 REST provider for tests: hand-written JSON, real HTTP.

It pages (``limit``/``offset``, ``X-Total-Count``, optionally ``Link``), sorts by
``sourcedId`` when asked, filters by ``dateLastModified>=``, issues OAuth 2 tokens that
expire (client authentication by HTTP Basic per RFC 6749 §2.3.1, or in the body), verifies
OAuth 1.0a HMAC-SHA256 signatures with oauthlib, and can be told to behave in the ways
real providers do: cap ``limit`` without a ``Link``, miscount, ignore ``offset``, refuse
``sort``, answer slowly, or reorder rows modified while a listing is being paged.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oneroster-rest"
PREFIXES = {"/ims/oneroster/v1p1/": "v1p1", "/ims/oneroster/rostering/v1p2/": "v1p2", "/ims/oneroster/gradebook/v1p2/": "v1p2"}


@dataclass
class ProviderState:
    auth: str = "oauth2"
    client_id: str = "gateway-test"
    secret: str = "s3cret-for-tests"
    client_auth: str = "any"  # which client authentication the token endpoint takes: basic, post or any
    scope: str | None = None  # when set, the only scope the token endpoint grants (and it must be asked for)
    token_lifetime: float = 3600.0
    tokens: dict[str, float] = field(default_factory=dict)  # issued token -> when it expires (monotonic)
    link_paging: bool = False
    link_host: str | None = None  # a Link pointing at another host (host:port), or relative ("") when empty
    max_limit: int | None = None  # a cap on limit, applied without saying so
    send_total: bool = True
    total_skew: dict[str, int] = field(default_factory=dict)  # collection -> added to X-Total-Count (miscounts)
    ignore_offset: bool = False
    refuse_sort: bool = False
    delay_seconds: float = 0.0  # per GET: a slow provider
    touch_after_first_page: str | None = None  # a user modified while users are paged (unsorted order moves it)
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # the fixtures, loaded once, as served
    failures: dict[str, list[int]] = field(default_factory=dict)  # collection -> statuses to answer first
    always_fail: dict[str, int] = field(default_factory=dict)
    retry_after: str | None = None
    malformed: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # paths of GETs answered 401


class Handler(BaseHTTPRequestHandler):
    state: ProviderState
    _body: dict[str, list[str]]

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        body = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        self._body = body
        self.state.requests.append(("POST", url.path, body))
        if url.path != "/oauth/token":
            return self._send(404, {"error": "not found"})
        if body.get("grant_type") != ["client_credentials"]:
            return self._send(400, {"error": "unsupported_grant_type"})
        if self._client() != (self.state.client_id, self.state.secret):
            return self._send(401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="token"'})
        if self.state.scope is not None and body.get("scope") != [self.state.scope]:
            return self._send(400, {"error": "invalid_scope"})
        token = "tok-" + secrets.token_hex(8)
        self.state.tokens[token] = time.monotonic() + self.state.token_lifetime
        self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": self.state.token_lifetime})

    def _client(self) -> tuple[str, str] | None:
        """The client's (id, secret), from the Authorization header or the body, as this endpoint takes them."""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic ") and self.state.client_auth in ("basic", "any"):
            pair = base64.b64decode(header.removeprefix("Basic ")).decode()
            client_id, _, secret = pair.partition(":")
            return unquote_plus(client_id), unquote_plus(secret)  # RFC 6749 §2.3.1: form-urlencoded parts
        body = self._body
        if "client_secret" in body and self.state.client_auth in ("post", "any"):
            return body.get("client_id", [""])[0], body["client_secret"][0]
        return None

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.state.requests.append(("GET", url.path, query))
        prefix = next((p for p in PREFIXES if url.path.startswith(p)), "")
        collection = url.path.removeprefix(prefix)
        if not self._authorized():
            self.state.refused.append(url.path)
            return self._send(401, {"imsx_codeMajor": "failure", "imsx_description": "unauthorized"})
        time.sleep(self.state.delay_seconds)  # slow to answer, after checking the token as it arrived
        if collection in self.state.always_fail:
            return self._send(self.state.always_fail[collection], {"error": "injected"})
        pending = self.state.failures.get(collection)
        if pending:
            return self._send(pending.pop(0), {"error": "try later"}, {"Retry-After": self.state.retry_after or ""})
        path = FIXTURES / PREFIXES.get(prefix, "none") / f"{collection}.json"
        if not prefix or not path.is_file():
            return self._send(404, {"imsx_codeMajor": "failure", "imsx_description": "unknown collection"})
        if collection in self.state.malformed:
            return self._send_raw(200, b"<html>Service temporarily moved</html>", "text/html")
        if "sort" in query and self.state.refuse_sort:
            return self._send(400, {"imsx_codeMajor": "failure", "imsx_description": "sort is not supported"})
        key = f"{prefix}{collection}"
        if key not in self.state.data:
            self.state.data[key] = copy.deepcopy(json.loads(path.read_text())[collection])
        self._page(prefix, collection, self.state.data[key], query)

    def _page(self, prefix: str, collection: str, items: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
        since = _since(query.get("filter", [""])[0])
        if since:
            items = [item for item in items if item.get("dateLastModified", "") >= since]
        if query.get("sort") == ["sourcedId"]:
            items = sorted(items, key=lambda item: item["sourcedId"], reverse=query.get("orderBy") == ["desc"])
        else:  # unsorted, this provider lists the most recently modified last (as some databases happen to)
            items = sorted(items, key=lambda item: item.get("dateLastModified", ""))
        limit, offset = int(query.get("limit", ["100"])[0]), int(query.get("offset", ["0"])[0])
        limit = min(limit, self.state.max_limit or limit)
        offset = 0 if self.state.ignore_offset else offset
        headers = {"X-Total-Count": str(len(items) + self.state.total_skew.get(collection, 0)) if self.state.send_total else ""}
        if self.state.link_paging and offset + limit < len(items):
            following = {**{k: v[0] for k, v in query.items()}, "offset": str(offset + limit), "limit": str(limit)}
            host = self.headers["Host"] if self.state.link_host is None else self.state.link_host
            origin = f"http://{host}" if host else ""
            headers["Link"] = f'<{origin}{prefix}{collection}?{urlencode(following)}>; rel="next"'
        self._send(200, {collection: items[offset:offset + limit]}, headers)
        if collection == "users" and offset == 0 and self.state.touch_after_first_page:
            self._touch(self.state.touch_after_first_page)

    def _touch(self, user: str) -> None:
        for items in self.state.data.values():
            for item in items:
                if item.get("sourcedId") == user:
                    item["dateLastModified"] = "2026-12-01T09:00:00Z"
        self.state.touch_after_first_page = None

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if self.state.auth == "oauth2":
            expires = self.state.tokens.get(header.removeprefix("Bearer "))
            return header.startswith("Bearer ") and expires is not None and time.monotonic() < expires
        if not header.startswith("OAuth "):
            return False
        params = dict(part.strip().split("=", 1) for part in header[6:].split(","))
        params = {k: v.strip('"') for k, v in params.items()}
        if params.get("oauth_consumer_key") != self.state.client_id or params.get("oauth_signature_method") != "HMAC-SHA256":
            return False
        # Sign the same request ourselves with the shared secret; the signatures must match.
        client = Client(self.state.client_id, client_secret=self.state.secret, signature_method=SIGNATURE_HMAC_SHA256,
                        nonce=params["oauth_nonce"], timestamp=params["oauth_timestamp"])
        _, signed, _ = client.sign(f"http://{self.headers['Host']}{self.path}", http_method="GET")
        return f'oauth_signature="{params["oauth_signature"]}"' in signed["Authorization"]

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(body).encode(), "application/json", headers)

    def _send_raw(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            if value:
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _since(text: str) -> str | None:
    """The bound of ``dateLastModified>='...'`` (the only filter this provider knows)."""
    if not text.startswith("dateLastModified>='"):
        return None
    return text.removeprefix("dateLastModified>='").rstrip("'")


class Provider:
    def __init__(self) -> None:
        self.state = ProviderState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ims/oneroster"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/oauth/token"

    def revoke_tokens(self) -> None:
        self.state.tokens.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
