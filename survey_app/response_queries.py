"""Every query on responses and invite codes: storing one while its survey is open, counting
them, streaming their answers to a rebuild, flagging the ones a snapshot counts (in id order,
so nothing about arrival order survives), and using up an invite code without a trace.

Run in storage.py's sessions: functions take the session first, and the caller's
`storage.writer()` transaction commits what they change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import bindparam, false, func, insert, select, true, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import storage
from .models import InviteCode, Response, SurveyState, new_uuid

# Rows fetched per round trip when the benchmark reads every response.
FETCH_CHUNK = 50_000


def response_counts(db: Session) -> dict[tuple[str, int], int]:
    """Responses per (survey id, version), for the organisers' list."""
    query = select(Response.survey_id, Response.survey_version, func.count()).group_by(
        Response.survey_id, Response.survey_version
    )
    return {(sid, version): n for sid, version, n in db.execute(query)}


# One statement stores a response only while its survey is open (a survey never opened has no
# state row, so it is not open), so a submission needs no separate read of the survey state:
# the check and the insert are one round trip, atomically.
_survey_open = (
    select(SurveyState.survey_id)
    .where(
        SurveyState.survey_id == bindparam("survey_id"),
        SurveyState.survey_version == bindparam("survey_version"),
        SurveyState.is_open == true(),
    )
    .exists()
)


_INSERT_IF_OPEN = (
    insert(Response.__table__)
    .from_select(
        ["id", "survey_id", "survey_version", "answers", "week", "key_hash", "in_snapshot"],
        select(
            *(
                bindparam(name, type_=Response.__table__.c[name].type)
                for name in ("id", "survey_id", "survey_version", "answers", "week", "key_hash")
            ),
            false(),
        ).where(_survey_open),
    )
    # SQLAlchemy keeps an INSERT's row count only when asked to (PostgreSQL answered -1).
    .execution_options(preserve_rowcount=True)
)


# Whether the row a try of _INSERT_IF_OPEN would write is there (storage.write_one).
_STORED = select(Response.__table__.c.id).where(Response.__table__.c.id == bindparam("id"))


def _new_row(survey_id: str, version: int, answers: dict[str, Any], key_hash: str) -> dict[str, Any]:
    return {
        "id": new_uuid(),
        "survey_id": survey_id,
        "survey_version": version,
        "answers": json.dumps(answers, separators=(",", ":"), sort_keys=True),
        "week": storage.iso_week(),
        "key_hash": key_hash,
    }


def store_response_if_open(survey_id: str, version: int, answers: dict[str, Any], key_hash: str) -> bool:
    """Store one validated response unless the organisers closed its survey, in a transaction of
    its own (storage.write_one); whether it was stored.

    The row count answers, not a RETURNING: SQLite commits a statement of its own when the
    statement ends, and the end of a RETURNING statement is its cursor's reset, whose error no
    one reads.
    """
    return storage.write_one(_INSERT_IF_OPEN, _new_row(survey_id, version, answers, key_hash), _STORED) == 1


def save_response_if_open(db: Session, survey_id: str, version: int, answers: dict[str, Any], key_hash: str) -> bool:
    """store_response_if_open in the caller's transaction (invite mode: with the burned code)."""
    return db.execute(_INSERT_IF_OPEN, _new_row(survey_id, version, answers, key_hash)).rowcount == 1


def add_responses(db: Session, survey_id: str, version: int, rows: list[tuple[str, str]]) -> None:
    """Bulk insert (answers JSON, key hash) pairs, for demo data and benchmarks.

    Inserted in id order: a SQLite table stored by id fills its pages in sequence (faster), and
    neither engine's file layout follows the order the rows were handed in.
    """
    week = storage.iso_week()
    db.execute(
        Response.__table__.insert(),
        sorted(
            (
                {
                    "id": new_uuid(),
                    "survey_id": survey_id,
                    "survey_version": version,
                    "answers": answers,
                    "week": week,
                    "key_hash": key_hash,
                    "in_snapshot": False,
                }
                for answers, key_hash in rows
            ),
            key=lambda row: row["id"],
        ),
    )


# A literal false, not a bound parameter: only then can SQLite use the partial index of pending rows.
PENDING = Response.in_snapshot == false()


