"""HTTP errors: PulseError, and the handlers that answer JSON for the API and a page elsewhere.

A request refused for a reason the client can fix gets a clear 4xx naming the field; a database
that cannot be reached a plain 503; never a traceback. Blueprints that show a refused form again
(the survey, the topics page) catch PulseError themselves and register their own CSRF pages.
The domain raises domain_errors instead, which wording.py turns into a PulseError's status and
sentence.
"""

from __future__ import annotations

import json
import logging
import re

from flask import Flask, Response, jsonify, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import BadHost, HTTPException

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "A valid results key is needed.",
    403: "This is not open to you yet.",
    404: "There is no page here.",
    405: "That method is not allowed here.",
    409: "That cannot be done right now.",
    413: "The request is too large.",
    415: "Send JSON (Content-Type: application/json).",
    429: "Too many requests from your network. Please wait a little and try again.",
    503: "Pulse cannot reach its database right now. Nothing was saved; please try again in a minute.",
}


class PulseError(Exception):
    """A request refused with an HTTP status, a message and errors by field; nothing changed."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or {}


# The deepest JSON body read: Pulse's own are 3 levels deep ({"answers": {"q": ["a"]}}). Python's
# parser recurses per level, and a body of "[" * 20000 fits in 64 KiB: it would raise RecursionError.
MAX_JSON_DEPTH = 32
TOO_DEEP = f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels of arrays and objects)."
# A string, or an unclosed one to the end of the text (its brackets are text too).
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)')
_BRACKET = re.compile(r"[\[\]{}]")


def json_too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests more than `limit` arrays and objects (brackets inside strings aside).

    Checked before parsing, without recursion; a text that is not valid JSON is left to the parser.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # too few brackets to be that deep, in any encoding: the common case costs nothing
    try:
        text = data.decode(json.detect_encoding(data), "surrogatepass")  # as json.loads decodes
    except (UnicodeDecodeError, LookupError):
        return False
    depth = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > limit:
            return True
    return False


def json_object(allowed: set[str]) -> dict:
    """The request's JSON object with no fields besides `allowed`; PulseError 415, 400 or 422 otherwise."""
    if not request.is_json:
        raise PulseError(415, "Send a JSON body with Content-Type: application/json.")
    if json_too_deep(request.get_data(cache=True)):
        raise PulseError(400, TOO_DEEP)
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # the check above keeps it out; never a 500 if it does not
        raise PulseError(400, TOO_DEEP) from None
    if body is None:
        raise PulseError(400, "The body is not valid JSON.")
    if not isinstance(body, dict):
        raise PulseError(422, "The body must be a JSON object.", {"body": "must be a JSON object"})
    extra = sorted(set(body) - allowed)
    if extra:
        raise PulseError(422, "Unknown fields in the body.", {name[:40]: "unknown field" for name in extra[:10]})
    return body


def wants_json() -> bool:
    """Whether this request is the API's, answered in JSON."""
    return request.path.startswith("/api/")


def error_response(status: int, message: str | None = None, errors: dict | None = None):
    """A JSON error for the API, an HTML page elsewhere."""
    message = message or MESSAGES.get(status, "Something went wrong.")
    if wants_json():
        body = {"error": message}
        if errors:
            body["errors"] = errors
        return jsonify(body), status
    if request_ctx.url_adapter is None:
        # Werkzeug could not make the URL builder (the Host header is no host name), so the
        # page's links cannot be built either: the message in plain text.
        return Response(message + "\n", mimetype="text/plain"), status
    return render_template("error.html", status=status, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(PulseError)
    def refused(exc: PulseError):
        return error_response(exc.status, exc.message, exc.errors)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, CSRFError):
            return error_response(
                400,
                f"The form's security token was not accepted: {exc.description} "
                "Go back, reload the page and submit again.",
            )
        description = exc.description if exc.code not in MESSAGES or exc.code == 400 else None
        if isinstance(exc, BadHost):  # a label of 64 characters, an empty one, a space
            description = "The request's Host header is not a valid host name."
        if exc.code == 429:
            description = None
        response = error_response(exc.code or 500, description if isinstance(description, str) else None)
        allow = dict(exc.get_headers()).get("Allow")
        if allow:  # a 405 must say which methods are allowed (RFC 9110)
            body, status = response
            return body, status, {"Allow": allow}
        return response

    @app.errorhandler(DBAPIError)  # OperationalError among them
    def database_error(exc: Exception):
        # The cause goes to the server log (no request data in it); the client gets a plain 503.
        log.error("database error: %s", type(exc.orig if hasattr(exc, "orig") else exc).__name__)
        return error_response(503)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, "Something went wrong on our side. Nothing was saved.")
