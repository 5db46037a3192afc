"""The program's events as the Atom feed tells them: a survey opened, results released, a round
opened, a topic chosen. Each is dated by the day the organisers acted (program_queries.record_event)
and identified by a random uuid stored with it, so an entry keeps its id and date for ever.

No entry carries a count that changes between snapshots (no responses, no ballots): the feed
says what happened, and the pages say how many.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from . import program_queries, storage
from .community import queries as cs


@dataclass(frozen=True)
class FeedEntry:
    uid: str
    kind: str
    day: dt.date
    title: str
    summary: str
    # Where the entry links: ("results", survey_id, version), the survey's page for good (/survey
    # serves whichever survey is current), or ("topics",).
    target: tuple


def _entry(db, event, titles: dict[tuple[str, int], str]) -> FeedEntry | None:
    if event.kind in ("survey_opened", "results_released"):
        title = titles.get((event.survey_id, event.survey_version))
        if title is None:
            return None
        name = f"{title} (version {event.survey_version})"
        target = ("results", event.survey_id, event.survey_version)
        if event.kind == "survey_opened":
            return FeedEntry(
                event.uid,
                event.kind,
                event.day,
                f"Survey open: {name}",
                f"{name} is open for responses from ketamine-therapy clinics. Answering is anonymous.",
                target,
            )
        return FeedEntry(
            event.uid,
            event.kind,
            event.day,
            f"Results released: {name}",
            f"The results of {name} are public: shares with 95% intervals and the index.",
            target,
        )
    if event.kind == "round_opened":
        return FeedEntry(
            event.uid,
            event.kind,
            event.day,
            f"Voting round {event.round_id} is open",
            "Clinics that answered the current survey can vote on the topic of the next one.",
            ("topics",),
        )
    if event.kind == "topic_chosen":
        topic = cs.get_topic(db, event.topic_id) if event.topic_id else None
        if topic is None:
            return None
        return FeedEntry(
            event.uid,
            event.kind,
            event.day,
            f"Topic chosen in round {event.round_id}: {topic.title}",
            f"Round {event.round_id} chose \u201c{topic.title}\u201d: the next survey will ask about it.",
            ("topics",),
        )
    return None


def feed_entries(limit: int = 50) -> list[FeedEntry]:
    """The latest program events, newest first."""
    db = storage.reader()
    titles = {(s.id, s.version): s.title for s in program_queries.stored_surveys(db)}
    entries = (_entry(db, event, titles) for event in program_queries.program_events(db, limit))
    return [e for e in entries if e is not None]