def count_responses(db: Session, survey_id: str, version: int, *, pending_only: bool = False) -> int:
    """Responses of this survey version (only those no snapshot counts yet, if asked)."""
    query = select(func.count()).select_from(Response).filter_by(survey_id=survey_id, survey_version=version)
    if pending_only:
        query = query.where(PENDING)
    return db.scalar(query) or 0


def responses_per_week(db: Session, survey_id: str, version: int) -> dict[str, int]:
    """Responses of this survey version per ISO week of arrival (the only time a response keeps)."""
    query = (
        select(Response.week, func.count())
        .filter_by(survey_id=survey_id, survey_version=version)
        .group_by(Response.week)
    )
    return {week: n for week, n in db.execute(query)}


def unused_invites(db: Session, survey_id: str) -> int:
    """Invite codes of this survey not used yet (a used code is deleted, so only these remain)."""
    return db.scalar(select(func.count()).select_from(InviteCode).filter_by(survey_id=survey_id)) or 0


def response_by_key(db: Session, key_hash: str) -> Response | None:
    """The response whose results key has this hash, if any."""
    return db.scalars(select(Response).filter_by(key_hash=key_hash)).one_or_none()


@dataclass(frozen=True)
class KeyedResponse:
    """What a participant's page reads of their response (a copy, not a row of a session)."""

    id: str
    survey_id: str
    survey_version: int
    answers: str
    in_snapshot: bool
    # The id of its survey's newest snapshot, read in the same statement as in_snapshot: a
    # snapshot that counts this response is that one or older (snapshots.served trusts it).
    newest_snapshot: int | None


_KEYED_SQL = {
    "qmark": "SELECT r.id, r.survey_id, r.survey_version, r.answers, r.in_snapshot, (SELECT max(n.id)"
    " FROM snapshots n WHERE n.survey_id = r.survey_id AND n.survey_version = r.survey_version)"
    " FROM responses r WHERE r.key_hash = ?",
    "pyformat": "SELECT r.id, r.survey_id, r.survey_version, r.answers, r.in_snapshot, (SELECT max(n.id)"
    " FROM snapshots n WHERE n.survey_id = r.survey_id AND n.survey_version = r.survey_version)"
    " FROM responses r WHERE r.key_hash = %s",
}


def keyed_response(probe: Engine, key_hash: str) -> KeyedResponse | None:
    """The response whose results key has this hash, if any, and its survey's newest snapshot id,
    in one round trip on the probe pool: no session, no BEGIN and ROLLBACK around it, no pre-ping
    (see storage.make_probe). Read outside any transaction, so both are as of now."""
    row = storage.probe_row(probe, _KEYED_SQL[probe.dialect.paramstyle], (key_hash,))
    return KeyedResponse(row[0], row[1], row[2], row[3], bool(row[4]), row[5]) if row else None


# Every response's answers, for a full rebuild. Plain SQL with bound parameters on the driver's
# own cursor: building a SQLAlchemy row per response costs as much as counting it.
ALL_ANSWERS_SQL = {
    "sqlite": "SELECT id, answers FROM responses WHERE survey_id = :survey AND survey_version = :version",
    "postgresql": "SELECT id, answers FROM responses WHERE survey_id = %(survey)s AND survey_version = %(version)s",
}


def iter_answers(db: Session, survey_id: str, version: int) -> Iterator[tuple[list[str], list[str]]]:
    """(ids, answers JSON) of every response, in chunks, streamed so a million rows fit in memory.

    The ids feed the digest of the set counted (pipeline/perturbation.set_digest), never a page.
    """
    connection = db.connection()
    dialect = connection.dialect.name
    raw = connection.connection.dbapi_connection
    # PostgreSQL: a named (server-side) cursor, so rows arrive in chunks, not all at once.
    cursor = raw.cursor(name="pulse_all_answers") if dialect == "postgresql" else raw.cursor()
    try:
        cursor.execute(ALL_ANSWERS_SQL[dialect], {"survey": survey_id, "version": version})
        while chunk := cursor.fetchmany(FETCH_CHUNK):
            ids, answers = zip(*chunk)
            yield list(ids), list(answers)
    finally:
        cursor.close()


