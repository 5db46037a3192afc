"""Schedules: a survey opens and closes by itself, and a voting round closes by itself, on time.

Organisers set the times (`pulse survey schedule`, `pulse round open|schedule --closes`, /admin)
in PULSE_TIMEZONE; they are stored in UTC beside the survey or the round. When one is due, a
worker claims it with a conditional update (program_queries.take_due, community/queries
.take_round_close) in the same transaction as the opening or closing itself, so exactly one
worker on one host acts, however many try; it runs the organisers' own code path (a scheduled
close builds the final snapshot, a scheduled round close tallies and chooses).

Each worker keeps a Scheduler: a timer armed for the next due time it knows of, and a cheap
check on each request (throttled) that learns of times set elsewhere and acts on one already
due before the page is served. A served app (`pulse serve`) also polls without requests, so a
survey closes on time when nobody visits. Nothing starts before gunicorn forks: the timer is
armed by the first request, or by the server in the worker process (server.PulseServer.load).

A close (on time or by hand) commits before its final snapshot is built, and notes the snapshot
it owes in its own transaction (program.py). If the build fails, the note stays: a worker that
has seen it owed for FINAL_SNAPSHOT_RETRY_SECONDS builds it, claiming it in the snapshot's own
transaction, so exactly one does, and a failure leaves it owed for the next try.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from flask import Flask, current_app

from . import program, program_queries, schedule_times, state, storage
from .community import queries as cs
from .community import voting
from .domain_errors import Conflict, Invalid
from .questions import Survey

log = logging.getLogger(__name__)

# How long a request waits for this worker's run of what is due (a final snapshot) before serving anyway.
RUN_WAIT_SECONDS = 30.0
# A due time whose action failed (the database away, say) is tried again after this, not at once.
RETRY_SECONDS = 5.0
# A final snapshot owed this long after a worker first saw it owed is built by that worker (and
# again this long after each failed try). Not at once: the worker that closed the survey is
# building it, and a full build of a large survey takes seconds; others would only wait for it.
FINAL_SNAPSHOT_RETRY_SECONDS = 30.0


def tz():
    """PULSE_TIMEZONE, in which organisers give times and pages show them."""
    return schedule_times.zone(current_app.config["PULSE_TIMEZONE"])


def _given(text: str | None, field: str) -> tuple[bool, int | None]:
    """(whether the field was given, its time): None keeps what is stored; "" or "none" clears."""
    if text is None:
        return False, None
    if text.strip().lower() in ("", *schedule_times.CLEAR):
        return True, None
    return True, schedule_times.parse(text, tz(), field)


# ------------------------------------------------------------------ what organisers do


def schedule_survey(text: str, opens: str | None, closes: str | None) -> str:
    """Set (or clear) when survey ID[@VERSION] opens and closes by itself; a sentence saying so.

    `opens` and `closes` are times in PULSE_TIMEZONE; None keeps the stored one, "" or "none"
    clears it. Raises NotFound (no such survey), Invalid (a bad time, one already past, a close
    before the opening) or Conflict (opening a survey that is open, closing one that will not
    be open); nothing changes then.
    """
    survey = program.find(text)
    give_opens, new_opens = _given(opens, "opens")
    give_closes, new_closes = _given(closes, "closes")
    schedule_times.check(new_opens, new_closes, time.time())
    with storage.writer() as db:
        program_queries.lock_program(db)
        row = program_queries.stored_survey(db, survey.id, survey.version)
        opens_at = new_opens if give_opens else row.opens_at
        closes_at = new_closes if give_closes else row.closes_at
        if opens_at is not None and closes_at is not None and closes_at <= opens_at:
            raise Invalid("schedule_order")
        st = program_queries.survey_state(db, survey.id, survey.version)
        is_open = bool(st and st.is_open)
        if give_opens and opens_at is not None and is_open:
            raise Conflict("schedule_open_already", survey=program.ref(survey))
        if closes_at is not None and not is_open and opens_at is None:
            raise Conflict("schedule_close_not_open", survey=program.ref(survey))
        program_queries.set_schedule(db, row, opens_at, closes_at)
    _rearm()
    return f"{survey.title} ({program.ref(survey)}): {said(opens_at, closes_at)}."


def said(opens_at: int | None, closes_at: int | None) -> str:
    """A survey's schedule in words, in PULSE_TIMEZONE."""
    zone, now = tz(), time.time()
    parts = []
    if opens_at is not None:
        parts.append(f"opens by itself on {schedule_times.when(opens_at, zone, now)}")
    if closes_at is not None:
        parts.append(f"closes by itself on {schedule_times.when(closes_at, zone, now)}")
    return " and ".join(parts) if parts else "nothing scheduled"


def _round_closes(closes: str | None) -> int | None:
    _, closes_at = _given(closes, "closes")
    schedule_times.check(None, closes_at, time.time())
    return closes_at


