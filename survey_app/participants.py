"""Who is asking: a participant proves themselves with their results key, never with an id."""
from __future__ import annotations

from flask import current_app, request, session

from . import keys, program_queries, response_queries, storage
from .errors import PulseError
from .models import Response

HEADER = "X-Results-Key"
# The session keeps one results key per survey: {"<survey id>@<version>": key}.
SESSION_KEYS = "results_keys"
# Where sessions signed before the survey program kept their one key.
LEGACY_SESSION_KEY = "results_key"
# The longest typed key a form puts back into its field after an error (a key is 26 characters
# and dashes): one wrong character is then not a whole key to type again.
TYPED_MAX = 100


class BadKey(Exception):
    """A results key that is malformed or unknown. Callers answer 401 with the same message for both."""

    message = "That results key is not valid."


class OtherSurveyKey(BadKey):
    """A valid key of another survey: the answer names the survey it belongs to (its holder knows it)."""

    def __init__(self, survey_id: str, version: int, title: str | None):
        super().__init__()
        self.survey_id, self.version = survey_id, version
        name = f"\u201c{title}\u201d ({survey_id}@{version})" if title else f"{survey_id}@{version}"
        self.message = f"That results key belongs to the survey {name}, not this one."


def session_keys() -> dict[str, str]:
    """The keys this browser session holds, by survey (a key from before surveys were stored is
    filed under its survey the first time it is read)."""
    keys_ = dict(session.get(SESSION_KEYS) or {})
    legacy = session.get(LEGACY_SESSION_KEY)
    if legacy:
        session.pop(LEGACY_SESSION_KEY, None)
        try:
            row = response_for(legacy)
        except BadKey:
            row = None
        if row is not None:
            keys_[f"{row.survey_id}@{row.survey_version}"] = keys.normalize(legacy)
            session[SESSION_KEYS] = keys_
    return keys_


def remember(survey_id: str, version: int, key: str) -> None:
    """Keep a key in the signed session, under its survey (replacing that survey's earlier key)."""
    keys_ = session_keys()
    keys_[f"{survey_id}@{version}"] = keys.normalize(key)
    session[SESSION_KEYS] = keys_


def forget(ref: str | None = None) -> None:
    """Forget one survey's key ("<id>@<version>") in this browser; every key without one."""
    if ref is None:
        session.pop(SESSION_KEYS, None)
        session.pop(LEGACY_SESSION_KEY, None)
        return
    keys_ = session_keys()
    if keys_.pop(ref, None) is not None:
        session[SESSION_KEYS] = keys_


def session_key(survey) -> str | None:
    """The key this session holds for this survey, if any."""
    if SESSION_KEYS not in session and LEGACY_SESSION_KEY not in session:
        return None  # no session read beyond the cookie: public pages stay cheap
    return session_keys().get(f"{survey.id}@{survey.version}")


def presented_key(form_field: str | None = None, survey=None) -> str | None:
    """The key the request carries: the X-Results-Key header, a form field, or the session's key
    for this survey (without a survey: any key the session holds, as proposing a topic takes)."""
    if HEADER in request.headers:
        return request.headers[HEADER]
    if form_field and request.method == "POST" and request.form.get(form_field):
        return request.form[form_field]
    if survey is None:
        return next(iter(session_keys().values()), None) if SESSION_KEYS in session else None
    return session_key(survey)


def response_for(key: str) -> Response:
    """The response this key belongs to; BadKey if malformed or unknown (no hint which)."""
    normal = keys.normalize(key)
    if normal is None:
        raise BadKey()
    key_hash = keys.keyed_hash(current_app.config["SECRET_KEY"], "response", normal)
    row = response_queries.response_by_key(storage.reader(), key_hash)
    if row is None:
        raise BadKey()
    return row


def ballot_hash(key: str) -> str:
    """The key's hash in the ballot domain: unrelated to the hash kept with the response."""
    return keys.keyed_hash(current_app.config["SECRET_KEY"], "ballot", keys.normalize(key))


def voter(key: str | None, survey=None) -> str:
    """The ballot-domain hash of a valid results key (of this survey, when one is given: voting
    needs a key of the current survey); PulseError 401 otherwise."""
    if not key:
        raise PulseError(401, "A results key is needed: it is shown once you have answered the survey.",
                         {"results_key": "required"})
    try:
        if survey is None:
            response_for(key)
        else:
            checked(survey, key)
    except OtherSurveyKey as exc:
        raise PulseError(401, f"{exc.message} Voting in this round needs a key of the current survey.",
                         {"results_key": "a key of another survey"}) from None
    except BadKey as exc:
        raise PulseError(401, exc.message, {"results_key": "not a valid results key"}) from None
    return ballot_hash(key)


def proposal_hash(key: str) -> str:
    """The key's hash in the proposal domain (for per-key limits on proposals)."""
    return keys.keyed_hash(current_app.config["SECRET_KEY"], "proposal", keys.normalize(key))


def checked(survey, key: str) -> Response:
    """The response of this key in this survey version; BadKey if malformed or unknown,
    OtherSurveyKey (naming its survey) if it answered another survey."""
    row = response_for(key)
    if (row.survey_id, row.survey_version) != (survey.id, survey.version):
        raise OtherSurveyKey(row.survey_id, row.survey_version, _title(row.survey_id, row.survey_version))
    return row


def _title(survey_id: str, version: int) -> str | None:
    found = program_queries.stored_survey(storage.reader(), survey_id, version)
    return found.title if found else None


def participant(survey) -> Response | None:
    """The response row of the key this request carries for this survey (header or session), or None.

    A session key that no longer matches (another database, a new SECRET_KEY) is dropped, not an error.
    """
    if HEADER in request.headers:
        key = request.headers[HEADER]
    else:
        key = session_key(survey)
    if not key:
        return None
    try:
        return checked(survey, key)
    except BadKey:
        if HEADER not in request.headers:
            forget(f"{survey.id}@{survey.version}")
        return None
