"""A loopback OneRoster 1.1 REST provider for tests: static, hand-written JSON, real HTTP.

It pages, filters by ``dateLastModified>=``, issues OAuth 2 tokens, verifies OAuth 1.0a
HMAC-SHA256 signatures with oauthlib, and can be told to fail in the ways providers do.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, Client

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oneroster-rest"
PREFIXES = {"/ims/oneroster/v1p1/": "v1p1", "/ims/oneroster/rostering/v1p2/": "v1p2", "/ims/oneroster/gradebook/v1p2/": "v1p2"}


@dataclass
class ProviderState:
    auth: str = "oauth2"
    client_id: str = "gateway-test"
    secret: str = "s3cret-for-tests"
    token: str = field(default_factory=lambda: "tok-" + secrets.token_hex(8))
    link_paging: bool = False
    failures: dict[str, list[int]] = field(default_factory=dict)  # collection -> statuses to answer first
    always_fail: dict[str, int] = field(default_factory=dict)
    retry_after: str | None = None
    malformed: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    state: ProviderState

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        body = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        self.state.requests.append(("POST", url.path, body))
        if url.path != "/oauth/token":
            return self._send(404, {"error": "not found"})
        ok = (body.get("grant_type") == ["client_credentials"] and body.get("client_id") == [self.state.client_id]
              and body.get("client_secret") == [self.state.secret])
        if not ok:
            return self._send(401, {"error": "invalid_client"})
        self._send(200, {"access_token": self.state.token, "token_type": "Bearer", "expires_in": 3600})

    def do_GET(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        self.state.requests.append(("GET", url.path, query))
        prefix = next((p for p in PREFIXES if url.path.startswith(p)), "")
        collection = url.path.removeprefix(prefix)
        if not self._authorized():
            return self._send(401, {"imsx_codeMajor": "failure", "imsx_description": "unauthorized"})
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
        self._page(prefix, collection, json.loads(path.read_text())[collection], query)

    def _page(self, prefix: str, collection: str, items: list[dict[str, Any]], query: dict[str, list[str]]) -> None:
        since = _since(query.get("filter", [""])[0])
        if since:
            items = [item for item in items if item.get("dateLastModified", "") >= since]
        limit, offset = int(query.get("limit", ["100"])[0]), int(query.get("offset", ["0"])[0])
        headers = {"X-Total-Count": str(len(items))}
        if self.state.link_paging and offset + limit < len(items):
            following = {**{k: v[0] for k, v in query.items()}, "offset": str(offset + limit), "limit": str(limit)}
            headers["Link"] = f'<http://{self.headers["Host"]}{prefix}{collection}?{urlencode(following)}>; rel="next"'
        self._send(200, {collection: items[offset:offset + limit]}, headers)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if self.state.auth == "oauth2":
            return header == f"Bearer {self.state.token}"
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

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
