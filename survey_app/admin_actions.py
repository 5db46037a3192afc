"""What organisers can do to one survey's results, shared by the admin pages and the `pulse` commands.

The program itself (adding, opening and closing surveys) is program.py's.
"""

from __future__ import annotations

from flask import current_app

from . import keys, participation, program, program_queries, response_queries, snapshot_queries, snapshots, storage
from .domain_errors import Conflict, Invalid
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

    A closed survey whose final snapshot is still owed (its build at the close failed) gets that
    one first, by its own rule: the organisers need not wait for a running Pulse to build it.
    """
    if program.owes_final_snapshot(survey):
        built = program.build_final_snapshot(survey.id, survey.version)
        if built is not None:
            return built
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


def share_target(survey: Survey) -> str:
    """What the share kit may hand out for this survey, a link that works for anyone: "form"
    (/survey serves it while it is current and open) or "results" (its results page, once they
    are released and published). Conflict, saying why and what to do, when nothing works yet."""
    entry = program.entry(survey)
    if entry.is_current and entry.is_open:
        return "form"
    published = snapshots.served(survey).published
    if published.published and published.released:
        return "results"
    ref = program.ref(survey)
    if not entry.opened:  # its results page is a 404: surveys never opened are not shown publicly
        raise Conflict("share_not_opened", survey=ref)
    if published.published:  # a 403 without a results key
        raise Conflict("share_early_access", survey=ref)
    responses = response_queries.count_responses(storage.reader(), survey.id, survey.version)
    threshold = int(current_app.config["PULSE_RELEASE_THRESHOLD"])
    raise Conflict("share_nothing_published", survey=ref, responses=responses, threshold=threshold)


# Codes one form or command makes at most: a print run for a mailing, not a database dump.
MAX_INVITES = 100_000


def make_invites(survey: Survey, n: int) -> list[str]:
    """n new single-use invite codes for this survey: stored as keyed hashes only, so these
    are the only copy of the codes (shown or downloaded once, never logged)."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_INVITES:
        raise Invalid("invite_count", maximum=MAX_INVITES)
    secret = current_app.config["SECRET_KEY"]
    codes = [keys.new_invite_code() for _ in range(n)]
    with storage.writer() as db:
        response_queries.add_invites(db, survey.id, [keys.keyed_hash(secret, "invite", c) for c in codes])
    return codes


def participation_of(survey: Survey) -> dict:
    """What /admin shows about who answered, without anything about anyone: responses per ISO
    week, the distance to the release threshold and to the next snapshot, invite codes used."""
    db = storage.reader()
    per_week = response_queries.responses_per_week(db, survey.id, survey.version)
    count = sum(per_week.values())
    threshold = int(current_app.config["PULSE_RELEASE_THRESHOLD"])
    st = program_queries.survey_state(db, survey.id, survey.version)
    is_open = bool(st and st.is_open)
    last = snapshot_queries.latest_snapshot_responses(db, survey.id, survey.version)
    next_at = snapshots.next_snapshot_at(current_app.config, last)
    weeks = participation.weekly(per_week, until=storage.iso_week() if is_open else None)
    return {
        "survey": survey,
        "ref": program.ref(survey),
        "is_open": is_open,
        # open | closed | added (stored, never opened: no snapshot, no final snapshot, nothing yet)
        "status": "open" if is_open else "closed" if st is not None else "added",
        "responses": count,
        "weeks": weeks,
        "bars": participation.bars(weeks),
        "threshold": threshold,
        "to_threshold": max(threshold - count, 0),
        "snapshot_responses": last,
        "next_snapshot_at": next_at,
        # None while the survey is not open: no snapshot follows until it opens (again).
        "to_next_snapshot": max(next_at - count, 0) if is_open else None,
        "invite_only": survey.invite_only,
        # Every response to an invite-only version used up one code (deleted as it was used).
        "invites_used": count if survey.invite_only else None,
        # Codes are made, stored and checked under the survey's id, not one version (the CSV names
        # no version): these wait for whichever version of it is open, and the page says so.
        "invites_unused": response_queries.unused_invites(db, survey.id),
    }
