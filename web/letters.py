"""Rendering activation letters: one printed page each, in its family's language.

Plain Jinja2 with Babel's catalogs (no request needed), so the staff console and the
``gateway letters`` command print the same pages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from babel.dates import format_date, format_time
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway.portal.letters import Letter
from gateway.portal.models import TrainingSession
from gateway.settings import Settings

HERE = Path(__file__).parent


def render(letters: list[Letter], settings: Settings, training: Sequence[TrainingSession],
           standalone: bool = False) -> str:
    """One HTML document listing the upcoming ``training``; ``standalone`` embeds the print CSS."""
    environment = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                              extensions=["jinja2.ext.i18n"])
    pages = []
    for letter in letters:
        environment.install_gettext_translations(  # type: ignore[attr-defined]
            Translations.load(str(HERE / "translations"), [letter.language]), newstyle=True)
        pages.append(environment.get_template("letter_page.html").render(
            letter=letter, district=settings.district.name, url=settings.web.public_url.rstrip("/") + "/activate",
            expires=format_date(letter.expires.astimezone(settings.zone).date(), "long", locale=letter.language),
            training=[(_when(t.starts_at, settings, letter.language), t) for t in training]))
    css = (HERE / "static" / "letters.css").read_text(encoding="utf-8") if standalone else None
    return environment.get_template("letters.html").render(pages=pages, district=settings.district.name, css=css)


def _when(moment: dt.datetime, settings: Settings, language: str) -> str:
    """"Tuesday, January 15, 2030, 12:00 PM" in the letter's language and the district's time zone."""
    local = moment.astimezone(settings.zone)
    return f"{format_date(local.date(), 'full', locale=language)}, {format_time(local, 'short', locale=language)}"
