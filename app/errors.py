"""Error pages: HTML, an htmx partial or JSON, whichever the request asked for.

API requests (``/api/...`` or ``Accept: application/json``) get RFC 9457 problem details.
A 500 rolls the session back so a half-done change is never committed later.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.extensions import db

TITLES = {
    400: _l("Bad request"),
    401: _l("Please log in"),
    403: _l("Not allowed"),
    404: _l("Page not found"),
    405: _l("Method not allowed"),
    413: _l("Upload too large"),
    422: _l("Invalid input"),
    429: _l("Too many requests"),
    500: _l("Something went wrong"),
}
DETAILS = {
    400: _l("The request could not be understood."),
    403: _l("Your account does not give access to this page."),
    404: _l("There is no page at this address."),
    405: _l("This address does not accept this kind of request."),
    413: _l("The file is larger than the platform accepts."),
    429: _l("Too many attempts in a short time. Wait a moment and try again."),
    500: _l("The error has been logged and nothing was saved. Please try again later."),
}


def _wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def render_error(status: int, detail: Any = None) -> Any:
    title = str(TITLES.get(status, _l("Error")))
    detail = str(detail or DETAILS.get(status, ""))
    if _wants_json():
        body = jsonify(type="about:blank", title=title, status=status, detail=detail)
        body.status_code = status
        body.mimetype = "application/problem+json"
        return body
    template = "errors/_error.html" if request.headers.get("HX-Request") else "errors/error.html"
    return render_template(template, status=status, title=title, detail=detail), status


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(_exc: CSRFError) -> Any:
        return render_error(
            400,
            _l(
                "The form's security token is missing or has expired. "
                "Reload the page and submit it again."
            ),
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        status = exc.code or 500
        if status == 429:
            return render_error(429)
        return render_error(status)

    @app.errorhandler(InternalServerError)
    def _server_error(exc: InternalServerError) -> Any:
        db.session.rollback()
        original = getattr(exc, "original_exception", None)
        if original is not None:
            app.logger.exception("unhandled error", exc_info=original)
        return render_error(500)
