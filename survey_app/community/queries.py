"""Every query on the community tables: topics, rounds and ballots.

The same rules as storage.py, whose sessions these run in: functions take the session first,
and the caller's `storage.writer()` transaction commits what they change.
"""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from ..models import Ballot, BallotApproval, Round, RoundTopic, Topic

# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises opening rounds and moderation.
ROUNDS_LOCK_ID = 0x50554C5352

# ------------------------------------------------------------------ topics


def add_topic(db: Session, title: str, description: str, week: str) -> Topic:
    """Store a new pending topic; no trace of who proposed it."""
    topic = Topic(title=title, description=description, status="pending", week=week)
    db.add(topic)
    db.flush()
    return topic


def get_topic(db: Session, topic_id: str) -> Topic | None:
    # A string no topic id can be (too long, or with a NUL PostgreSQL refuses) finds nothing,
    # rather than an error from the database.
    if not topic_id or len(topic_id) > 16 or not topic_id.isprintable():
        return None
    return db.get(Topic, topic_id)


def topic_titles(db: Session) -> dict[str, str]:
    """Every topic's title by id (surveys name the topic they answer)."""
    return dict(db.execute(select(Topic.id, Topic.title)).all())


def topics_with_status(db: Session, *statuses: str) -> list[Topic]:
    """Topics in these states, oldest week first, then by title (never by insertion order)."""
    query = select(Topic).where(Topic.status.in_(statuses)).order_by(Topic.week, Topic.title, Topic.id)
    return list(db.scalars(query))


def set_topic_status(db: Session, topic: Topic, status: str, merged_into: str | None = None) -> None:
    topic.status = status
    topic.merged_into = merged_into
    db.flush()


# ------------------------------------------------------------------ rounds


