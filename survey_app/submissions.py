"""Accepting one response, the same way for the form and the API."""
from __future__ import annotations

from typing import Any

from flask import current_app

from . import keys, snapshots, storage
from .errors import PulseError
from .questions import Survey, validate_answers


def accept(survey: Survey, answers: Any, invite_code: Any = None) -> str:
    """Validate and store a response; return its new results key. Raises PulseError."""
    clean, errors = validate_answers(survey, answers)
    if errors:
        raise PulseError(422, "Some answers need attention.", errors)
    secret = current_app.config["SECRET_KEY"]
    results_key = keys.new_results_key()
    with storage.writer() as db:
        if survey.invite_only:
            code = keys.normalize(invite_code, keys.INVITE_BYTES)
            if code is None or not storage.burn_invite(db, survey.id, keys.keyed_hash(secret, "invite", code)):
                raise PulseError(422, "The invite code is not valid or was already used.",
                               {"invite_code": "unknown or already used invite code"})
        if not storage.save_response_if_open(db, survey.id, survey.version, clean,
                                             keys.keyed_hash(secret, "response", results_key)):
            # Raised inside the transaction: it rolls back, and a burned invite code with it.
            raise PulseError(409, "The survey is closed: the organisers are not taking responses now.")
    # After the commit, never inside it: a failed rebuild must not lose the response.
    snapshots.rebuild_if_due(survey)
    return results_key
