"""What organisers can do, shared by the admin pages and the `pulse` commands."""
from __future__ import annotations

from flask import current_app

from . import snapshots, storage


def set_survey_state(**changes: bool) -> str:
    """Open/close the survey or release results; returns a sentence saying what changed."""
    survey = current_app.config["SURVEY"]
    with storage.writer() as db:
        state = storage.set_survey_state(db, survey.id, survey.version, **changes)
        is_open, released = state.is_open, state.released
    if "released" in changes:
        # The stored JSON carries the release flag: publish it again from the same counts.
        rebuild_snapshot()
    return (f"{survey.title} v{survey.version}: survey {'open' if is_open else 'closed'}, "
            f"results {'released to everyone' if released else 'in early access'}.")


def rebuild_snapshot(full: bool = False) -> int | None:
    """Rebuild the benchmark snapshot now; the number of responses it counts."""
    survey = current_app.config["SURVEY"]
    return snapshots.rebuild(storage.engine(), survey, snapshots.rules_from_config(current_app.config), full=full)


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
