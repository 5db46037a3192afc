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
    """Build a snapshot if one is due; the number of responses it counts (None if another build won
    the race).

    The organisers' rebuild follows the automatic rule (snapshots.min_new: the release threshold
    for the first, then the last N again, so each snapshot doubles N): every snapshot is a fresh
    draw of the noise, and a rebuild on demand would let whoever asks for it average draws. A
    full recount of the same responses (none new) publishes the same numbers and is allowed.
    """
    db = storage.reader()
    pending = response_queries.count_responses(db, survey.id, survey.version, pending_only=True)
    last = snapshot_queries.latest_snapshot_responses(db, survey.id, survey.version)
    needed = snapshots.min_new(current_app.config, last)
    if pending < needed and not (full and pending == 0):
        raise Conflict("snapshot_not_due", pending=pending, last=last, needed=needed)
    return snapshots.rebuild(storage.engine(), survey, snapshots.disclosure_rules(), full=full, progress=progress)


def overview(survey: Survey) -> dict:
    """What the admin page shows about one survey: responses, the threshold, open and released."""
    db = storage.reader()
    count = response_queries.count_responses(db, survey.id, survey.version)
    threshold = int(current_app.config["PULSE_RELEASE_THRESHOLD"])
    is_open, released = program_queries.read_survey_state(db, survey.id, survey.version)
    snapshot = snapshot_queries.latest_snapshot(db, survey.id, survey.version)
    last = snapshot.responses if snapshot else None
    return {
        "survey": survey,
        "ref": program.ref(survey),
        "responses": count,
        "threshold": threshold,
        "needed": max(threshold - count, 0),
        "progress": min(100, round(100 * count / threshold)),
        "is_open": is_open,
        "released": released,
        "snapshot_responses": last,
        "next_update": snapshots.next_snapshot_at(current_app.config, last),
    }
