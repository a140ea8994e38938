"""Refuse requests carrying control characters before any view sees them.

No field of this portal takes a NUL or another C0 control character (tab and line
breaks aside); PostgreSQL cannot even store a NUL in text. Refusing them at the door
gives one clear 400 instead of a database error deep inside a view.
"""

from __future__ import annotations

import re

from flask import Flask, abort, request

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def init_app(app: Flask) -> None:
    app.before_request(_refuse_control_characters)


def _refuse_control_characters() -> None:
    values = [*request.args.values(), request.path]
    if request.method == "POST" and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values += request.form.values()
    if any(CONTROL.search(value) for value in values):
        abort(400)