def open_round(closes: str | None = None) -> str:
    """Open a voting round over every approved topic, closing by itself at `closes` if given."""
    closes_at = _round_closes(closes)
    message = voting.open_round(closes_at)
    if closes_at is not None:
        _rearm()
        message += f" It closes by itself on {schedule_times.when(closes_at, tz(), time.time())}."
    return message


def schedule_round(closes: str) -> str:
    """Set (or with "none" clear) when the open round closes by itself; a sentence saying so."""
    closes_at = _round_closes(closes)
    with storage.writer() as db:
        cs.lock_rounds(db)
        round_ = cs.open_round(db, lock=True)
        if round_ is None:
            raise Conflict("no_round_to_close")
        cs.set_round_closes(db, round_, closes_at)
        number = round_.id
    _rearm()
    if closes_at is None:
        return f"Round {number} closes when the organisers close it; nothing scheduled."
    return f"Round {number} closes by itself on {schedule_times.when(closes_at, tz(), time.time())}."


def shown(seconds: int | None) -> dict[str, str] | None:
    """A scheduled time as pages show it, in PULSE_TIMEZONE: "when" (31 January, 17:00 CET),
    "day" (31 January), "iso" (UTC, for <time datetime>), "input" (a form field's value, with its
    offset in the hour the clocks pass twice) and "listed" (2027-01-31 17:00 CET, for tables)."""
    if seconds is None:
        return None
    zone, now = tz(), time.time()
    return {
        "when": schedule_times.when(seconds, zone, now),
        "day": schedule_times.day(seconds, zone, now),
        "iso": schedule_times.iso_utc(seconds) or "",
        "input": schedule_times.form_value(seconds, zone),
        "listed": schedule_times.listed(seconds, zone),
    }


def of(survey: Survey) -> tuple[int | None, int | None]:
    """(opens_at, closes_at) of a survey: one small query (its definition is cached, this is not)."""
    return program_queries.schedule_of(storage.reader(), survey.id, survey.version)


def next_opening() -> program.Entry | None:
    """The survey scheduled to open next (for the landing page), if any."""
    upcoming = [e for e in program.entries() if e.opens_at is not None and not e.is_open]
    return min(upcoming, key=lambda e: e.opens_at) if upcoming else None


# ------------------------------------------------------------------ acting on time


def run_due(app: Flask, owed: bool = False) -> list[str]:
    """Open and close whatever is due now (with `owed`, build the final snapshots still owed too);
    what this call did (a sentence each). Another worker trying at the same moment finds each
    claim taken and does nothing."""
    done = []
    with app.app_context():
        now = int(time.time())
        due = program_queries.due_surveys(storage.reader(), now)
        storage.reader().close()
        # Closings first: a survey opening at the same time then finds the previous one closed.
        for survey_id, version, _opening, closing in due:
            if closing:
                done.append(_safely(program.close_scheduled, survey_id, version, now))
        for survey_id, version, opening, _closing in due:
            if opening:
                done.append(_safely(program.open_scheduled, survey_id, version, now))
        if cs.round_close_due(storage.reader(), now) is not None:
            closed = _safely(voting.close_scheduled, now)
            if closed is not None:
                done.append(
                    f"Round {closed.round} is closed: {closed.ballots} ballot{'s' if closed.ballots != 1 else ''}."
                )
        if owed:
            owing = program_queries.owed_final_snapshots(storage.reader())
            storage.reader().close()
            for survey_id, version in owing:
                done.append(_safely(program.final_snapshot_again, survey_id, version))
    done = [d for d in done if d]
    for message in done:
        log.info("on schedule: %s", message)
    return done


def _safely(action, *args) -> Any:
    """Run one scheduled action; a failure is logged, never raised into a request or the timer.
    A failure inside its transaction rolls the claim back with it, so the time stays due and is
    tried again (after RETRY_SECONDS; an owed final snapshot after FINAL_SNAPSHOT_RETRY_SECONDS)."""
    try:
        return action(*args)
    except Exception:  # noqa: BLE001 - a timer thread must survive whatever one action meets
        log.exception("a scheduled opening, closing or final snapshot failed; it is tried again")
        return None


def next_due(app: Flask) -> int | None:
    """The earliest scheduled time of any survey or the open round, or None."""
    with app.app_context():
        db = storage.reader()
        times = [t for t in (program_queries.next_scheduled(db), cs.next_round_close(db)) if t is not None]
    return min(times) if times else None


def final_snapshot_owed(app: Flask) -> bool:
    """Whether any closed survey still owes its final snapshot."""
    with app.app_context():
        return bool(program_queries.owed_final_snapshots(storage.reader()))


