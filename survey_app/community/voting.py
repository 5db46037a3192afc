"""Topics, rounds and approval voting: what may happen, shared by /topics, the API, /admin and the CLI.

A ballot is stored under the results key's hash in the "ballot" HMAC domain, never the
"response" one, and a proposal under no hash at all, so neither can be joined to a response.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .. import api_models, program_queries, storage
from ..domain_errors import Conflict, Invalid, NotFound
from . import queries as cs

# What a topic's text and a ballot may hold is the API's models' (one definition, for the form too).
TITLE_MAX, DESCRIPTION_MAX, BALLOT_MAX_IDS = api_models.TITLE_MAX, api_models.DESCRIPTION_MAX, api_models.BALLOT_MAX_IDS
ACTIONS = ("approve", "reject", "merge")


@dataclass
class TopicsView:
    """What /topics and GET /api/v1/topics show."""

    round: dict[str, Any] | None
    topics: list[dict[str, Any]]
    ballots: int | None = None
    mine: set[str] | None = None
    waiting: list[dict[str, Any]] = field(default_factory=list)
    # A closed round's choice ({"id", "title", "by"}), or the tied topics waiting for the organisers.
    chosen: dict[str, Any] | None = None
    tie: list[dict[str, Any]] = field(default_factory=list)
    # When the open round closes by itself (Unix seconds UTC), if the organisers scheduled it.
    closes_at: int | None = None


def propose(title: Any, description: Any) -> str:
    """Store a proposal for moderation; its new id. Raises Invalid naming the fields."""
    try:
        proposal = api_models.Proposal.parse({"title": title, "description": description})
    except api_models.Refused as exc:
        raise Invalid("proposal", exc.errors, message=exc.message) from None
    title, description = proposal.title, proposal.description
    with storage.writer() as db:
        return cs.add_topic(db, title, description, storage.iso_week()).id


def moderate(topic_id: str, action: str, into: str | None = None) -> str:
    """Approve, reject or merge a topic; a sentence saying what changed. Raises a DomainError."""
    if action not in ACTIONS:
        raise Invalid("moderation_action", action=action, actions=ACTIONS)
    with storage.writer() as db:
        cs.lock_rounds(db)
        round_ = cs.open_round(db, lock=True)
        topic = cs.get_topic(db, topic_id)
        if topic is None:
            raise NotFound("topic_to_moderate", topic=topic_id)
        if topic.status == "merged":
            raise Conflict("topic_merged", topic=topic_id, into=topic.merged_into)
        if topic.status == "chosen":
            # A round's choice is settled: the survey that answers it may already be linked to it.
            raise Conflict("topic_chosen", topic=topic_id, title=topic.title)
        target = None
        if action == "merge":
            target = cs.get_topic(db, into or "")
            if target is None or target.id == topic.id or target.status not in ("pending", "approved"):
                raise Invalid("merge_target", into=into)
        status = {"approve": "approved", "reject": "rejected", "merge": "merged"}[action]
        cs.set_topic_status(db, topic, status, target.id if target else None)
        if round_ is not None and status != "approved" and topic.id in cs.round_topic_ids(db, round_.id):
            # A merged topic's approvals count for the topic it joined, if that one is on the ballot.
            transfer = target.id if target and target.id in cs.round_topic_ids(db, round_.id) else None
            cs.remove_from_round(db, round_.id, topic.id, transfer_to=transfer)
        title = topic.title
    if target is not None:
        return f"Topic {topic_id} ({title}) merged into {target.id} ({target.title})."
    return f"Topic {topic_id} ({title}) {status}."


def open_round(closes_at: int | None = None) -> str:
    """Open a voting round over every approved topic (closing by itself at `closes_at`, Unix
    seconds UTC, when given: schedules.py checks it). Raises Conflict."""
    with storage.writer() as db:
        cs.lock_rounds(db)
        if cs.open_round(db, lock=True) is not None:
            raise Conflict("round_already_open")
        latest = cs.latest_round(db)
        # The tied topics are still approved: a new round would put them on a second ballot
        # while the organisers still owe the first one its choice.
        if latest is not None and _choosable(_tie(db, latest)):
            raise Conflict("tie_waiting", round=latest.id)
        approved = [t.id for t in cs.topics_with_status(db, "approved")]
        if not approved:
            raise Conflict("nothing_approved")
        round_ = cs.create_round(db, approved, storage.iso_week())
        if closes_at is not None:
            cs.set_round_closes(db, round_, closes_at)
        program_queries.record_event(db, "round_opened", round_id=round_.id)
        return f"Round {round_.id} is open with {len(approved)} topic{'s' if len(approved) != 1 else ''}."


def named(topics) -> str:
    """'"A" (id), "B" (id) and "C" (id)': topics as messages name them."""
    names = [f'"{t.title}" ({t.id})' for t in topics]
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else "no topic"


def _leaders(db, round_) -> tuple[list, int]:
    """The topics of a round with the most approvals (by title), and that number."""
    votes = cs.tally(db, round_.id)
    top = max(votes.values(), default=0)
    return sorted((t for t in cs.round_topics(db, round_.id) if votes[t.id] == top), key=lambda t: t.title), top


def _tie(db, round_) -> list:
    """The tied topics of a closed round that has no choice yet, for the organisers; else [].

    A tie is several topics with the most approvals, or none with any: nobody's approval
    is no mandate, so even a lone topic nobody approved is the organisers' to choose.
    """
    if round_.status != "closed" or round_.chosen_topic_id is not None:
        return []
    leaders, top = _leaders(db, round_)
    return [] if len(leaders) == 1 and top > 0 else leaders


def _choosable(tie: list) -> list:
    """Tied topics still approved: one rejected or merged since the close is no longer on offer."""
    return [t for t in tie if t.status == "approved"]


@dataclass(frozen=True)
class TopicRef:
    id: str
    title: str


@dataclass(frozen=True)
class RoundClosed:
    """What closing a round did: the topics with the most approvals (by title) and that number,
    the ballots cast, and the tally, most approved first ((id, title, approvals) per topic)."""

    round: int
    ballots: int
    leaders: list[TopicRef]
    top: int
    tally: list[tuple[str, str, int]]

    @property
    def chosen(self) -> bool:
        """Whether the community chose: one topic with the most approvals, and some approvals."""
        return len(self.leaders) == 1 and self.top > 0


def close_round() -> RoundClosed:
    """Close the open round and choose its topic: the one with the most approvals. On a tie (or
    a lone topic nobody approved) nothing is chosen; the organisers choose. Raises Conflict.
    """
    with storage.writer() as db:
        cs.lock_rounds(db)  # serialised with moderation, so a topic is not moderated as it is chosen
        round_ = cs.open_round(db, lock=True)
        if round_ is None:
            raise Conflict("no_round_to_close")
        return _close(db, round_)


def close_scheduled(now: int) -> RoundClosed | None:
    """Close the open round because its scheduled close is due, unless another worker or host
    already did (None then): the claim and the close are one transaction, so exactly one does,
    with the same tally and choice as close_round."""
    with storage.writer() as db:
        cs.lock_rounds(db)
        round_ = cs.open_round(db, lock=True)
        if round_ is None or not cs.take_round_close(db, round_.id, now):
            return None
        return _close(db, round_)


def _close(db, round_) -> RoundClosed:
    cs.close_round(db, round_)
    votes = cs.tally(db, round_.id)
    titles = {t.id: t.title for t in cs.round_topics(db, round_.id)}
    ballots = cs.count_ballots(db, round_.id)
    leaders, top = _leaders(db, round_)
    closed = RoundClosed(
        round_.id,
        ballots,
        [TopicRef(t.id, t.title) for t in leaders],
        top,
        [(t, titles[t], n) for t, n in sorted(votes.items(), key=lambda i: (-i[1], titles[i[0]]))],
    )
    if closed.chosen:
        cs.set_choice(db, round_, leaders[0], "votes")
        program_queries.record_event(db, "topic_chosen", round_id=round_.id, topic_id=leaders[0].id)
    return closed


def choose(topic_id: Any) -> str:
    """The organisers settle a tie: topic_id, tied for the most approvals in the latest round
    (closed, with no choice yet), becomes its choice. A sentence saying so; a DomainError
    otherwise, and then nothing changes.
    """
    if not isinstance(topic_id, str) or not topic_id.strip():
        raise Invalid("choice_required")
    topic_id = topic_id.strip()
    with storage.writer() as db:
        cs.lock_rounds(db)  # one choice at a time, and none while a round opens or a topic is moderated
        round_ = cs.latest_round(db)
        if round_ is None:
            raise Conflict("no_closed_round")
        if round_.status == "open":
            raise Conflict("round_still_open", round=round_.id)
        if round_.chosen_topic_id is not None:
            chosen = cs.get_topic(db, round_.chosen_topic_id)
            raise Conflict(
                "round_already_chose",
                round=round_.id,
                topic=TopicRef(chosen.id, chosen.title),
                chosen_by=round_.chosen_by,
            )
        topic = cs.get_topic(db, topic_id)
        if topic is None:
            raise NotFound("topic_to_choose", topic=topic_id[:40])
        tie = _tie(db, round_)
        if topic not in tie:
            raise Invalid("topic_not_tied", topic=topic.id, round=round_.id, offered=[t.id for t in _choosable(tie)])
        if topic not in _choosable(tie):
            raise Conflict("tied_topic_gone", topic=topic.id, title=topic.title, status=topic.status, round=round_.id)
        cs.set_choice(db, round_, topic, "organisers")
        program_queries.record_event(db, "topic_chosen", round_id=round_.id, topic_id=topic.id)
        return f"Round {round_.id}: the organisers chose {named([topic])} from the tie. It leaves later ballots."


def _choice(round_, topic) -> dict[str, Any]:
    return {"round": round_.id, "topic": {"id": topic.id, "title": topic.title}, "chosen_by": round_.chosen_by}


def chosen_topics() -> list[dict[str, Any]]:
    """Every closed round that chose a topic, oldest first:
    {"round": id, "topic": {"id", "title"}, "chosen_by": "votes" | "organisers"}."""
    return [_choice(r, t) for r, t in cs.chosen_rounds(storage.reader())]


def round_that_chose(topic_id: str) -> dict[str, Any] | None:
    """The round that chose this topic, as chosen_topics() gives it; None if none did."""
    if not isinstance(topic_id, str):
        return None
    found = cs.chosen_rounds(storage.reader(), topic_id)
    return _choice(*found[0]) if found else None


def check_ballot(approve: Any) -> list[str]:
    """The topic ids of a ballot body, each once; Invalid when it is not a list of ids."""
    try:
        ballot = api_models.Ballot.parse({"approve": approve})
    except api_models.Refused as exc:
        raise Invalid("ballot", exc.errors, message=exc.message) from None
    return list(dict.fromkeys(ballot.approve))


def cast_ballot(ballot_hash: str, approve: Any) -> tuple[int, list[str]]:
    """Store this key's ballot in the open round, replacing its earlier one; (round id, ids)."""
    ids = check_ballot(approve)
    with storage.writer() as db:
        # Locking the round serialises ballots with the close, so none lands after it.
        round_ = cs.open_round(db, lock=True)
        if round_ is None:
            raise Conflict("no_voting_round")
        outside = [i for i in ids if i not in cs.round_topic_ids(db, round_.id)]
        if outside:
            raise Invalid("not_on_ballot", topics=[i[:40] for i in outside[:5]])
        cs.replace_ballot(db, round_.id, ballot_hash, ids)
        return round_.id, sorted(ids)