def lock_rounds(db: Session) -> None:
    """Serialise round changes and moderation until the transaction ends.

    Row locks cannot guard a round that does not exist yet; SQLite needs nothing here, its
    write transactions (BEGIN IMMEDIATE) already run one at a time.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ROUNDS_LOCK_ID})


def latest_round(db: Session) -> Round | None:
    return db.scalars(select(Round).order_by(Round.id.desc()).limit(1)).first()


def open_round(db: Session, lock: bool = False) -> Round | None:
    """The open round, if any; locked against a concurrent close or ballot when asked."""
    query = select(Round).filter_by(status="open")
    if lock:
        query = query.with_for_update()
    return db.scalars(query).first()


def create_round(db: Session, topic_ids: Iterable[str], week: str) -> Round:
    """Open a round over these topics."""
    round_ = Round(status="open", week=week)
    db.add(round_)
    db.flush()
    db.add_all(RoundTopic(round_id=round_.id, topic_id=t) for t in topic_ids)
    db.flush()
    return round_


def close_round(db: Session, round_: Round) -> None:
    round_.status = "closed"
    db.flush()


def set_choice(db: Session, round_: Round, topic: Topic, chosen_by: str) -> None:
    """Record the topic a closed round chose; as "chosen" it leaves later ballots."""
    round_.chosen_topic_id = topic.id
    round_.chosen_by = chosen_by
    topic.status = "chosen"
    db.flush()


def chosen_rounds(db: Session, topic_id: str | None = None) -> list[tuple[Round, Topic]]:
    """Closed rounds that chose a topic, with it, oldest round first (only topic_id's, if given)."""
    query = (
        select(Round, Topic)
        .join(Topic, Topic.id == Round.chosen_topic_id)
        .where(Round.status == "closed")
        .order_by(Round.id)
    )
    if topic_id is not None:
        query = query.where(Round.chosen_topic_id == topic_id)
    return [tuple(row) for row in db.execute(query)]


def round_topics(db: Session, round_id: int) -> list[Topic]:
    """The topics on a round's ballot."""
    query = (
        select(Topic)
        .join(RoundTopic, RoundTopic.topic_id == Topic.id)
        .where(RoundTopic.round_id == round_id)
        .order_by(Topic.id)
    )
    return list(db.scalars(query))


def round_topic_ids(db: Session, round_id: int) -> set[str]:
    return set(db.scalars(select(RoundTopic.topic_id).where(RoundTopic.round_id == round_id)))


def remove_from_round(db: Session, round_id: int, topic_id: str, transfer_to: str | None = None) -> None:
    """Take a topic off a round's ballot; its approvals move to transfer_to if that is on it too."""
    ballots_here = select(Ballot.id).where(Ballot.round_id == round_id)
    if transfer_to is not None:
        approving = set(
            db.scalars(
                select(BallotApproval.ballot_id).where(
                    BallotApproval.topic_id == topic_id, BallotApproval.ballot_id.in_(ballots_here)
                )
            )
        )
        already = set(
            db.scalars(
                select(BallotApproval.ballot_id).where(
                    BallotApproval.topic_id == transfer_to, BallotApproval.ballot_id.in_(approving)
                )
            )
        )
        db.add_all(BallotApproval(ballot_id=b, topic_id=transfer_to) for b in sorted(approving - already))
        db.flush()
    db.execute(
        delete(BallotApproval).where(BallotApproval.topic_id == topic_id, BallotApproval.ballot_id.in_(ballots_here))
    )
    db.execute(delete(RoundTopic).where(RoundTopic.round_id == round_id, RoundTopic.topic_id == topic_id))


# ------------------------------------------------------------------ ballots


def ballot_approvals(db: Session, round_id: int, ballot_hash: str) -> set[str] | None:
    """The topic ids this key's ballot approves in a round, or None if it has no ballot."""
    ballot = db.scalars(select(Ballot).filter_by(round_id=round_id, ballot_hash=ballot_hash)).one_or_none()
    if ballot is None:
        return None
    return set(db.scalars(select(BallotApproval.topic_id).filter_by(ballot_id=ballot.id)))


def replace_ballot(db: Session, round_id: int, ballot_hash: str, topic_ids: Iterable[str]) -> None:
    """Store this key's ballot, replacing its earlier one in the same round."""
    ballot = db.scalars(select(Ballot).filter_by(round_id=round_id, ballot_hash=ballot_hash)).one_or_none()
    if ballot is None:
        ballot = Ballot(round_id=round_id, ballot_hash=ballot_hash)
        db.add(ballot)
        db.flush()
    else:
        db.execute(delete(BallotApproval).where(BallotApproval.ballot_id == ballot.id))
    db.add_all(BallotApproval(ballot_id=ballot.id, topic_id=t) for t in sorted(set(topic_ids)))
    db.flush()


def count_ballots(db: Session, round_id: int) -> int:
    return db.scalar(select(func.count()).select_from(Ballot).where(Ballot.round_id == round_id)) or 0


def tally(db: Session, round_id: int) -> dict[str, int]:
    """Approvals per topic on the round's ballot (0 for a topic nobody approved)."""
    counts = dict(
        db.execute(
            select(BallotApproval.topic_id, func.count())
            .join(Ballot, Ballot.id == BallotApproval.ballot_id)
            .where(Ballot.round_id == round_id)
            .group_by(BallotApproval.topic_id)
        ).all()
    )
    return {t: int(counts.get(t, 0)) for t in round_topic_ids(db, round_id)}


# ------------------------------------------------------------------ a round's schedule


def set_round_closes(db: Session, round_: Round, closes_at: int | None) -> None:
    round_.closes_at = closes_at
    db.flush()


def round_close_due(db: Session, now: int) -> int | None:
    """The id of the open round whose scheduled close is at or before now, if any."""
    return db.scalar(select(Round.id).where(Round.status == "open", Round.closes_at <= now).limit(1))


def next_round_close(db: Session) -> int | None:
    """When the open round is scheduled to close, or None."""
    return db.scalar(select(func.min(Round.closes_at)).where(Round.status == "open"))


def take_round_close(db: Session, round_id: int, now: int) -> bool:
    """Empty the open round's scheduled close if it is due; whether this transaction did (the
    claim that lets exactly one worker close it, as program_queries.take_due does for surveys)."""
    result = db.execute(
        update(Round)
        .where(Round.id == round_id, Round.status == "open", Round.closes_at.is_not(None), Round.closes_at <= now)
        .values(closes_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
