"""Benchmark snapshots: built from the database by the pure pipeline, stored, and served.

This module orchestrates: it reads responses through storage, counts and publishes them with
the pipeline, and stores the result. A rebuild adds only the responses no snapshot counts yet
to the previous snapshot's tally, so its cost follows the new responses. Published numbers
come only from a snapshot: the first once the release threshold is reached, each next one
once the new responses reach a share of the last one's N (PULSE_SNAPSHOT_GROWTH, at least
PULSE_SNAPSHOT_MIN_NEW), and every snapshot's noise is drawn from its own set of responses.
Releasing results publishes the latest snapshot again from the same counts: the same noise.
Pages read the stored JSON through the app's cache (state.py), checked by snapshot id or by
the PostgreSQL listener (snapshot_watch.py).
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import logging
import math
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping

from flask import Flask, current_app, g
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from . import program_queries, response_queries, snapshot_queries, state, storage
from .pipeline import publishing
from .pipeline.disclosure import Disclosure, default_ptable
from .pipeline.figures import Published, You
from .pipeline.perturbation import load_ptable
from .pipeline.tallies import Tally, tally, tally_chunks
from .questions import Survey

log = logging.getLogger(__name__)


def disclosure_rules_from_config(config: Mapping[str, Any]) -> Disclosure:
    """The disclosure rules configured by PULSE_* settings; PTableError if PULSE_PTABLE cannot be used.

    The noise key is derived from SECRET_KEY in a domain of its own, so a database moved to
    another server with the same SECRET_KEY publishes the same numbers.
    """
    path = config.get("PULSE_PTABLE")
    return Disclosure(
        release_threshold=int(config["PULSE_RELEASE_THRESHOLD"]),
        k=int(config["PULSE_SMALL_COUNT_K"]),
        segment_min=int(config["PULSE_SEGMENT_MIN"]),
        ptable=load_ptable(path) if path else default_ptable(),
        key=hmac.new(str(config["SECRET_KEY"]).encode(), b"pulse/perturbation", hashlib.sha256).digest(),
    )


def disclosure_rules() -> Disclosure:
    """The current app's disclosure rules (built once, at start-up)."""
    return state.of().disclosure_rules


def min_new(config: Mapping[str, Any], last_n: int | None) -> int:
    """New responses the next snapshot needs: the release threshold for the first, then
    max(PULSE_SNAPSHOT_MIN_NEW, PULSE_SNAPSHOT_GROWTH x the last snapshot's N)."""
    if last_n is None:
        return int(config["PULSE_RELEASE_THRESHOLD"])
    return max(int(config["PULSE_SNAPSHOT_MIN_NEW"]), math.ceil(float(config["PULSE_SNAPSHOT_GROWTH"]) * last_n))


def next_snapshot_at(config: Mapping[str, Any], last_n: int | None) -> int:
    """How many responses the next snapshot will count: the last N (None or 0: no snapshot yet)
    plus the new responses it needs. What pages and /admin say as "they update at ..."."""
    return (last_n or 0) + min_new(config, last_n or None)


# PostgreSQL's SQLSTATE for "could not serialize access": a REPEATABLE READ transaction that
# would write a row another transaction changed after this one's snapshot was taken.
SERIALIZATION_FAILURE = "40001"


def lost_race(exc: BaseException) -> bool:
    """Whether a build failed only because another transaction changed what it read first
    (PostgreSQL's serialization failure): the other one did the work, nothing is wrong."""
    return isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) == SERIALIZATION_FAILURE


def _consistent(engine: Engine) -> Engine:
    # PostgreSQL: one snapshot of the data for the whole transaction, so the rows counted
    # and the rows flagged are the same set. (SQLite transactions already see one snapshot.)
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine


def _read_session(engine: Engine) -> Session:
    return Session(_consistent(engine), expire_on_commit=False)