def pending_rows(db: Session, survey_id: str, version: int) -> list[tuple[str, str]]:
    """(id, answers JSON) of the responses no snapshot counts yet."""
    query = select(Response.id, Response.answers).filter_by(survey_id=survey_id, survey_version=version).where(PENDING)
    return [(row.id, row.answers) for row in db.execute(query)]


def mark_counted(db: Session, survey_id: str, version: int, ids: list[str] | None = None) -> None:
    """Flag the rows the new snapshot counts: these ids, or every row after a full rebuild."""
    if ids is None:
        db.execute(
            update(Response)
            .filter_by(survey_id=survey_id, survey_version=version)
            .where(PENDING)
            .values(in_snapshot=True)
        )
        return
    # By primary key alone, so the database looks up each id instead of scanning the survey.
    for start in range(0, len(ids), 500):
        db.execute(update(Response).where(Response.id.in_(ids[start : start + 500])).values(in_snapshot=True))


def add_invites(db: Session, survey_id: str, code_hashes: list[str]) -> None:
    db.add_all(InviteCode(code_hash=h, survey_id=survey_id) for h in code_hashes)


def burn_invite(db: Session, survey_id: str, code_hash: str) -> bool:
    """Use up an invite code; False if it is unknown or already used.

    On SQLite the deleted row's bytes are overwritten with zeros (see zeroing_deletes), so the
    hash of a used code does not linger in the file's free space; after the commit,
    checkpoint_wal empties the WAL that still pairs this delete with the response's insert.
    """
    with storage.zeroing_deletes(db):
        result = db.execute(
            InviteCode.__table__.delete().where(InviteCode.code_hash == code_hash, InviteCode.survey_id == survey_id)
        )
    return result.rowcount == 1


# PostgreSQL: every row a snapshot counts gets a new row version (UPDATE). Visited in id order
# (random), the new versions are written in random order, so their ctid (place in the table)
# says nothing about arrival; the planner would otherwise visit them in table order, which is
# arrival order. All of them carry the one xmin of the flagging transaction.
_FLAG_PENDING_BY_ID_SQL = (
    "UPDATE responses SET in_snapshot = true WHERE id = ANY(ARRAY("
    "SELECT id FROM responses WHERE survey_id = %(survey)s AND survey_version = %(version)s AND NOT in_snapshot))"
)


_FLAG_IDS_BY_ID_SQL = "UPDATE responses SET in_snapshot = true WHERE id = ANY(%(ids)s)"


_PLANNER_SCANS_NOW_SQL = "SELECT current_setting('enable_seqscan'), current_setting('enable_bitmapscan')"


# For this transaction only (set_config's third argument).
_PLANNER_SCANS_SQL = (
    "SELECT set_config('enable_seqscan', %(seq)s, true), set_config('enable_bitmapscan', %(bitmap)s, true)"
)


FLAG_CHUNK = 10_000


def mark_counted_in_id_order(db: Session, survey_id: str, version: int, ids: list[str] | None = None) -> None:
    """mark_counted, visiting the rows in id order on PostgreSQL (tests/test_storage_order.py).

    Only an index scan of the primary key visits rows in id order, so sequential and bitmap
    scans are turned off for these statements (in this transaction only, and then back).
    SQLite: plain mark_counted (the table is stored by id, so rewritten rows stay in id order).
    """
    connection = db.connection()
    if connection.dialect.name != "postgresql":
        mark_counted(db, survey_id, version, ids)
        return
    previous = connection.exec_driver_sql(_PLANNER_SCANS_NOW_SQL).one()
    connection.exec_driver_sql(_PLANNER_SCANS_SQL, {"seq": "off", "bitmap": "off"})
    if ids is None:
        connection.exec_driver_sql(_FLAG_PENDING_BY_ID_SQL, {"survey": survey_id, "version": version})
    else:
        ordered = sorted(ids)
        for start in range(0, len(ordered), FLAG_CHUNK):
            connection.exec_driver_sql(_FLAG_IDS_BY_ID_SQL, {"ids": ordered[start : start + FLAG_CHUNK]})
    # Back for the rest of the transaction (a failure above rolls it back, and the settings with it).
    connection.exec_driver_sql(_PLANNER_SCANS_SQL, {"seq": previous[0], "bitmap": previous[1]})
