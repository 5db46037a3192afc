"""Every query on the survey program: stored survey definitions, each version's state (opened,
open, released, current), the lock and the notification around a change of the program,
whether the database holds demo data, and the program's events (for the Atom feed).

Run in storage.py's sessions: functions take the session first, and the caller's
`storage.writer()` transaction commits what they change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import storage
from .models import DatabaseFlag, ProgramEvent, StoredSurvey, SurveyState


def stored_survey(db: Session, survey_id: str, version: int) -> StoredSurvey | None:
    return db.get(StoredSurvey, (survey_id, version))


def stored_surveys(db: Session) -> list[StoredSurvey]:
    """Every stored definition, by id and version."""
    return list(db.scalars(select(StoredSurvey).order_by(StoredSurvey.id, StoredSurvey.version)))


def highest_version(db: Session, survey_id: str) -> int | None:
    return db.scalar(select(func.max(StoredSurvey.version)).filter_by(id=survey_id))


def add_stored_survey(
    db: Session, survey_id: str, version: int, title: str, definition: str, topic_id: str | None
) -> StoredSurvey:
    row = StoredSurvey(
        id=survey_id, version=version, title=title, definition=definition, topic_id=topic_id, week=storage.iso_week()
    )
    db.add(row)
    db.flush()
    return row


def survey_states(db: Session) -> dict[tuple[str, int], SurveyState]:
    """Every survey's state by (id, version): only surveys that were ever opened have one."""
    return {(s.survey_id, s.survey_version): s for s in db.scalars(select(SurveyState))}


def current_survey_key(db: Session) -> tuple[str, int] | None:
    """(id, version) of the current survey, or None when no survey was ever made current."""
    row = db.execute(
        select(SurveyState.survey_id, SurveyState.survey_version).where(SurveyState.current).limit(1)
    ).first()
    return None if row is None else (row[0], row[1])


def lock_program(db: Session) -> None:
    """PostgreSQL: one organiser change of the program (open, close, the start-up default) at a
    time, until this transaction ends. SQLite: nothing (writers already queue)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(select(func.pg_advisory_xact_lock(func.hashtext("pulse-program"))))


def program_changed(db: Session) -> None:
    """PostgreSQL: at commit, tell every worker's listener that the current survey may have changed."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(select(func.pg_notify(storage.SNAPSHOT_CHANNEL, "program")))


def survey_state(db: Session, survey_id: str, version: int, lock: bool = False) -> SurveyState | None:
    """The organisers' state of this survey version; None if it was never opened."""
    query = select(SurveyState).filter_by(survey_id=survey_id, survey_version=version)
    if lock:
        query = query.with_for_update()
    return db.scalars(query).one_or_none()


def read_survey_state(db: Session, survey_id: str, version: int) -> tuple[bool, bool]:
    """(is_open, released) without writing anything; a survey never opened is closed, unreleased."""
    state = survey_state(db, survey_id, version)
    return (False, False) if state is None else (state.is_open, state.released)


def set_survey_state(db: Session, survey_id: str, version: int, **changes: Any) -> SurveyState:
    """Change a survey version's state, creating it (closed, unreleased) when it has none yet."""
    state = survey_state(db, survey_id, version, lock=True)
    if state is None:
        state = SurveyState(survey_id=survey_id, survey_version=version, is_open=False, released=False, current=False)
        db.add(state)
    for name, value in changes.items():
        setattr(state, name, value)
    db.flush()
    return state


def owed_final_snapshots(db: Session) -> list[tuple[str, int]]:
    """(id, version) of every closed survey whose final snapshot is still owed (its build failed,
    or is under way right now)."""
    rows = db.execute(
        select(SurveyState.survey_id, SurveyState.survey_version)
        .where(SurveyState.final_snapshot_owed.is_not(None), SurveyState.is_open.is_(False))
        .order_by(SurveyState.survey_id, SurveyState.survey_version)
    ).all()
    return [(sid, version) for sid, version in rows]


def take_final_snapshot(db: Session, survey_id: str, version: int) -> str | None:
    """Empty this survey's owed final snapshot in this transaction; what was owed ("first" or
    "again"), or None when nothing is (another worker took it, or the survey is open again).

    The row is locked: a second taker waits for this transaction and then finds it taken (on
    PostgreSQL under REPEATABLE READ it is refused with a serialization failure instead)."""
    st = survey_state(db, survey_id, version, lock=True)
    if st is None or st.final_snapshot_owed is None or st.is_open:
        return None
    owed, st.final_snapshot_owed = st.final_snapshot_owed, None
    db.flush()
    return owed


def clear_current(db: Session) -> None:
    db.execute(update(SurveyState).where(SurveyState.current).values(current=False))


def is_demo(db: Session) -> bool:
    """Whether this database holds demo data."""
    flag = db.get(DatabaseFlag, 1)
    return bool(flag and flag.demo)


def mark_demo(db: Session) -> None:
    flag = db.get(DatabaseFlag, 1)
    if flag is None:
        db.add(DatabaseFlag(id=1, demo=True))
    else:
        flag.demo = True


