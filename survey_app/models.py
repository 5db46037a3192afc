"""Database tables. Data only; every query lives in a *_queries.py module, run in storage.py's sessions.

Anonymity rule for every table here: no IP, user agent, referrer, session id or time finer
than the ISO week; ids of response rows are random (UUID4) so they reveal no order.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def new_uuid() -> str:
    """A random id that reveals nothing about when or in which order a row came."""
    return str(uuid.uuid4())


class Response(Base):
    """One clinic's answers: exactly the columns SECURITY.md ("What is stored") lists, nothing else."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    survey_id: Mapped[str] = mapped_column(String(100), index=True)
    survey_version: Mapped[int] = mapped_column(Integer)
    # Validated answers as compact JSON text: {"question": "option" | ["option", ...]}.
    answers: Mapped[str] = mapped_column(Text)
    # ISO week of arrival, e.g. "2026-W48": coarse on purpose, so rows cannot be matched to logs.
    week: Mapped[str] = mapped_column(String(8))
    # HMAC of the results key (domain "response"); the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Whether the latest snapshot counts this row (set with the snapshot, in one transaction).
    in_snapshot: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        # Only rows no snapshot counts yet: a handful, so finding them never scans the survey.
        Index(
            "ix_responses_pending",
            "survey_id",
            "survey_version",
            sqlite_where=text("in_snapshot = 0"),
            postgresql_where=text("NOT in_snapshot"),
        ),
        # SQLite: no hidden rowid (which would count up in arrival order); the table is stored
        # by its random id, so neither a column nor the file's row order reveals arrival
        # (migration 0005; tests/test_storage_order.py). Alembic cannot reflect this option:
        # a later batch migration of this table must pass table_kwargs={"sqlite_with_rowid": False}.
        {"sqlite_with_rowid": False},
    )


