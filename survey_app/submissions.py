"""Accepting one response, the same way for the form and the API."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from . import keys, response_queries, snapshots, storage
from .domain_errors import Conflict, Invalid
from .questions import Survey, validate_answers

log = logging.getLogger(__name__)


def accept(survey: Survey, answers: Any, invite_code: Any = None) -> str:
    """Validate and store a response; return its new results key. Raises Invalid or Conflict."""
    clean, errors = validate_answers(survey, answers)
    if errors:
        raise Invalid("answers", errors)
    return accept_valid(survey, clean, invite_code)


def accept_valid(survey: Survey, clean: dict[str, Any], invite_code: Any = None) -> str:
    """Store answers that validate_answers returned for this survey (the API's body model runs
    it: a second run was a twentieth of a submission); the new results key. Raises Invalid
    (the invite code) or Conflict."""
    secret = current_app.config["SECRET_KEY"]
    results_key = keys.new_results_key()
    key_hash = keys.keyed_hash(secret, "response", results_key)
    if not survey.invite_only:
        # A submission is one statement, its own transaction (storage.write_one).
        if not response_queries.store_response_if_open(survey.id, survey.version, clean, key_hash):
            raise Conflict("survey_not_open", survey_id=survey.id, version=survey.version)
    else:
        # Invite mode also uses up a code in the same transaction, its delete zeroed in the ORM
        # session (storage.zeroing_deletes).
        with storage.writer() as db:
            code = keys.normalize(invite_code, keys.INVITE_BYTES)
            if code is None or not response_queries.burn_invite(db, survey.id, keys.keyed_hash(secret, "invite", code)):
                raise Invalid("invite_code")
            if not response_queries.save_response_if_open(db, survey.id, survey.version, clean, key_hash):
                # Raised inside the transaction: it rolls back, and the burned code with it.
                raise Conflict("survey_not_open", survey_id=survey.id, version=survey.version)
    # After the commit, never inside it: a failed rebuild must not lose the response.
    snapshots.rebuild_if_due(survey)
    if survey.invite_only:
        # Last, so that the request leaves an empty WAL behind, whatever the rebuild wrote.
        _forget_the_pairing()
    return results_key


def _forget_the_pairing() -> None:
    """Invite mode: empty SQLite's WAL, which keeps the burned code and the new row side by side.

    The commit holds the delete of the code's row and the insert of the response in one set of
    WAL frames; a copy of the files taken before a checkpoint would pair the two. A checkpoint
    that fails or cannot finish never fails the submission: it is logged, without anything
    from the request, and the next one empties the WAL (SECURITY.md, "Invite mode").
    """
    try:
        storage.end_request_reads()
        if not storage.checkpoint_wal():
            log.warning(
                "WAL checkpoint after an invite submission could not finish (database busy); "
                "the next one will empty the WAL"
            )
    except Exception as exc:  # noqa: BLE001 - the response is committed and must get its 201
        log.warning("WAL checkpoint after an invite submission failed: %s", type(exc).__name__)
