"""Languages: English and Spanish (Flask-Babel). The district's zone formats every date."""

from __future__ import annotations

from typing import Any

from flask import Flask, request, session
from flask_babel import Babel, format_date, format_datetime, get_locale, lazy_gettext
from flask_login import current_user
from markupsafe import Markup, escape

LANGUAGES = ("en", "es")
PAGE_NAMES = {"schedule": lazy_gettext("Schedule"), "grades": lazy_gettext("Grades"),
              "assignments": lazy_gettext("Assignments"), "attendance": lazy_gettext("Attendance")}
STATUS_NAMES = {"present": lazy_gettext("Present"), "tardy": lazy_gettext("Tardy"),
                "excused": lazy_gettext("Excused"), "absent": lazy_gettext("Absent")}
# Why a session ended (UserSession.end_reason), in words for the account page and the sign-in page.
END_REASONS = {"logout": lazy_gettext("signed out"), "idle": lazy_gettext("inactive too long"),
               "expired": lazy_gettext("reached its time limit"), "denied": lazy_gettext("access denied"),
               "disabled": lazy_gettext("account disabled"), "password_changed": lazy_gettext("password changed"),
               "password_reset": lazy_gettext("password reset"),
               "signed_out_everywhere": lazy_gettext("signed out from another session"), "gone": lazy_gettext("account removed")}
WEEKDAYS = (lazy_gettext("Mon"), lazy_gettext("Tue"), lazy_gettext("Wed"), lazy_gettext("Thu"), lazy_gettext("Fri"))


def init_app(app: Flask, timezone: str) -> None:
    app.config.update(BABEL_DEFAULT_LOCALE="en", BABEL_DEFAULT_TIMEZONE=timezone)
    Babel(app, locale_selector=select_locale)
    app.before_request(_remember_choice)
    app.context_processor(_template_names)
    app.add_template_filter(email_breaks)


def _remember_choice() -> None:
    """``?lang=es`` on any page switches the language for this browser session."""
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["lang"] = chosen


def select_locale() -> str:
    chosen = request.args.get("lang") or session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    if current_user and current_user.is_authenticated and current_user.user.preferred_language in LANGUAGES:
        return str(current_user.user.preferred_language)
    return request.accept_languages.best_match(LANGUAGES) or "en"


def _template_names() -> dict[str, Any]:
    return {"page_names": PAGE_NAMES, "end_reasons": END_REASONS, "status_names": STATUS_NAMES, "weekday_names": WEEKDAYS,
            "current_locale": lambda: str(get_locale() or "en"), "format_datetime": format_datetime,
            "format_date": format_date}


def email_breaks(address: str) -> Markup:
    """An address that may wrap only before "@" and ".", so a phone never splits it mid-word."""
    text = str(escape(address))
    return Markup(text.replace("@", "<wbr>@").replace(".", "<wbr>."))