def _public(topic, votes: int | None) -> dict[str, Any]:
    return {"id": topic.id, "title": topic.title, "description": topic.description, "votes": votes}


def topics_view(ballot_hash: str | None = None) -> TopicsView:
    """The latest round with its topics (random order while open, tally once closed)."""
    db = storage.reader()
    round_ = cs.latest_round(db)
    waiting = [_public(t, None) for t in cs.topics_with_status(db, "approved")]
    shuffle = secrets.SystemRandom().shuffle
    if round_ is None:
        shuffle(waiting)
        return TopicsView(round=None, topics=waiting, waiting=waiting)
    on_ballot = cs.round_topics(db, round_.id)
    info = {"id": round_.id, "status": round_.status, "chosen": round_.chosen_topic_id}
    if round_.status == "open":
        topics = [_public(t, None) for t in on_ballot]
        shuffle(topics)
        mine = cs.ballot_approvals(db, round_.id, ballot_hash) if ballot_hash else None
        listed = {t.id for t in on_ballot}
        return TopicsView(
            round=info,
            topics=topics,
            mine=mine,
            waiting=[t for t in waiting if t["id"] not in listed],
            closes_at=round_.closes_at,
        )
    votes = cs.tally(db, round_.id)
    topics = sorted((_public(t, votes.get(t.id, 0)) for t in on_ballot), key=lambda t: (-t["votes"], t["title"]))
    return TopicsView(round=info, topics=topics, ballots=cs.count_ballots(db, round_.id), **_outcome(db, round_))


