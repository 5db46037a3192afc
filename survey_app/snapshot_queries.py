"""Every query on snapshots: the newest one of a survey version, its id (one round trip on the
probe pool, asked per request), storing a new one and dropping the older ones.

Run in storage.py's sessions: functions take the session first, and the caller's
`storage.writer()` transaction commits what they change.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import storage
from .models import Snapshot


def latest_snapshot(db: Session, survey_id: str, version: int) -> Snapshot | None:
    """The newest snapshot of this survey version."""
    query = (
        select(Snapshot).filter_by(survey_id=survey_id, survey_version=version).order_by(Snapshot.id.desc()).limit(1)
    )
    return db.scalars(query).first()


def latest_snapshot_responses(db: Session, survey_id: str, version: int) -> int | None:
    """How many responses the newest snapshot counts; None before the first snapshot."""
    query = (
        select(Snapshot.responses)
        .filter_by(survey_id=survey_id, survey_version=version)
        .order_by(Snapshot.id.desc())
        .limit(1)
    )
    return db.scalar(query)


def latest_snapshot_id(db: Session, survey_id: str, version: int) -> int | None:
    """The newest snapshot's id: one cheap query, to check a cached copy."""
    query = select(func.max(Snapshot.id)).filter_by(survey_id=survey_id, survey_version=version)
    return db.scalar(query)


# By the driver's parameter style: sqlite3 takes "?", psycopg "%s".
_NEWEST_SNAPSHOT_SQL = {
    "qmark": "SELECT max(id) FROM snapshots WHERE survey_id = ? AND survey_version = ?",
    "pyformat": "SELECT max(id) FROM snapshots WHERE survey_id = %s AND survey_version = %s",
}


def newest_snapshot_id(probe: Engine, survey_id: str, version: int) -> int | None:
    """latest_snapshot_id in one round trip, for the per-request check of a cached snapshot."""
    row = storage.probe_row(probe, _NEWEST_SNAPSHOT_SQL[probe.dialect.paramstyle], (survey_id, version))
    return row[0] if row else None


def lock_snapshot_writes(db: Session, survey_id: str, version: int) -> None:
    """PostgreSQL: wait until no other transaction is storing a snapshot of this survey version,
    and hold that place until this transaction ends. SQLite: nothing (writers already queue)."""
    if db.get_bind().dialect.name == "postgresql":
        name = f"pulse-snapshot {survey_id}@{version}"
        db.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))


def outdated_snapshots(db: Session, shape: int) -> list[tuple[str, int]]:
    """The surveys (id, version) whose newest snapshot was published in a shape older than `shape`."""
    newest = (
        select(Snapshot.survey_id, Snapshot.survey_version, func.max(Snapshot.id).label("id"))
        .group_by(Snapshot.survey_id, Snapshot.survey_version)
        .subquery()
    )
    query = (
        select(Snapshot.survey_id, Snapshot.survey_version)
        .join(newest, Snapshot.id == newest.c.id)
        .where(Snapshot.shape < shape)
        .order_by(Snapshot.survey_id, Snapshot.survey_version)
    )
    return [(survey_id, version) for survey_id, version in db.execute(query)]


def save_snapshot(
    db: Session, survey_id: str, version: int, responses: int, tally: str, published: str, shape: int
) -> Snapshot:
    """Store a snapshot (published in this shape) and drop older ones of the same survey version."""
    snapshot = Snapshot(
        survey_id=survey_id,
        survey_version=version,
        responses=responses,
        tally=tally,
        published=published,
        week=storage.iso_week(),
        shape=shape,
    )
    db.add(snapshot)
    db.flush()
    db.query(Snapshot).filter(
        Snapshot.survey_id == survey_id, Snapshot.survey_version == version, Snapshot.id < snapshot.id
    ).delete(synchronize_session=False)
    if db.get_bind().dialect.name == "postgresql":
        # Delivered at commit, to every worker's SnapshotWatch: their cached snapshot is old now.
        db.execute(select(func.pg_notify(storage.SNAPSHOT_CHANNEL, "snapshot")))
    return snapshot