def rebuild(
    engine: Engine,
    survey: Survey,
    disclosure: Disclosure,
    *,
    full: bool = False,
    min_pending: int = 0,
    progress: Callable[[int], None] | None = None,
    claim: Callable[[Session], bool] | None = None,
) -> int | None:
    """Build and store a new snapshot; its response count, or None if nothing was stored
    (fewer than min_pending new responses, another build won the race, or `claim` said no).

    An incremental build reads the previous snapshot and the new rows, computes without any
    lock, then stores only if no other build stored a snapshot meanwhile (optimistic), flagging
    exactly the rows it counted. A full build recounts everything under the write lock.
    A failure leaves the previous snapshot and every flag as they were.

    `claim` (a full build only) is asked first, in the build's own transaction: whether to build.
    What it writes commits with the snapshot, or alone when it says no, and rolls back with a
    failed build (a survey's final snapshot is claimed so: program.build_final_snapshot).
    """
    if claim is not None:
        return _rebuild_full(engine, survey, disclosure, progress, claim)
    with _read_session(engine) as db, db.begin():
        previous = snapshot_queries.latest_snapshot(db, survey.id, survey.version)
        base = _cached_tally(engine, survey, previous) if previous is not None and not full else None
        if base is None or base.digest is None:  # no snapshot yet, or one from before digests: recount
            if (
                min_pending
                and response_queries.count_responses(db, survey.id, survey.version, pending_only=True) < min_pending
            ):
                return None
            full = True
        else:
            # The new rows are read anyway: their number is the check, with no separate count.
            rows = response_queries.pending_rows(db, survey.id, survey.version)
            if len(rows) < min_pending:
                return None
            previous_id = previous.id
    if full:
        return _rebuild_full(engine, survey, disclosure, progress)
    new = tally(survey, [answers for _, answers in rows], [row_id for row_id, _ in rows])
    total = base + new if rows else base
    if progress:
        progress(len(rows))
    with storage.writer(engine) as db:
        # PostgreSQL: without the lock two builds could both pass the check below and both store,
        # flagging more rows than either counted (SQLite's IMMEDIATE transactions already queue).
        snapshot_queries.lock_snapshot_writes(db, survey.id, survey.version)
        if snapshot_queries.latest_snapshot_id(db, survey.id, survey.version) != previous_id:
            return None  # another build won the race; it counted these rows or will
        _store(db, survey, disclosure, total)
        response_queries.mark_counted_in_id_order(db, survey.id, survey.version, [row_id for row_id, _ in rows])
    _forget_cached(engine)
    return total.n


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """A full rebuild makes a tuple and two strings per response, none of them in a reference
    cycle, and Python's cycle collector walks the growing heap again and again as they pile up:
    40% of the read's CPU at a million rows. Reference counting still frees every row; cycles
    that other threads make meanwhile wait until the build ends (seconds)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _rebuild_full(
    engine: Engine, survey: Survey, disclosure: Disclosure, progress, claim: Callable[[Session], bool] | None = None
) -> int | None:
    with _cycle_collection_paused(), storage.writer(_consistent(engine)) as db:
        if claim is not None and not claim(db):
            return None
        chunks = response_queries.iter_answers(db, survey.id, survey.version)
        total = tally_chunks(survey, _reported(_prefetched(chunks), progress))
        _store(db, survey, disclosure, total)
        response_queries.mark_counted_in_id_order(db, survey.id, survey.version)
    _forget_cached(engine)
    return total.n


def _reported(chunks: Iterator[tuple[list[str], list[str]]], progress) -> Iterator[tuple[list[str], list[str]]]:
    for chunk in chunks:
        yield chunk
        if progress:
            progress(len(chunk[0]))


_DONE = object()


def _prefetched(chunks: Iterator) -> Iterator:
    """The chunks, fetched one ahead in a thread: the driver reads while numpy counts.

    Both release the GIL for most of their work, so on two cores a full rebuild takes about
    as long as the slower of the two instead of their sum.
    """
    ahead: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                ahead.put(chunk)
            ahead.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            ahead.put(exc)

    worker = threading.Thread(target=fetch, name="pulse-rebuild-fetch", daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # If counting failed, unblock the fetcher so it can see the stop and end.
        stop.set()
        while worker.is_alive():
            try:
                ahead.get(timeout=0.05)
            except queue.Empty:
                pass


def _store(db: Session, survey: Survey, disclosure: Disclosure, total: Tally, *, releasing: bool = False) -> None:
    """Store a snapshot; the first one that makes the results public (released and published)
    tells the Atom feed, in the same transaction. `releasing`: the organisers' release stores it
    (dated by their day); otherwise it follows responses, and is dated by its ISO week only."""
    _, released = program_queries.read_survey_state(db, survey.id, survey.version)
    published = publishing.publish(survey, total, disclosure, released)
    snapshot_queries.save_snapshot(
        db,
        survey.id,
        survey.version,
        total.n,
        json.dumps(total.to_json(), separators=(",", ":")),
        json.dumps(published.to_json(), separators=(",", ":")),
        publishing.SHAPE,
    )
    if published.released and published.published:
        program_queries.record_results_released(db, survey.id, survey.version, by_week=not releasing)


def republish(
    engine: Engine, survey: Survey, disclosure: Disclosure, *, outdated_only: bool = False, releasing: bool = False
) -> int | None:
    """Store the latest snapshot again from the same counts (after a release, `releasing`, or in
    the current shape after an upgrade): the same noise, no new responses. Its response count, or
    None when there is no snapshot yet (or, with `outdated_only`, when it is in the current shape
    already: another worker got there first)."""
    with storage.writer(engine) as db:
        snapshot_queries.lock_snapshot_writes(db, survey.id, survey.version)
        previous = snapshot_queries.latest_snapshot(db, survey.id, survey.version)
        if previous is None or (outdated_only and previous.shape >= publishing.SHAPE):
            return None
        total = Tally.from_json(json.loads(previous.tally))
        if total.digest is None:
            total.digest = 0
        _store(db, survey, disclosure, total, releasing=releasing)
    _forget_cached(engine)
    return total.n


def _cached_tally(engine: Engine, survey: Survey, snapshot) -> Tally:
    """The snapshot's tally: the current app's served copy when it is that snapshot, else parsed."""
    if _serves(engine):
        cached = state.of().cache.snapshots.get((survey.id, survey.version))
        if cached is not None and cached.snapshot_id == snapshot.id:
            return cached.tally
    return Tally.from_json(json.loads(snapshot.tally))


def _serves(engine: Engine) -> bool:
    """Whether the current app (if any: scripts rebuild without one) serves this engine's database."""
    return bool(current_app) and state.of().engine is engine


