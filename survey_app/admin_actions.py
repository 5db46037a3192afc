"""What organisers can do, shared by the admin pages and the `pulse` commands."""
from __future__ import annotations

from flask import current_app

from . import snapshots, storage
from .errors import PulseError


def set_survey_state(**changes: bool) -> str:
    """Open/close the survey or release results; returns a sentence saying what changed."""
    survey = current_app.config["SURVEY"]
    with storage.writer() as db:
        state = storage.set_survey_state(db, survey.id, survey.version, **changes)
        is_open, released = state.is_open, state.released
    if "released" in changes:
        # The stored JSON carries the release flag: publish the same counts again, with the
        # same noise; responses that arrived since wait for the next snapshot.
        snapshots.republish(storage.engine(), survey, snapshots.rules())
    return (f"{survey.title} v{survey.version}: survey {'open' if is_open else 'closed'}, "
            f"results {'released to everyone' if released else 'in early access'}.")


def rebuild_snapshot(full: bool = False, progress=None) -> int | None:
    """Build a snapshot now; the number of responses it counts (None if another build won the race).

    Like the automatic rebuild, it needs PULSE_SNAPSHOT_MIN_NEW new responses at least: a
    snapshot one response apart from the last would let that response be read off. A full
    recount of the same responses (none new) publishes the same numbers and is allowed.
    """
    survey = current_app.config["SURVEY"]
    least = int(current_app.config["PULSE_SNAPSHOT_MIN_NEW"])
    db = storage.reader()
    pending = storage.count_responses(db, survey.id, survey.version, pending_only=True)
    if pending < least and not (full and pending == 0):
        raise PulseError(409, f"Only {pending} new response{'s' if pending != 1 else ''} since the published "
                              f"figures were last updated; updating them needs at least {least}, so that no single "
                              "response can be read off by comparing the figures before and after.")
    return snapshots.rebuild(storage.engine(), survey, snapshots.rules(), full=full, progress=progress)


def overview() -> dict:
    """What the admin page shows about the survey: responses, the threshold, open and released."""
    survey = current_app.config["SURVEY"]
    db = storage.reader()
    count = storage.count_responses(db, survey.id, survey.version)
    threshold = int(current_app.config["PULSE_RELEASE_THRESHOLD"])
    is_open, released = storage.read_survey_state(db, survey.id, survey.version)
    snapshot = storage.latest_snapshot(db, survey.id, survey.version)
    return {"survey": survey, "responses": count, "threshold": threshold,
            "needed": max(threshold - count, 0), "progress": min(100, round(100 * count / threshold)),
            "is_open": is_open, "released": released,
            "snapshot_responses": snapshot.responses if snapshot else None}
