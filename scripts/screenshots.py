"""Pictures of the portal, from the demo: every parent page at 375 px and 1280 px, every console page at 1280 px.

    python scripts/screenshots.py                 # into docs/screenshots/
    python scripts/screenshots.py --out /tmp/shots --students 60

It builds a demo instance in a temporary folder (``gateway demo --no-serve``), serves it on
loopback with werkzeug, signs in with the demo logins and drives Debian's Chromium
(``/usr/bin/chromium``, or ``GATEWAY_TEST_CHROMIUM``) with Playwright (the ``test`` extra).
The PNGs are shrunk with pngquant where it is installed (``apt-get install pngquant``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))
PHONE, DESK = {"width": 375, "height": 740}, {"width": 1280, "height": 800}
PUBLIC = ("/", "/help", "/login", "/activate", "/apply", "/forgot-password", "/forgot-username")
PARENT = ("/dashboard", "/guidelines", "/account", "/report")  # and each page of a child, found on the dashboard
STUDENT = ("/me/end-parent-access",)
CONSOLES = ("/staff", "/staff/letters", "/staff/accounts", "/staff/terminations", "/staff/training",
            "/staff/guidelines", "/it", "/it/jobs", "/audit", "/audit/access-log", "/audit/replica",
            "/audit/replica/students", "/audit/sanitization", "/audit/sync-history", "/admin")
# Pages reached by a link (the demo's ids vary), and the pages no picture shows, with why.
FOUND_BY_LINK = ("/students/<source_system>/<source_id>/<page>", "/it/runs/<int:run_id>",
                 "/staff/reports/<int:report_id>", "/it/jobs/<int:job_id>/remove", "/login/second-factor")
NOT_SHOWN = {"/reset": "needs a token from a recovery mail", "/healthz": "not a page", "/livez": "not a page",
             "/audit/access-log.csv": "a download", "/static/<path:filename>": "not a page",
             "/audit/replica/<table>": "shown as /audit/replica/students"}
# A long page is cut at about two screens: its top shows what it looks like, and the PNGs stay small.
TALLEST = {375: 1400, 1280: 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--students", type=int, default=60)
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set GATEWAY_TEST_CHROMIUM)")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gateway-screens-") as folder:
        instance = Path(folder) / "demo"
        gateway = [sys.executable, "-m", "gateway"]
        subprocess.run([*gateway, "demo", "--dir", str(instance), "--students", str(args.students), "--no-serve"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*gateway, "--config", str(instance / "gateway.toml"), "jobs", "add", "riverbend-sis",
                        "--cron", "*/15 6-18 * * 1-5"], check=True, stdout=subprocess.DEVNULL)  # for the jobs pages
        logins = json.loads((instance / "demo-logins.json").read_text(encoding="utf-8"))
        with serving(instance) as url:
            written = shoot_all(url, logins, args.out)
    shrink(written)
    total = sum(path.stat().st_size for path in written)
    print(f"{len(written)} screenshots in {args.out} ({total // 1024} KB)")


@contextmanager
def serving(instance: Path) -> Iterator[str]:
    """The demo's app on a free loopback port, its public URL pointing there."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    from gateway.settings import load_settings
    from web import create_app

    settings = load_settings(instance / "gateway.toml", env={})
    class Quiet(WSGIRequestHandler):
        def log_request(self, *args: Any) -> None:  # the output is the list of pictures, not an access log
            pass

    server = make_server("127.0.0.1", 0, None, threaded=True, request_handler=Quiet)  # type: ignore[arg-type]  # bound first: the app needs its URL
    url = f"http://127.0.0.1:{server.server_port}"
    server.app = create_app(dataclasses.replace(settings, web=dataclasses.replace(settings.web, public_url=url)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)


def shoot_all(url: str, logins: list[dict[str, Any]], out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    parent = next(login for login in logins if login["case"] == "siblings")
    admin = next(login for login in logins if login["role"] == "admin")
    student = next(login for login in logins if login["role"] == "student")
    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        for name, size in (("375", PHONE), ("1280", DESK)):
            page = new_page(browser, url, size)
            written += [shoot(page, path, out / f"public{slug(path)}-{name}.png") for path in PUBLIC]
            sign_in(page, parent)
            parent_pages = [*PARENT, *child_links(page)]
            written += [shoot(page, path, out / f"parent{slug(path)}-{name}.png") for path in parent_pages]
            if name == "375":
                file_report(page)  # for the staff's report page
            page.context.close()
            page = new_page(browser, url, size)
            sign_in(page, student)
            written += [shoot(page, path, out / f"student{slug(path)}-{name}.png") for path in STUDENT]
            page.context.close()
        page = new_page(browser, url, DESK)
        sign_in(page, admin, second_factor=out / "console-login-second-factor-1280.png")
        written.append(out / "console-login-second-factor-1280.png")
        linked = [*first_link(page, "/staff", "/staff/reports/"), *first_link(page, "/it", "/it/runs/"),
                  *first_link(page, "/it/jobs", "/it/jobs/")]
        for path in (*CONSOLES, *linked):
            written.append(shoot(page, path, out / f"console{slug(path)}-1280.png"))
        page.context.close()
        browser.close()
    return written


def new_page(browser: Any, url: str, size: dict[str, int]) -> Any:
    context = browser.new_context(base_url=url, viewport=size, locale="en-US", bypass_csp=False)
    context.set_default_timeout(15_000)
    return context.new_page()


def sign_in(page: Any, login: dict[str, Any], second_factor: Path | None = None) -> None:
    from gateway.security import totp

    page.goto("/login")
    page.fill("#username", login["username"])
    page.fill("#password", login["password"])
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    if "/login/second-factor" in page.url:
        if second_factor:
            page.screenshot(path=str(second_factor))
        page.fill("#code", totp.code_at(login["totp_secret"], time.time()))
        page.click("main button[type=submit]")
        page.wait_for_load_state()
    if "/guidelines" in page.url:
        page.check("#accept")
        page.click("main button[type=submit]")
        page.wait_for_load_state()


def child_links(page: Any) -> list[str]:
    """Every page of the first child on the dashboard (the others look the same)."""
    page.goto("/dashboard")
    links = page.eval_on_selector_all("main a[href^='/students/']", "links => links.map(a => a.getAttribute('href'))")
    first = links[0].rsplit("/", 1)[0]
    return list(dict.fromkeys(link for link in links if link.startswith(first + "/")))


def first_link(page: Any, path: str, prefix: str) -> list[str]:
    """The first link on the page at ``path`` starting with ``prefix`` (none: an empty list)."""
    page.goto(path)
    links = page.eval_on_selector_all(f"main a[href^='{prefix}']", "links => links.map(a => a.getAttribute('href'))")
    return [link for link in links if link.rstrip("/") != prefix.rstrip("/")][:1]


def file_report(page: Any) -> None:
    page.goto("/report")
    page.fill("#body", "My son's dashboard showed another student's grades this morning.")
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def slug(path: str) -> str:
    """/students/riverbend-sis/1007/grades -> -child-grades; / -> -home."""
    if path.startswith("/students/"):
        return "-child-" + path.rsplit("/", 1)[1]
    for prefix, name in (("/it/runs/", "-it-run"), ("/staff/reports/", "-staff-report")):
        if path.startswith(prefix):
            return name
    if path.startswith("/it/jobs/"):
        return "-it-job-remove"
    return "-" + (re.sub(r"[^a-z0-9]+", "-", path.strip("/").lower()) or "home")


def shoot(page: Any, path: str, target: Path) -> Path:
    response = page.goto(path)
    if response is None or response.status >= 400:
        raise SystemExit(f"{path} answered {response.status if response else 'nothing'}")
    size = page.viewport_size
    height = min(page.evaluate("document.documentElement.scrollHeight"), TALLEST[size["width"]])
    page.screenshot(path=str(target), clip={"x": 0, "y": 0, "width": size["width"], "height": max(height, size["height"])},
                    full_page=True)
    return target


def shrink(paths: list[Path]) -> None:
    """Fewer colours, same look: these flat pages lose nothing visible at 16 colours, and shrink by half."""
    if shutil.which("pngquant") is None:
        print("pngquant is not installed: the PNGs are left as Chromium wrote them", file=sys.stderr)
        return
    subprocess.run(["pngquant", "--force", "--skip-if-larger", "--ext", ".png", "--speed", "1", "--strip", "16",
                    *map(str, paths)], check=False)


if __name__ == "__main__":
    main()