# The current survey and, in the same round trip, the id of its newest snapshot (the two things
# every page asks when the listener cannot answer them).
_CURRENT_SURVEY_SQL = (
    "SELECT s.survey_id, s.survey_version, (SELECT max(n.id) FROM snapshots n"
    " WHERE n.survey_id = s.survey_id AND n.survey_version = s.survey_version)"
    " FROM survey_states s WHERE s.current LIMIT 1"
)


def current_survey_now(probe: Engine) -> tuple[tuple[str, int], int | None] | None:
    """(the current survey's (id, version), its newest snapshot id) in one round trip on the probe
    pool, outside any transaction (so a request's read session never hides a change from it)."""
    row = storage.probe_row(probe, _CURRENT_SURVEY_SQL, ())
    return ((row[0], row[1]), row[2]) if row else None


# ------------------------------------------------------------------ schedules


def set_schedule(db: Session, row: StoredSurvey, opens_at: int | None, closes_at: int | None) -> None:
    row.opens_at, row.closes_at = opens_at, closes_at
    db.flush()


def due_surveys(db: Session, now: int) -> list[tuple[str, int, bool, bool]]:
    """(id, version, opening due, closing due) of every survey with a scheduled time at or before now."""
    rows = db.execute(
        select(StoredSurvey.id, StoredSurvey.version, StoredSurvey.opens_at, StoredSurvey.closes_at)
        .where((StoredSurvey.opens_at <= now) | (StoredSurvey.closes_at <= now))
        .order_by(StoredSurvey.id, StoredSurvey.version)
    ).all()
    return [
        (sid, version, opens is not None and opens <= now, closes is not None and closes <= now)
        for sid, version, opens, closes in rows
    ]


def next_scheduled(db: Session) -> int | None:
    """The earliest time any survey is scheduled to open or close, or None."""
    opens, closes = db.execute(select(func.min(StoredSurvey.opens_at), func.min(StoredSurvey.closes_at))).one()
    times = [t for t in (opens, closes) if t is not None]
    return min(times) if times else None


def take_due(db: Session, survey_id: str, version: int, what: str, now: int) -> bool:
    """Empty this survey's scheduled opening ("opens") or closing ("closes") if it is due; whether
    this transaction did. The conditional update is the claim: however many workers and hosts try
    at once, one finds the time still set and empties it; the others find it gone and do nothing."""
    column = StoredSurvey.opens_at if what == "opens" else StoredSurvey.closes_at
    result = db.execute(
        update(StoredSurvey)
        .where(StoredSurvey.id == survey_id, StoredSurvey.version == version, column.is_not(None), column <= now)
        .values({column.key: None})
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def schedule_of(db: Session, survey_id: str, version: int) -> tuple[int | None, int | None]:
    """(opens_at, closes_at) of one stored survey; (None, None) when it is not stored."""
    row = db.execute(
        select(StoredSurvey.opens_at, StoredSurvey.closes_at).filter_by(id=survey_id, version=version)
    ).first()
    return (row[0], row[1]) if row else (None, None)


# ------------------------------------------------------------------ program events (the Atom feed)


def record_event(db: Session, kind: str, **refs: Any) -> None:
    """Note an organiser's event, dated today (UTC), in the transaction that makes it happen."""
    db.add(ProgramEvent(kind=kind, day=dt.datetime.now(dt.timezone.utc).date(), **refs))


def results_release_recorded(db: Session, survey_id: str, version: int) -> bool:
    """Whether the feed already says this survey version's results are public."""
    query = select(ProgramEvent.id).filter_by(kind="results_released", survey_id=survey_id, survey_version=version)
    return db.scalar(query.limit(1)) is not None


def record_results_released(db: Session, survey_id: str, version: int, *, by_week: bool) -> None:
    """Note that this survey version's results are public, once, in the transaction that stores
    the first public snapshot. `by_week`: the snapshot follows a response (the threshold was
    reached), so it is dated by the Monday of its ISO week, as coarse as the response's own week;
    otherwise by today (UTC), the day the organisers released the results.

    Once: a partial unique index allows one results_released row per survey version (migration
    0010). A worker that could not see another's row yet (PostgreSQL's full recount reads one
    snapshot of the data) is refused by the index and leaves it there, its snapshot stored.
    """
    if results_release_recorded(db, survey_id, version):
        return
    if by_week:
        today = dt.date.today()  # the calendar storage.iso_week() dates responses and snapshots by
        day = today - dt.timedelta(days=today.isoweekday() - 1)
    else:
        day = dt.datetime.now(dt.timezone.utc).date()
    try:
        with db.begin_nested():
            db.add(ProgramEvent(kind="results_released", day=day, survey_id=survey_id, survey_version=version))
    except IntegrityError:
        pass  # another worker recorded it first


def program_events(db: Session, limit: int = 50) -> list[ProgramEvent]:
    """The latest events, newest first."""
    return list(db.scalars(select(ProgramEvent).order_by(ProgramEvent.id.desc()).limit(limit)))
