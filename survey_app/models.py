"""Database tables. Data only; every query lives in storage.py.

Anonymity rule for every table here: no IP, user agent, referrer, session id or time finer
than the ISO week; ids of response rows are random (UUID4) so they reveal no order.
"""
from __future__ import annotations

import uuid

from sqlalchemy import Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def new_uuid() -> str:
    """A random id that reveals nothing about when or in which order a row came."""
    return str(uuid.uuid4())


class Response(Base):
    """One clinic's answers: exactly the columns PRODUCT.md allows, nothing else."""

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
    in_snapshot: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


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


class SurveyState(Base):
    """What the organisers decided for one survey version: open or closed, released or not."""

    __tablename__ = "survey_states"
    __table_args__ = (UniqueConstraint("survey_id", "survey_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(100))
    survey_version: Mapped[int] = mapped_column(Integer)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    released: Mapped[bool] = mapped_column(Boolean, default=False)


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
