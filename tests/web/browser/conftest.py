"""A real Chromium (Debian's /usr/bin/chromium, driven by Playwright) against the app on loopback.

The app runs in werkzeug's threaded server on a free port, over the synced demo district
of ``tests/web/conftest.py``. Without Chromium or Playwright these tests skip saying
what to install; under ``CI=true`` such a skip is a failure (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.demo.sis import DemoSummary
from gateway.settings import Settings

from ..conftest import PASSWORD

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
REPO = Path(__file__).resolve().parents[3]


def axe_script() -> Path | None:
    """axe-core's bundle as the axe-playwright-python wheel ships it (the `test` extra), or None."""
    spec = importlib.util.find_spec("axe_playwright_python")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "axe.min.js"
    return path if path.is_file() else None


AXE = axe_script()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the session; each test gets its own context (cookies, storage)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -c constraints.txt -e '.[test]'")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium chromium-driver (or set GATEWAY_TEST_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class LiveServer:
    """The app served by werkzeug on 127.0.0.1 in a background thread."""

    def __init__(self, make_app: Any) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any) -> None:  # the test output is for failures, not access logs
                pass

        self.server = make_server("127.0.0.1", 0, None, threaded=True, request_handler=QuietHandler)  # type: ignore[arg-type]  # bind first: the app needs its URL
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.app: Flask = make_app(self.url)
        self.server.app = self.app
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def live(district: tuple[Settings, DemoSummary]) -> Iterator[LiveServer]:
    """The district's portal on a real socket, its public URL (used in mails) pointing there."""
    from web import create_app

    settings = district[0]

    def make(url: str) -> Flask:
        return create_app(dataclasses.replace(settings, web=dataclasses.replace(settings.web, public_url=url)))

    server = LiveServer(make)
    yield server
    server.stop()


@pytest.fixture
def browser_context(chromium: Any, live: LiveServer) -> Iterator[Any]:
    context = chromium.new_context(base_url=live.url, locale="en-US")
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def page(browser_context: Any) -> Any:
    return browser_context.new_page()


# --- steps a person takes -------------------------------------------------------------------

def activate(page: Any, code: str, username: str, password: str = PASSWORD) -> None:
    page.goto("/activate")
    page.fill("#code", code)
    page.fill("#username", username)
    page.fill("#password", password)
    page.check("#responsibilities")
    page.click("main button[type=submit]")


def accept_guidelines(page: Any) -> None:
    page.wait_for_url(re.compile(r"/guidelines"))
    page.check("#accept")
    page.click("main button[type=submit]")


def sign_in(page: Any, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("main button[type=submit]")


def sign_out(page: Any) -> None:
    page.click("header form button[type=submit]")
    page.wait_for_url(re.compile(r"/(login)?(\?.*)?$"))


def enrol_second_factor(page: Any) -> str:
    """On the enrolment page: read the key as a person would type it, enter its code; returns the key."""
    from gateway.security import totp

    page.wait_for_url(re.compile(r"/login/second-factor"))
    secret = page.inner_text("figure.qr code")
    page.fill("#code", totp.code_at(secret, time.time()))
    page.click("main button[type=submit]")
    page.wait_for_selector("ul.codes")
    page.click("main a:has-text('Continue')")
    return secret
