"""Who is asking: a participant proves themselves with their results key, never with an id."""
from __future__ import annotations

from flask import current_app, request, session

from . import keys, storage
from .models import Response

HEADER = "X-Results-Key"
SESSION_KEY = "results_key"
# The longest typed key a form puts back into its field after an error (a key is 26 characters
# and dashes): one wrong character is then not a whole key to type again.
TYPED_MAX = 100


class BadKey(Exception):
    """A results key that is malformed or unknown. Callers answer 401 with the same message for both."""

    message = "That results key is not valid."


def presented_key(form_field: str | None = None) -> str | None:
    """The key the request carries: the X-Results-Key header, a form field, or the session."""
    if HEADER in request.headers:
        return request.headers[HEADER]
    if form_field and request.method == "POST" and request.form.get(form_field):
        return request.form[form_field]
    return session.get(SESSION_KEY)


def response_for(key: str) -> Response:
    """The response this key belongs to; BadKey if malformed or unknown (no hint which)."""
    normal = keys.normalize(key)
    if normal is None:
        raise BadKey()
    key_hash = keys.keyed_hash(current_app.config["SECRET_KEY"], "response", normal)
    row = storage.response_by_key(storage.reader(), key_hash)
    if row is None:
        raise BadKey()
    return row


def ballot_hash(key: str) -> str:
    """The key's hash in the ballot domain: unrelated to the hash kept with the response."""
    return keys.keyed_hash(current_app.config["SECRET_KEY"], "ballot", keys.normalize(key))


def proposal_hash(key: str) -> str:
    """The key's hash in the proposal domain (for per-key limits on proposals)."""
    return keys.keyed_hash(current_app.config["SECRET_KEY"], "proposal", keys.normalize(key))


def checked(survey, key: str) -> Response:
    """The response of this key in this survey version; BadKey if malformed, unknown or another round's."""
    row = response_for(key)
    if (row.survey_id, row.survey_version) != (survey.id, survey.version):
        raise BadKey()
    return row


def participant(survey) -> Response | None:
    """The response row of the key this request carries (header or session), or None.

    A session key that no longer matches (another database, a new round) is dropped, not an error.
    """
    key = presented_key()
    if not key:
        return None
    try:
        return checked(survey, key)
    except BadKey:
        session.pop(SESSION_KEY, None)
        return None
