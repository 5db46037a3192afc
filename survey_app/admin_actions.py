"""What organisers can do to one survey's results, shared by the admin pages and the `pulse` commands.

The program itself (adding, opening and closing surveys) is program.py's.
"""
from __future__ import annotations

from flask import current_app

from . import program, program_queries, response_queries, snapshot_queries, snapshots, storage
from .domain_errors import Conflict
from .questions import Survey


def chosen(ref: str | None) -> Survey:
    """The survey an organiser named (ID or ID@VERSION; the highest version without one), or the current one."""
    return program.find(ref) if ref else program.current_survey()


def release(survey: Survey) -> str:
    """End early access for this survey; a sentence saying so."""
    return program.set_released(survey)


def rebuild_snapshot(survey: Survey, full: bool = False, progress=None) -> int | None:
    """Build a snapshot now; the number of responses it counts (None if another build won the race).

    Like the automatic rebuild, it needs PULSE_SNAPSHOT_MIN_NEW new responses at least: a
    snapshot one response apart from the last would let that response be read off. A full
    recount of the same responses (none new) publishes the same numbers and is allowed.
    """
    least = int(current_app.config["PULSE_SNAPSHOT_MIN_NEW"])
    db = storage.reader()
    pending = response_queries.count_responses(db, survey.id, survey.version, pending_only=True)
    if pending < least and not (full and pending == 0):
        raise Conflict("too_few_new_responses", pending=pending, least=least)
    return snapshots.rebuild(storage.engine(), survey, snapshots.disclosure_rules(), full=full, progress=progress)


def overview(survey: Survey) -> dict:
    """What the admin page shows about one survey: responses, the threshold, open and released."""
    db = storage.reader()
    count = response_queries.count_responses(db, survey.id, survey.version)
    threshold = int(current_app.config["PULSE_RELEASE_THRESHOLD"])
    is_open, released = program_queries.read_survey_state(db, survey.id, survey.version)
    snapshot = snapshot_queries.latest_snapshot(db, survey.id, survey.version)
    return {"survey": survey, "ref": program.ref(survey), "responses": count, "threshold": threshold,
            "needed": max(threshold - count, 0), "progress": min(100, round(100 * count / threshold)),
            "is_open": is_open, "released": released,
            "snapshot_responses": snapshot.responses if snapshot else None}
