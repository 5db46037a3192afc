"""Benchmark snapshots: built from the database by the pure pipeline, stored, and served.

A rebuild adds only the responses no snapshot counts yet to the previous snapshot's tally,
so its cost follows the new responses. Published numbers come only from a snapshot, rebuilt
after every PULSE_SNAPSHOT_EVERY new responses, so one response cannot be read off by
differencing. Pages read the stored JSON through a per-worker cache checked by snapshot id.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from flask import current_app
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from . import benchmark, storage
from .questions import Survey

log = logging.getLogger(__name__)

# Any fixed 64-bit number: the PostgreSQL advisory lock that lets one rebuild run at a time.
REBUILD_LOCK_ID = 0x50554C5345


def rules_from_config(config: Mapping[str, Any]) -> benchmark.Disclosure:
    """The disclosure rules configured by PULSE_* settings."""
    k = int(config["PULSE_SUPPRESSION_K"])
    return benchmark.Disclosure(
        release_threshold=int(config["PULSE_RELEASE_THRESHOLD"]),
        k=k,
        segment_min=max(int(config["PULSE_SEGMENT_MIN"]), k),
    )


def rebuild(engine: Engine, survey: Survey, rules: benchmark.Disclosure, *, full: bool = False,
            progress: Callable[[int], None] | None = None) -> int | None:
    """Build and store a new snapshot; return its response count, or None if another build runs.

    A failure leaves the previous snapshot and every flag as they were.
    """
    postgres = engine.dialect.name == "postgresql"
    # Repeatable read: the rows summed and the rows flagged are exactly the same set.
    bind = engine.execution_options(isolation_level="REPEATABLE READ") if postgres else engine
    with storage.writer(bind) as db:
        if postgres and not db.scalar(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": REBUILD_LOCK_ID}):
            return None
        previous = storage.latest_snapshot(db, survey.id, survey.version)
        full = full or previous is None
        total = benchmark.Tally.from_json(json.loads(previous.tally)) if not full else None
        for chunk in storage.iter_answers(db, survey.id, survey.version, pending_only=not full):
            part = benchmark.tally(survey, chunk)
            total = part if total is None else total + part
            if progress:
                progress(len(chunk))
        if total is None:
            total = benchmark.tally(survey, [])
        _, released = storage.read_survey_state(db, survey.id, survey.version)
        published = benchmark.publish(survey, total, rules, released)
        storage.save_snapshot(db, survey.id, survey.version, total.n,
                              json.dumps(total.to_json(), separators=(",", ":")),
                              json.dumps(published, separators=(",", ":")))
        storage.mark_counted(db, survey.id, survey.version, full=full)
        return total.n


def republish(engine: Engine, survey: Survey, rules: benchmark.Disclosure) -> None:
    """Rebuild after a change of release state, so the stored JSON says so."""
    rebuild(engine, survey, rules)


def rebuild_if_due(survey: Survey) -> None:
    """Rebuild when enough new responses have arrived; log, never raise, on failure."""
    config = current_app.config
    engine = storage.engine()
    try:
        with storage.writer(engine) as db:
            pending = storage.count_responses(db, survey.id, survey.version, pending_only=True)
        if pending >= int(config["PULSE_SNAPSHOT_EVERY"]):
            rebuild(engine, survey, rules_from_config(config))
    except DBAPIError as exc:
        # The response is already committed; the next submission tries again.
        log.error("snapshot rebuild failed, previous snapshot kept: %s", exc.__class__.__name__)


@dataclass(frozen=True)
class Current:
    """The latest snapshot as served: its id, the published dict and its tally."""

    snapshot_id: int | None
    published: dict
    tally: benchmark.Tally
    body: bytes


_cache: dict[tuple[str, int, str], Current] = {}
_cache_lock = threading.Lock()


def current(survey: Survey) -> Current:
    """The latest snapshot, from this worker's cache when its id has not changed."""
    db = storage.reader()
    snapshot_id = storage.latest_snapshot_id(db, survey.id, survey.version)
    cache_key = (survey.id, survey.version, current_app.config["DATABASE_URL"])
    cached = _cache.get(cache_key)
    if cached is not None and cached.snapshot_id == snapshot_id:
        return cached
    if snapshot_id is None:
        rules = rules_from_config(current_app.config)
        empty = benchmark.tally(survey, [])
        _, released = storage.read_survey_state(db, survey.id, survey.version)
        published = benchmark.publish(survey, empty, rules, released)
        fresh = Current(None, published, empty, json.dumps(published).encode())
    else:
        snapshot = storage.latest_snapshot(db, survey.id, survey.version)
        published = json.loads(snapshot.published)
        fresh = Current(snapshot.id, published, benchmark.Tally.from_json(json.loads(snapshot.tally)),
                        snapshot.published.encode())
    with _cache_lock:
        _cache[cache_key] = fresh
    return fresh