def rebuild_if_due(survey: Survey) -> None:
    """Rebuild when enough new responses have arrived; log, never raise, on failure.

    Under heavy load a worker checks at most once per PULSE_SNAPSHOT_MIN_INTERVAL seconds and
    schedules one catch-up check, so rebuilds happen about once a second per worker instead of
    after every few responses; at least PULSE_SNAPSHOT_EVERY new responses still holds.
    """
    app = current_app._get_current_object()
    pulse = state.of(app)
    interval = float(app.config["PULSE_SNAPSHOT_MIN_INTERVAL"])
    with pulse.lock:
        wait = pulse.last_rebuild_check + interval - time.monotonic()
        if wait > 0:
            if pulse.catch_up is None:
                pulse.catch_up = threading.Timer(wait, _catch_up_run, (app, survey))
                pulse.catch_up.daemon = True
                pulse.catch_up.start()
            return
        pulse.last_rebuild_check = time.monotonic()
    _check_and_rebuild(app, survey)


def _catch_up_run(app: Flask, survey: Survey) -> None:
    pulse = state.of(app)
    with pulse.lock:
        pulse.catch_up = None
        pulse.last_rebuild_check = time.monotonic()
    with app.app_context():
        _check_and_rebuild(app, survey)


def _check_and_rebuild(app: Flask, survey: Survey) -> None:
    pulse = state.of(app)
    engine = pulse.engine
    try:
        with Session(engine) as db:
            last = snapshot_queries.latest_snapshot_responses(db, survey.id, survey.version)
            needed = min_new(app.config, last)
            if response_queries.count_responses(db, survey.id, survey.version, pending_only=True) < needed:
                return
        rebuild(engine, survey, pulse.disclosure_rules, min_pending=needed)
    except Exception as exc:  # noqa: BLE001 - whatever broke, the committed response must get its 201
        if lost_race(exc):
            # PostgreSQL: two builds read the same rows (REPEATABLE READ) and the other flagged
            # them first. It stored the snapshot; this one rolled back whole. The race, not a fault.
            log.info("snapshot rebuild not stored: another build stored it first")
            return
        # The previous snapshot stays; the next submission (or `pulse snapshot`) tries again.
        log.exception("snapshot rebuild failed, previous snapshot kept")


@dataclass(frozen=True)
class ServedSnapshot:
    """The latest snapshot as served: its id, the published figures, its tally and its bytes."""

    snapshot_id: int | None
    published: Published
    tally: Tally
    body: bytes
    survey: tuple[str, int] = ("", 0)