class Snapshot(Base):
    """A built benchmark: the count state and the published JSON that pages serve."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(100), index=True)
    survey_version: Mapped[int] = mapped_column(Integer)
    responses: Mapped[int] = mapped_column(Integer)
    tally: Mapped[str] = mapped_column(Text)
    published: Mapped[str] = mapped_column(Text)
    week: Mapped[str] = mapped_column(String(8))
    # The version of the published body's shape (publishing.SHAPE) it was stored with.
    shape: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class StoredSurvey(Base):
    """A survey definition as added by `pulse survey add`: never changed once stored.

    A changed survey is a new version (a new row). The link to the topic it answers is the
    organisers' to set later: topic ids differ between databases, so it is not in the file.
    """

    __tablename__ = "surveys"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    # The YAML text as added; parsed again (and so validated again) when served.
    definition: Mapped[str] = mapped_column(Text)
    topic_id: Mapped[str | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"), nullable=True)
    week: Mapped[str] = mapped_column(String(8))
    # The organisers' schedule (schedules.py), in Unix seconds UTC: when it opens or closes by
    # itself. Set by organisers, never by a clinic, and emptied by the worker that acts on it
    # (a conditional update, so exactly one does); None: nothing scheduled.
    opens_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closes_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class SurveyState(Base):
    """What the organisers decided for one survey version: open or closed, released or not.

    A survey that was never opened has no row. At most one row is current: the survey most
    recently opened, which the landing page and /survey serve.
    """

    __tablename__ = "survey_states"
    __table_args__ = (UniqueConstraint("survey_id", "survey_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(100))
    survey_version: Mapped[int] = mapped_column(Integer)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    released: Mapped[bool] = mapped_column(Boolean, default=False)
    current: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # ISO weeks it was first opened and last closed (None while it has never been closed).
    opened_week: Mapped[str | None] = mapped_column(String(8), nullable=True)
    closed_week: Mapped[str | None] = mapped_column(String(8), nullable=True)
    # The final snapshot its last close still owes (program.py): "first" after its first close
    # (over every response, no minimum of new ones), "again" after a later close (the usual growth
    # rule); None once it is built or was not needed. Set in the close's own transaction and
    # emptied in the transaction that stores the snapshot, so a build that fails leaves it owed
    # and a worker builds it later (schedules.py), exactly once.
    final_snapshot_owed: Mapped[str | None] = mapped_column(String(8), nullable=True)


class DatabaseFlag(Base):
    """One row for the whole database: does it hold demo data? Kept apart from responses."""

    __tablename__ = "database_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)


class InviteCode(Base):
    """An unused single-use invite code, stored as a keyed hash; deleted when used."""

    __tablename__ = "invite_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(100))


class ProgramEvent(Base):
    """Something the organisers did in the program, for the Atom feed at /feed.atom.

    Kinds: survey_opened, results_released (survey_id, survey_version), round_opened
    (round_id), topic_chosen (round_id, topic_id). The day is the one exception to "no time
    finer than the ISO week": it dates an organiser's action (or a schedule they set), never a
    clinic's, and no row here refers to a response, a ballot or a key. Snapshots are not
    events: one follows a response, so its day could be matched to a clinic's visit. So
    results_released, recorded once when results become public, keeps the organisers' day when
    their release made them public, and only the Monday of the ISO week when a snapshot did
    (released before the threshold, public when the threshold was reached).
    """

    __tablename__ = "program_events"
    __table_args__ = (
        # One "results released" per survey version, however many workers store its first
        # public snapshot at once (program_queries.record_results_released).
        Index(
            "uq_program_events_results_released",
            "survey_id",
            "survey_version",
            unique=True,
            sqlite_where=text("kind = 'results_released'"),
            postgresql_where=text("kind = 'results_released'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The entry's Atom id (urn:uuid:...): the same in every copy of the database, like the events.
    uid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid)
    kind: Mapped[str] = mapped_column(String(20))
    day: Mapped[dt.date] = mapped_column(Date)
    survey_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    survey_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    round_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    topic_id: Mapped[str | None] = mapped_column(String(16), nullable=True)


# ------------------------------------------------------------------ community and organisers


def new_topic_id() -> str:
    """A short random id for a topic: opaque, typeable, and revealing no order."""
    return secrets.token_hex(8)


class Admin(Base):
    """An organiser account, created only by `pulse create-admin`; no default account exists."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # Werkzeug scrypt hash ("scrypt:..."), never the password.
    password_hash: Mapped[str] = mapped_column(String(255))
    # Raised at every login and logout: a signed cookie carrying an older number is refused,
    # so logging out really ends the session even if someone kept a copy of the cookie.
    session_version: Mapped[int] = mapped_column(Integer, default=0)
    # TOTP (RFC 6238) secret in base32, set by `pulse admin-totp`; None: password only.
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The time step of the last code accepted: a code, once used, never logs in again.
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Topic(Base):
    """A proposed topic for the next survey. It keeps no trace of who proposed it."""

    __tablename__ = "topics"

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_topic_id)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    # pending | approved | rejected | merged | chosen (a round chose it: it leaves later ballots)
    status: Mapped[str] = mapped_column(String(10), index=True, default="pending")
    merged_into: Mapped[str | None] = mapped_column(ForeignKey("topics.id"), nullable=True)
    # ISO week it was proposed: enough to sort the moderation queue, too coarse to match logs.
    week: Mapped[str] = mapped_column(String(8))


class Round(Base):
    """A voting round over the topics approved when it opened."""

    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # open | closed
    status: Mapped[str] = mapped_column(String(10), index=True, default="open")
    week: Mapped[str] = mapped_column(String(8))
    # Set when the round closes: the topic with the most approvals, or on a tie the one the
    # organisers picked ("votes" | "organisers"); None while open or while a tie waits.
    chosen_topic_id: Mapped[str | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"), nullable=True)
    chosen_by: Mapped[str | None] = mapped_column(String(10), nullable=True)
    # When it closes by itself (Unix seconds UTC, set by the organisers; schedules.py), or None.
    closes_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RoundTopic(Base):
    """A topic on a round's ballot."""

    __tablename__ = "round_topics"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), primary_key=True)
    topic_id: Mapped[str] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True)


class Ballot(Base):
    """One results key's ballot in one round, replaced by a later one while the round is open.

    ballot_hash is the key's HMAC in the "ballot" domain: it cannot be joined with the
    "response" hash kept beside the answers. No time at all is kept with a ballot.
    """

    __tablename__ = "ballots"
    __table_args__ = (UniqueConstraint("round_id", "ballot_hash"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    ballot_hash: Mapped[str] = mapped_column(String(64))


class BallotApproval(Base):
    """One topic a ballot approves."""

    __tablename__ = "ballot_approvals"

    ballot_id: Mapped[str] = mapped_column(ForeignKey("ballots.id", ondelete="CASCADE"), primary_key=True)
    topic_id: Mapped[str] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True, index=True)
