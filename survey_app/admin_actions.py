"""What organisers can do to one survey's results, shared by the admin pages and the `pulse` commands.

The program itself (adding, opening and closing surveys) is program.py's.
"""
from __future__ import annotations

from flask import current_app

from . import program, snapshots, storage
from .errors import PulseError
from .questions import Survey


def chosen(ref: str | None) -> Survey:
    """The survey an organiser named (ID or ID@VERSION; the highest version without one), or the current one."""
    return program.find(ref) if ref else program.current()


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
    pending = storage.count_responses(db, survey.id, survey.version, pending_only=True)
    last = storage.latest_snapshot_responses(db, survey.id, survey.version)
    needed = snapshots.min_new(current_app.config, last)
    if pending < needed and not (full and pending == 0):
        raise PulseError(409, not_due_message(pending, last, needed))
    return snapshots.rebuild(storage.engine(), survey, snapshots.rules(), full=full, progress=progress)


def not_due_message(pending: int, last: int | None, needed: int) -> str:
    """Why no snapshot was built, and when the next one is due."""
    new = f"{pending} new response{'s' if pending != 1 else ''}"
    if last is None:
        return (f"No snapshot is due: the first comes at {needed} responses ({needed - pending} more), "
                "or when the survey closes.")
    return (f"No snapshot is due: {new} since the published figures (from {last} responses); the next "
            f"update comes at {last + needed} responses ({needed - pending} more), or when the survey closes.")


def overview(survey: Survey) -> dict:
    """What the admin page shows about one survey: responses, the threshold, open and released."""
    db = storage.reader()
    count = storage.count_responses(db, survey.id, survey.version)
    threshold = int(current_app.config["PULSE_RELEASE_THRESHOLD"])
    is_open, released = storage.read_survey_state(db, survey.id, survey.version)
    snapshot = storage.latest_snapshot(db, survey.id, survey.version)
    last = snapshot.responses if snapshot else None
    return {"survey": survey, "ref": program.ref(survey), "responses": count, "threshold": threshold,
            "needed": max(threshold - count, 0), "progress": min(100, round(100 * count / threshold)),
            "is_open": is_open, "released": released, "snapshot_responses": last,
            "next_update": (last or 0) + snapshots.min_new(current_app.config, last)}
