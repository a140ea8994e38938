"""English and Spanish: every page, the dashboard's sentences, dates in the district's zone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

TRANSLATIONS = Path(__file__).resolve().parents[2] / "web" / "translations"


def test_the_spanish_catalog_translates_every_message() -> None:
    catalog = read_po((TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.po").open("rb"))
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []
    assert (TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.mo").is_file()


def test_the_language_follows_the_browser_and_can_be_switched(district_app: Flask) -> None:
    client = district_app.test_client()
    spanish = client.get("/login", headers={"Accept-Language": "es-MX,es;q=0.9"}).get_data(as_text=True)
    assert '<html lang="es">' in spanish and "Iniciar sesión" in spanish and "Contraseña" in spanish
    english = client.get("/login?lang=en", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="en">' in english and "Sign in" in english
    assert "Sign in" in client.get("/login", headers={"Accept-Language": "es"}).get_data(as_text=True)  # the choice stays


def test_the_dashboard_explains_refusals_in_spanish(parent_client: Callable[[str, str], FlaskClient]) -> None:
    client = parent_client("turned_18_before_year", "madre")
    page = client.get("/dashboard?lang=es").get_data(as_text=True)
    assert "Mis hijos" in page
    assert "cumplió 18 años el 17 de mayo de 2026; el acceso de los padres terminó el 30 de junio de 2026" in page


def test_child_pages_in_spanish(parent_client: Callable[[str, str], FlaskClient], district_app: Flask) -> None:
    client = parent_client("transfer", "padre")
    page = client.get("/dashboard?lang=es").get_data(as_text=True)
    assert "Horario" in page and "Asistencia" in page


def test_no_message_in_the_source_lacks_a_spanish_translation() -> None:
    from babel.messages.extract import extract_from_dir

    root = Path(__file__).resolve().parents[2]
    method_map = [("web/**.py", "python"), ("web/templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None}
    found = {message for _, _, message, _, _ in extract_from_dir(str(root), method_map, keywords=keywords)
             if isinstance(message, str)}
    catalog = read_po((TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.po").open("rb"))
    translated = {m.id for m in catalog if m.id and m.string}
    assert sorted(found - translated) == []


def test_the_chosen_language_survives_signing_in(parent_client: Callable[[str, str], FlaskClient], district_app: Flask) -> None:
    import re

    parent_client("transfer", "hablante")
    client = district_app.test_client()
    page = client.get("/login?lang=es").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    client.post("/login", data={"csrf_token": token.group(1), "username": "hablante",
                                "password": "correct horse battery staple lamp"})
    assert "Mis hijos" in client.get("/dashboard", headers={"Accept-Language": "en"}).get_data(as_text=True)