def _outcome(db, round_) -> dict[str, Any]:
    """A closed round's choice ({"id", "title", "by"}) and the tied topics still on offer
    ({"id", "title", "votes"}: with 0 votes, nobody approved them)."""
    topic = cs.get_topic(db, round_.chosen_topic_id) if round_.chosen_topic_id else None
    chosen = {"id": topic.id, "title": topic.title, "by": round_.chosen_by} if topic else None
    votes = cs.tally(db, round_.id)
    tie = [{"id": t.id, "title": t.title, "votes": votes[t.id]} for t in _choosable(_tie(db, round_))]
    return {"chosen": chosen, "tie": tie}


def linkable_topics() -> list:
    """Topics a survey may answer, for the organisers' link: chosen first, then approved."""
    db = storage.reader()
    return cs.topics_with_status(db, "chosen") + cs.topics_with_status(db, "approved")


def moderation_queue() -> dict[str, list]:
    """Topics by state for the admin page and `pulse topics list`."""
    db = storage.reader()
    return {
        status: cs.topics_with_status(db, status) for status in ("pending", "approved", "rejected", "merged", "chosen")
    }


def round_summary() -> dict[str, Any] | None:
    """The latest round for organisers: id, status, ballots cast (and once closed the tally, its
    choice and any tie waiting for them, as in TopicsView)."""
    db = storage.reader()
    round_ = cs.latest_round(db)
    if round_ is None:
        return None
    closed = round_.status == "closed"
    topics = cs.round_topics(db, round_.id)
    votes = cs.tally(db, round_.id) if closed else {}
    rows = sorted(
        ({"id": t.id, "title": t.title, "votes": votes.get(t.id) if closed else None} for t in topics),
        key=lambda r: (-(r["votes"] or 0), r["title"]),
    )
    return {
        "id": round_.id,
        "status": round_.status,
        "week": round_.week,
        "closes_at": round_.closes_at,
        "ballots": cs.count_ballots(db, round_.id),
        "topics": rows,
        **_outcome(db, round_),
    }
