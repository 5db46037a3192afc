"""Who is asking: a participant proves themselves with their results key, never with an id."""

from __future__ import annotations

from flask import after_this_request, current_app, request, session

from . import keys, program_queries, response_queries, state, storage
from .errors import PulseError
from .response_queries import KeyedResponse

HEADER = "X-Results-Key"
# The session keeps one results key per survey: {"<survey id>@<version>": key}.
SESSION_KEYS = "results_keys"
# Where sessions signed before the survey program kept their one key.
LEGACY_SESSION_KEY = "results_key"
# The longest typed key a form puts back into its field after an error (a key is 26 characters
# and dashes): one wrong character is then not a whole key to type again.
TYPED_MAX = 100
# "Remember my key on this device": the key alone, in a cookie of its own, for this long.
DEVICE_DAYS = 90


def device_cookie() -> str:
    """The device cookie's name: `__Host-` over HTTPS (Secure, host-only, path /), as the session's."""
    return "__Host-pulse_key" if current_app.config.get("PULSE_HTTPS") else "pulse_key"


def keep_on_device(response, key: str) -> None:
    """Set the device cookie: the normalized key and nothing else, for DEVICE_DAYS."""
    response.set_cookie(
        device_cookie(),
        keys.normalize(key),
        max_age=DEVICE_DAYS * 86400,
        path="/",
        secure=bool(current_app.config.get("PULSE_HTTPS")),
        httponly=True,
        samesite="Lax",
    )


def drop_from_device(response) -> None:
    response.delete_cookie(
        device_cookie(), path="/", secure=bool(current_app.config.get("PULSE_HTTPS")), httponly=True, samesite="Lax"
    )


def device_key() -> str | None:
    """The key this device remembers, normalized; None without one (or a malformed one)."""
    kept = request.cookies.get(device_cookie())
    return keys.normalize(kept) if kept else None


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
    kept = device_key()
    if kept and kept not in keys_.values():
        # The remembered key fills in its survey when the session has none for it (a key this
        # session was given or typed, for another clinic, wins while the browser is open).
        try:
            row = response_for(kept)
        except BadKey:  # another database or secret key: the cookie is useless, so it goes
            row = None
            after_this_request(_dropped)
        if row is not None and f"{row.survey_id}@{row.survey_version}" not in keys_:
            keys_[f"{row.survey_id}@{row.survey_version}"] = kept
            session[SESSION_KEYS] = keys_
    return keys_


def _dropped(response):
    drop_from_device(response)
    return response


def remember(survey_id: str, version: int, key: str) -> None:
    """Keep a key in the signed session, under its survey (replacing that survey's earlier key)."""
    keys_ = session_keys()
    keys_[f"{survey_id}@{version}"] = keys.normalize(key)
    session[SESSION_KEYS] = keys_


def forget(ref: str | None = None) -> None:
    """Forget one survey's key ("<id>@<version>") in this browser; every key without one."""
    kept = device_key()
    if ref is None:
        session.pop(SESSION_KEYS, None)
        session.pop(LEGACY_SESSION_KEY, None)
        if kept:
            after_this_request(_dropped)
        return
    keys_ = session_keys()
    gone = keys_.pop(ref, None)
    if gone is not None:
        session[SESSION_KEYS] = keys_
        if gone == kept:  # forgetting a key forgets it on the device too
            after_this_request(_dropped)


def session_key(survey) -> str | None:
    """The key this session holds for this survey, if any."""
    if SESSION_KEYS not in session and LEGACY_SESSION_KEY not in session and device_cookie() not in request.cookies:
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
        held = SESSION_KEYS in session or device_cookie() in request.cookies
        return next(iter(session_keys().values()), None) if held else None
    return session_key(survey)


def response_for(key: str) -> KeyedResponse:
    """The response this key belongs to; BadKey if malformed or unknown (no hint which)."""
    normal = keys.normalize(key)
    if normal is None:
        raise BadKey()
    key_hash = keys.keyed_hash(current_app.config["SECRET_KEY"], "response", normal)
    row = _keyed_response(key_hash)
    if row is None:
        raise BadKey()
    return row


def _keyed_response(key_hash: str) -> KeyedResponse | None:
    """The response of this key hash: on PostgreSQL from this worker's memory while its listener
    hears every stored snapshot (the only change to what the lookup reads), else from the database.
    An unknown key is asked again each time: its response may have been stored since, elsewhere."""
    pulse = state.of()
    trusted = pulse.watch is not None and pulse.watch.listening()
    if trusted:
        kept = pulse.cache.keyed_responses.get(key_hash)
        if kept is not None:
            return kept
    epoch = pulse.cache.snapshots_epoch  # read before the query: a snapshot heard since keeps this out
    row = response_queries.keyed_response(pulse.probe, key_hash)
    if trusted and row is not None:
        pulse.cache.put_keyed_response(key_hash, row, epoch)
    return row


def ballot_hash(key: str) -> str:
    """The key's hash in the ballot domain: unrelated to the hash kept with the response."""
    return keys.keyed_hash(current_app.config["SECRET_KEY"], "ballot", keys.normalize(key))


def voter(key: str | None, survey=None) -> str:
    """The ballot-domain hash of a valid results key (of this survey, when one is given: voting
    needs a key of the current survey); PulseError 401 otherwise."""
    if not key:
        raise PulseError(
            401, "A results key is needed: it is shown once you have answered the survey.", {"results_key": "required"}
        )
    try:
        if survey is None:
            response_for(key)
        else:
            checked(survey, key)
    except OtherSurveyKey as exc:
        raise PulseError(
            401,
            f"{exc.message} Voting in this round needs a key of the current survey.",
            {"results_key": "a key of another survey"},
        ) from None
    except BadKey as exc:
        raise PulseError(401, exc.message, {"results_key": "not a valid results key"}) from None
    return ballot_hash(key)


def proposal_hash(key: str) -> str:
    """The key's hash in the proposal domain (for per-key limits on proposals)."""
    return keys.keyed_hash(current_app.config["SECRET_KEY"], "proposal", keys.normalize(key))


def checked(survey, key: str) -> KeyedResponse:
    """The response of this key in this survey version; BadKey if malformed or unknown,
    OtherSurveyKey (naming its survey) if it answered another survey."""
    row = response_for(key)
    if (row.survey_id, row.survey_version) != (survey.id, survey.version):
        raise OtherSurveyKey(row.survey_id, row.survey_version, _title(row.survey_id, row.survey_version))
    return row


def _title(survey_id: str, version: int) -> str | None:
    found = program_queries.stored_survey(storage.reader(), survey_id, version)
    return found.title if found else None


def participant(survey) -> KeyedResponse | None:
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
