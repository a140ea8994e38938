"""Error pages in the site's own layout and language: what happened and what to do next.

Every HTTP error a person can meet (a refused or missing record, an expired form, too
many attempts, a fault of ours) gets a page saying so in words; nothing of the request
or the fault is echoed back, so an error page can never leak or reflect input.
"""

from __future__ import annotations

import logging

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

bp = Blueprint("errors", __name__)
log = logging.getLogger(__name__)

ADVICE = {
    400: _l("The request could not be understood. Go back, reload the page and try again."),
    403: _l("You do not have access to this page."),
    404: _l("There is no page here, or it is not one you have access to. If you followed a link from the portal, "
            "go back to your home page."),
    405: _l("This page cannot be used that way. Go back and use the page's own buttons."),
    413: _l("What you sent is too large. Shorten it and try again."),
    429: _l("Too many attempts. Wait a few minutes and try again."),
    500: _l("Something went wrong on our side. Nothing you entered was lost; try again in a few minutes, and if it "
            "keeps happening tell the Student Accounting Department."),
}
TITLES = {400: _l("Bad request"), 403: _l("Forbidden"), 404: _l("Page not found"), 405: _l("Not allowed"),
          413: _l("Too large"), 429: _l("Too many attempts"), 500: _l("Something went wrong")}


@bp.app_errorhandler(CSRFError)
def csrf_error(error: CSRFError) -> ResponseReturnValue:
    # The usual cause is a form left open past the session's end or in another tab.
    advice = _l("This form has expired or was not sent from this site. Go back, reload the page and send it again.")
    return render_template("error.html", title=TITLES[400], advice=advice, status=400), 400


@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    if status < 400:  # redirects raised as exceptions (routing's trailing slash) pass through
        return error
    advice = ADVICE.get(status, ADVICE[400] if status < 500 else ADVICE[500])
    title = TITLES.get(status, TITLES[400] if status < 500 else TITLES[500])
    response = error.get_response()
    response.set_data(render_template("error.html", title=title, advice=advice, status=status))
    response.content_type = "text/html; charset=utf-8"
    return response


@bp.app_errorhandler(Exception)
def unexpected(error: Exception) -> ResponseReturnValue:
    log.exception("unhandled error")  # the traceback goes to the log, never to the page
    return http_error(InternalServerError())
