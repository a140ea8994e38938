"""The pictures in docs/screenshots (made by scripts/screenshots.py): every page, at the promised widths."""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path
from types import ModuleType

from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "docs" / "screenshots"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def screenshots_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots", REPO / "scripts" / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_width(path: Path) -> int:
    data = path.read_bytes()[:24]
    assert data[:8] == PNG_SIGNATURE, path.name
    return int(struct.unpack(">I", data[16:20])[0])  # IHDR: the first chunk, width first


def test_every_page_of_the_app_has_a_picture_or_a_reason_it_has_none(instance: Settings) -> None:
    from web import create_app

    script = screenshots_script()
    pictured = {*script.PUBLIC, *script.PARENT, *script.STUDENT, *script.CONSOLES, *script.FOUND_BY_LINK,
                *script.NOT_SHOWN}
    pages = {rule.rule for rule in create_app(instance).url_map.iter_rules() if "GET" in (rule.methods or ())}
    assert pages - pictured == set(), "add the new page to scripts/screenshots.py and run it"


def test_parent_pages_are_pictured_at_375_and_1280_px_and_console_pages_at_1280() -> None:
    names = {path.stem for path in SHOTS.glob("*.png")}
    for name in names:
        assert png_width(SHOTS / f"{name}.png") == int(name.rsplit("-", 1)[1])
    for family in ("public", "parent", "student"):
        phone = {n.rsplit("-", 1)[0] for n in names if n.startswith(family) and n.endswith("-375")}
        desk = {n.rsplit("-", 1)[0] for n in names if n.startswith(family) and n.endswith("-1280")}
        assert phone == desk and phone, family
    assert {"parent-dashboard-375", "parent-child-attendance-375", "console-it-1280", "console-staff-1280"} <= names
    assert not any(n.startswith("console") and not n.endswith("-1280") for n in names)


def test_the_readme_shows_two_of_the_pictures() -> None:
    shown = re.findall(r'<img src="(docs/screenshots/[^"]+\.png)"', (REPO / "README.md").read_text(encoding="utf-8"))
    assert len(shown) == 2 and all((REPO / path).is_file() for path in shown)