class Scheduler:
    """One worker's timer for one app: armed for the next due time it knows of (and, when
    serving, at least every PULSE_SCHEDULE_POLL_SECONDS, to learn of times set elsewhere)."""

    def __init__(self, app: Flask):
        self._app = app
        # How often it asks the database for the next scheduled time (on a request, or by its own
        # timer when serving): a time set by another worker or host is acted on within about this.
        self.poll_seconds: float = app.config["PULSE_SCHEDULE_POLL_SECONDS"]
        self.polling = False
        self.next_due: int | None = None
        self.checked = float("-inf")  # time.monotonic() of the last look at the database
        self.done: deque[str] = deque(maxlen=50)  # what this worker did on schedule (tests, logs)
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._running = threading.Lock()
        self._stopped = False
        # Whether the last run left a time due (its action failed), and when that run was.
        self._stuck = False
        self._ran = float("-inf")
        # time.monotonic() since when this worker has seen a final snapshot owed (None: none is);
        # it builds it FINAL_SNAPSHOT_RETRY_SECONDS after that.
        self._owed_since: float | None = None

    def poke(self) -> None:
        """The per-request check: look again after a while; act now on a time already due, so
        the page this request serves already shows it (waiting for the timer if it is on it)."""
        if self._stopped:
            return
        if time.monotonic() - self.checked >= self.poll_seconds:
            self.refresh()
        retry_later = self._stuck and time.monotonic() - self._ran < RETRY_SECONDS
        if self.next_due is not None and time.time() >= self.next_due and not retry_later:
            self.run(wait=True)

    def quiet(self) -> bool:
        """Whether poke() would do nothing now: looked recently, nothing due (fast_reads.py
        answers a request without Flask only then)."""
        return (
            not self._stopped
            and time.monotonic() - self.checked < self.poll_seconds
            and (self.next_due is None or time.time() < self.next_due)
        )

    def run(self, wait: bool = False) -> None:
        """Act on what is due, then arm the timer for what comes next. One run at a time per
        worker: the timer skips while another runs; a request waits for it (`wait`)."""
        if not self._running.acquire(blocking=wait, timeout=RUN_WAIT_SECONDS if wait else -1):
            return
        try:
            if wait and (self.next_due is None or time.time() < self.next_due):
                return  # the run this request waited for did it
            owed = self._owed_due()
            self.done.extend(run_due(self._app, owed=owed))
            self._look()
            if owed and self._owed_since is not None:
                self._owed_since = time.monotonic()  # still owed (that build failed): the next try waits again
            self._stuck = self.next_due is not None and self.next_due <= time.time()
            self._ran = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the database may be away for a moment: try again later
            log.warning("schedules: %s; checked again later", type(exc).__name__)
            self.checked = self._ran = time.monotonic()
            self._stuck = True
        finally:
            self._running.release()
        self._arm()

    def refresh(self) -> None:
        """Ask the database for the next scheduled time and arm the timer for it."""
        try:
            self._look()
        except Exception as exc:  # noqa: BLE001 - the database may be away for a moment: try again later
            log.warning("schedules: %s; checked again later", type(exc).__name__)
            self.checked = time.monotonic()
        self._arm()

    def serve(self) -> None:
        """In a serving worker: keep looking even without requests."""
        self.polling = True
        self.refresh()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _look(self) -> None:
        self.next_due = next_due(self._app)
        if not final_snapshot_owed(self._app):
            self._owed_since = None
        elif self._owed_since is None:
            self._owed_since = time.monotonic()
        self.checked = time.monotonic()

    def _owed_due(self) -> bool:
        """Whether this worker should build the final snapshots still owed now."""
        return self._owed_since is not None and time.monotonic() - self._owed_since >= FINAL_SNAPSHOT_RETRY_SECONDS

    def _arm(self) -> None:
        with self._lock:
            if self._stopped:
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            waits = [self.poll_seconds]
            if self.next_due is not None:
                waits.append(max(self.next_due - time.time(), RETRY_SECONDS if self._stuck else 0))
            if self._owed_since is not None:
                waits.append(max(self._owed_since + FINAL_SNAPSHOT_RETRY_SECONDS - time.monotonic(), 0))
            if len(waits) == 1 and not self.polling:
                return
            wait = min(waits)
            self._timer = threading.Timer(wait, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        if (self.next_due is not None and time.time() >= self.next_due) or self._owed_due():
            self.run()
        else:
            self.refresh()


def scheduler(app: Flask | None = None) -> Scheduler:
    """This app's scheduler, made on first use (in the process that serves, never before a fork)."""
    pulse = state.of(app)
    if pulse.schedule is None:
        with pulse.lock:
            if pulse.schedule is None:
                pulse.schedule = Scheduler(app or current_app._get_current_object())
    return pulse.schedule


def _rearm() -> None:
    """A schedule changed here: a worker that serves looks again at once (others within
    PULSE_SCHEDULE_POLL_SECONDS). A command has no scheduler: it starts no timer of its own."""
    pulse = state.of()
    if pulse.schedule is not None:
        pulse.schedule.refresh()


def init_app(app: Flask) -> None:
    """The per-request check, before the view reads the program; `schedule_time(seconds)` for templates."""
    app.add_template_global(shown, "schedule_time")

    @app.before_request
    def _on_time() -> None:
        scheduler(app).poke()