def _forget_cached(engine: Engine) -> None:
    # This process stored a snapshot: its own pages ask the database next time rather than
    # wait for the notification to come back to its listener.
    if _serves(engine):
        state.of().cache.clear_snapshots()
        g.pop("pulse_newest_snapshot", None)  # nor trust the id this request's first query brought


def served(survey: Survey, row=None) -> ServedSnapshot:
    """The latest snapshot, from this worker's cache while no newer one has been stored.

    `row` is the participant's response, read before this call. Once a snapshot counts it,
    the copy served is checked against the database, not only against what the listener has
    heard so far: "you" subtracts the row from the tally, which must therefore contain it.
    Asked once per request at most: a page that needs it twice gets the same answer.
    """
    must_check = bool(row is not None and row.in_snapshot)
    memos = g.setdefault("pulse_served", {})
    memo = memos.get((survey.id, survey.version))
    if memo is not None and (memo[1] or not must_check):
        return memo[0]
    # The participant's own lookup read the newest snapshot id with in_snapshot: no second query.
    same = must_check and (row.survey_id, row.survey_version) == (survey.id, survey.version)
    newest = row.newest_snapshot if same else _ASK
    served, checked = _served(survey, trust_listener=not must_check, newest=newest)
    memos[(survey.id, survey.version)] = (served, checked)
    return served


_ASK = object()  # _served's `newest` when no id was read with the participant's response


def _served(survey: Survey, trust_listener: bool, newest: Any = _ASK) -> tuple[ServedSnapshot, bool]:
    """The snapshot to serve, and whether the database was asked for its id (`newest`: the id,
    already read from the database in this request)."""
    pulse = state.of()
    cache_key = (survey.id, survey.version)
    # Read before the query: a snapshot stored (and heard of) after this keeps this read out of the cache.
    epoch = pulse.cache.snapshots_epoch
    cached = pulse.cache.snapshots.get(cache_key)
    if trust_listener and cached is not None and pulse.watch is not None and pulse.watch.listening():
        return cached, False  # the listener clears this copy when a newer snapshot is stored: no query
    asked = g.get("pulse_newest_snapshot")
    if newest is not _ASK:
        snapshot_id = newest
    elif trust_listener and asked is not None and asked[0] == cache_key:
        # This request's current-survey query brought the newest snapshot id along (program.py).
        _, snapshot_id, epoch = asked
    else:
        snapshot_id = snapshot_queries.newest_snapshot_id(pulse.probe, survey.id, survey.version)
    if cached is not None and cached.snapshot_id == snapshot_id:
        return cached, True
    db = storage.reader()
    if snapshot_id is None:
        # No snapshot before the release threshold: the page says how many more are needed.
        empty = tally(survey, [])
        _, released = program_queries.read_survey_state(db, survey.id, survey.version)
        published = publishing.publish(survey, empty, pulse.disclosure_rules, released)
        waiting = response_queries.count_responses(db, survey.id, survey.version)
        published = replace(published, needed=max(0, pulse.disclosure_rules.release_threshold - waiting))
        # Not kept: nothing is stored when results are released before the first snapshot, so
        # no change of snapshot id (and no notification) would tell a worker to forget it.
        return ServedSnapshot(
            None, published, empty, json.dumps(published.to_json()).encode(), (survey.id, survey.version)
        ), True
    snapshot = snapshot_queries.latest_snapshot(db, survey.id, survey.version)
    fresh = ServedSnapshot(
        snapshot.id,
        Published.from_json(json.loads(snapshot.published)),
        Tally.from_json(json.loads(snapshot.tally)),
        snapshot.published.encode(),
        (survey.id, survey.version),
    )
    pulse.cache.put_snapshot(cache_key, fresh, epoch)
    return fresh, True


def released_now(survey: Survey) -> bool:
    """Whether results are public, as the latest snapshot says.

    Releasing stores a new snapshot, and every snapshot reads the release state in the same
    transaction that stores it, so the newest snapshot is never behind a release; and there is
    no way back to early access. Reading it here saves a query on every page and API call.
    """
    return served(survey).published.released


def published_n(survey: Survey) -> int | None:
    """The N that the survey's public figures show: None until results are released and published."""
    published = served(survey).published
    if not (published.released and published.published):
        return None
    return published.responses


def you_for(survey: Survey, row, served: ServedSnapshot) -> You:
    """The participant's own view, computed per request from their answers and the published snapshot."""
    return publishing.you(survey, json.loads(row.answers), served.published)
