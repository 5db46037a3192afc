"""The survey program: stored survey definitions, the one current survey, and what organisers do to them.

A definition is stored once under (id, version) and never changes: a changed survey is a new
version (a new wave). One survey is current: the one most recently opened, which the landing
page and /survey serve. Each survey keeps its own responses, snapshots and release state, all
stored under its (id, version). Workers cache definitions for good (they cannot change) and
the current survey's (id, version) while nothing says it moved: on PostgreSQL every change of
the program notifies the snapshot listener (snapshot_watch.py); SQLite asks on each request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app, g
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import program_queries, response_queries, snapshot_queries, snapshots, state, storage
from .community import queries as cs
from .domain_errors import Conflict, Invalid, NotFound
from .pipeline import publishing
from .questions import Survey, SurveyError, parse_survey, plain_lines, read_survey_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One stored survey as organisers and the archive see it."""

    survey: Survey
    opened: bool
    is_open: bool
    released: bool
    is_current: bool
    opened_week: str | None
    closed_week: str | None
    # Responses received (only when asked for: counting reads every response row).
    responses: int | None
    topic: dict[str, str] | None
    # The organisers' schedule (Unix seconds UTC), or None: when it opens or closes by itself.
    opens_at: int | None = None
    closes_at: int | None = None

    @property
    def status(self) -> str:
        """open | closed | added (stored, never opened)."""
        if self.is_open:
            return "open"
        return "closed" if self.opened else "added"

    @property
    def ref(self) -> str:
        return ref(self.survey)


def ref(survey: Survey) -> str:
    """How people name a survey version: id@version."""
    return f"{survey.id}@{survey.version}"


def parse_ref(text: str) -> tuple[str, int | None]:
    """ID or ID@VERSION; Invalid when the version is not a whole number."""
    survey_id, _, version = text.strip().partition("@")
    if not version:
        return survey_id, None
    if not version.isdigit() or int(version) < 1:
        raise Invalid("survey_version", text=text)
    return survey_id, int(version)


# ------------------------------------------------------------------ reading


def definition(db: Session, survey_id: str, version: int) -> Survey | None:
    """The stored survey (id, version), parsed once per worker, or None if not stored."""
    cache = state.of().cache.definitions
    found = cache.get((survey_id, version))
    if found is not None:
        return found
    if not 0 < version < 2**31 or "\x00" in survey_id:  # never stored; the database would refuse to compare
        return None
    row = program_queries.stored_survey(db, survey_id, version)
    if row is None:
        return None
    survey = _parse_stored(row.definition, survey_id, version)
    cache[(survey_id, version)] = survey
    return survey


def _parse_stored(text: str, survey_id: str, version: int) -> Survey:
    # Read under the rules it was stored under: a rule added since must not stop Pulse from
    # starting, nor the pages of a survey that holds responses (parse_survey says why in the log).
    return parse_survey(text, f"stored survey {survey_id}@{version}", stored=True)


def current_survey() -> Survey:
    """The current survey, asked once per request (and not at all while the listener says nothing moved)."""
    memo = g.get("pulse_survey")
    if memo is not None:
        return memo
    ensure_started()
    pulse = state.of()
    key = pulse.cache.current_survey_key
    if key is None or pulse.watch is None or not pulse.watch.listening():
        key = _current_survey_asked(pulse)
        if key is None:  # the organisers' data was replaced (a restore): forget it all, start again
            pulse.cache.clear_all()
            start(current_app._get_current_object())
            storage.end_request_reads()
            key = _current_survey_asked(pulse)
    # From this worker's copy when it has one: no database session for the request to open and close.
    survey = pulse.cache.definitions.get(key) or definition(storage.reader(), *key)
    g.pulse_survey = survey
    return survey


def _current_survey_asked(pulse: state.PulseState) -> tuple[str, int] | None:
    """The current survey as the database says now, kept unless a change was heard meanwhile.

    The same query brings the id of its newest snapshot: snapshots.served takes it from `g`
    instead of asking again in the same request.
    """
    # Before the query: a change heard after it keeps this read out of the cache.
    epochs = (pulse.cache.program_epoch, pulse.cache.snapshots_epoch)
    found = program_queries.current_survey_now(pulse.probe)
    if found is None:
        return None
    key, snapshot_id = found
    pulse.cache.put_current_survey(key, epochs[0])
    g.pulse_newest_snapshot = (key, snapshot_id, epochs[1])
    return key


def opened(survey_id: str, version: int) -> Survey:
    """A survey that has been opened (the public may see it); NotFound otherwise."""
    ensure_started()
    db = storage.reader()
    survey = definition(db, survey_id, version)
    if survey is None or program_queries.survey_state(db, survey_id, version) is None:
        raise NotFound("opened_survey", survey_id=survey_id, version=version)
    return survey


def entries(*, opened_only: bool = False, counts: bool = False) -> list[Entry]:
    """Every stored survey (only those ever opened, for the public), newest opening first; with
    `counts`, the responses each received (organisers only: it reads every response row)."""
    ensure_started()
    db = storage.reader()
    states = program_queries.survey_states(db)
    received = response_queries.response_counts(db) if counts else {}
    topics = _topic_titles(db)
    out = []
    for row in program_queries.stored_surveys(db):
        key = (row.id, row.version)
        st = states.get(key)
        if opened_only and st is None:
            continue
        out.append(
            Entry(
                survey=definition(db, row.id, row.version),
                opened=st is not None,
                is_open=bool(st and st.is_open),
                released=bool(st and st.released),
                is_current=bool(st and st.current),
                opened_week=st.opened_week if st else None,
                closed_week=st.closed_week if st else None,
                responses=received.get(key, 0) if counts else None,
                topic={"id": row.topic_id, "title": topics[row.topic_id]} if row.topic_id in topics else None,
                opens_at=row.opens_at,
                closes_at=row.closes_at,
            )
        )
    out.sort(
        key=lambda e: (
            not e.is_current,
            -(int(e.opened_week.replace("-W", "")) if e.opened_week else 0),
            e.survey.id,
            -e.survey.version,
        )
    )
    return out


def entry(survey: Survey) -> Entry:
    return next(e for e in entries() if (e.survey.id, e.survey.version) == (survey.id, survey.version))


def _topic_titles(db: Session) -> dict[str, str]:
    return cs.topic_titles(db)


def earlier_wave(survey: Survey) -> Survey | None:
    """The most recent opened version of the same survey id below this one, if any.

    A survey is opened only by becoming current, so the answer can change only when the current
    survey does: each worker keeps its answers until then (no query on a results page).
    """
    now = current_survey()
    pulse = state.of()
    marker, known = pulse.cache.waves
    if marker != (now.id, now.version):
        known = {}
        pulse.cache.waves = ((now.id, now.version), known)
    key = (survey.id, survey.version)
    if key not in known:
        known[key] = _earlier_wave(survey)
    return known[key]


def wave_before(survey: Survey) -> Survey | None:
    """The version the wave comparison compares this one with: the most recent opened version
    below it (read now, not from a worker's memory: the survey need not be stored yet)."""
    return _earlier_wave(survey)


def stored_before(survey: Survey) -> Survey | None:
    """The highest stored version of the same survey id below this one, opened or not."""
    db = storage.reader()
    lower = [
        row.version
        for row in program_queries.stored_surveys(db)
        if row.id == survey.id and row.version < survey.version
    ]
    return definition(db, survey.id, max(lower)) if lower else None


def _earlier_wave(survey: Survey) -> Survey | None:
    db = storage.reader()
    states = program_queries.survey_states(db)
    versions = sorted((v for (sid, v) in states if sid == survey.id and v < survey.version), reverse=True)
    for version in versions:
        found = definition(db, survey.id, version)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ what organisers do


@dataclass(frozen=True)
class Stored:
    """What adding a survey file did: "added" (a new version), "linked" (already stored, now
    linked to `topic`) or "unchanged" (already stored, nothing else to do); `updated` when the
    stored text took the file's actions and reasons."""

    outcome: str
    survey: Survey
    topic: str | None = None
    # Already stored, but its actions and reasons (the guide's words, not the survey's) differed:
    # the stored text took the file's.
    updated: bool = False


def add(path: str | Path, topic_id: str | None = None) -> tuple[Survey, Stored]:
    """Validate a survey file and store its definition; (the survey, what happened).

    Raises SurveyError for a file that is not a valid survey, Conflict for a changed file under
    a stored (id, version) and NotFound for an unknown topic; in each case nothing is stored.
    """
    survey, text = read_survey_file(path)
    return survey, _store(survey, text, topic_id)


def add_text(text: str, source: str, topic_id: str | None = None) -> tuple[Survey, Stored]:
    """add() for a survey's text (the editor in /admin); `source` names it in messages."""
    text = plain_lines(text)
    survey = parse_survey(text, source)
    return survey, _store(survey, text, topic_id)


def stored_as(survey: Survey) -> str:
    """What adding this survey would do now, changing nothing: "new" (its version is not stored),
    "same" (stored as it is), "guide" (stored; only its actions and reasons would be updated)
    or "changed" (stored with other content: refused)."""
    row = program_queries.stored_survey(storage.reader(), survey.id, survey.version)
    return "new" if row is None else _compared(row.definition, survey)


def _compared(definition_text: str, survey: Survey) -> str:
    """The rule of a stored (id, version): "same", "guide" (only the guide's words differ) or "changed"."""
    stored = _parse_stored(definition_text, survey.id, survey.version)
    if stored != survey:
        return "changed"
    return "guide" if stored.guide_texts() != survey.guide_texts() else "same"


def definition_text(survey: Survey) -> str:
    """The stored text (YAML, comments and all) of a stored survey."""
    row = program_queries.stored_survey(storage.reader(), survey.id, survey.version)
    if row is None:
        raise NotFound("stored_survey", text=ref(survey))
    return row.definition


def next_version(survey_id: str) -> int:
    """One more than the highest stored version of this survey id (1 if none is stored)."""
    return (program_queries.highest_version(storage.reader(), survey_id) or 0) + 1


def _store(survey: Survey, text: str, topic_id: str | None) -> Stored:
    with storage.writer() as db:
        if topic_id is not None:
            _check_topic(db, topic_id)
        row = program_queries.stored_survey(db, survey.id, survey.version)
        if row is None:
            try:
                with db.begin_nested():
                    program_queries.add_stored_survey(db, survey.id, survey.version, survey.title, text, topic_id)
            except IntegrityError:  # another worker stored it at the same moment: compare with theirs
                row = program_queries.stored_survey(db, survey.id, survey.version)
            else:
                return Stored("added", survey, topic_id)
        compared = _compared(row.definition, survey)
        if compared == "changed":
            raise Conflict("survey_changed", source=survey.source, survey=ref(survey))
        updated = False
        if compared == "guide":
            # Actions and reasons are the guide's words, shown on results pages and never in the
            # form: polishing them changes no answer and no score, so the stored text takes them.
            row.definition = text
            state.of().cache.definitions.pop((survey.id, survey.version), None)
            updated = True
        if topic_id is not None and row.topic_id != topic_id:
            row.topic_id = topic_id
            return Stored("linked", survey, topic_id, updated)
        return Stored("unchanged", survey, None, updated)


def stored_survey_differs(source: str, survey: str) -> str:
    """What is wrong with a survey file whose (id, version) is stored with other content."""
    return (
        f"{source}: survey {survey} is already stored with different content (questions, options, "
        "points or texts); a changed survey needs a new version. Nothing was changed."
    )


def _check_topic(db: Session, topic_id: str) -> None:
    if topic_id not in _topic_titles(db):
        raise NotFound("topic_to_link", topic=topic_id)


def link_topic(survey_id: str, version: int, topic_id: str | None) -> str:
    """Link a stored survey to the topic it answers (None: unlink)."""
    with storage.writer() as db:
        row = program_queries.stored_survey(db, survey_id, version)
        if row is None:
            raise NotFound("survey_to_link", survey=f"{survey_id}@{version}")
        if topic_id is not None:
            _check_topic(db, topic_id)
        row.topic_id = topic_id
    return (
        f"{survey_id}@{version} linked to topic {topic_id}."
        if topic_id
        else f"{survey_id}@{version} linked to no topic."
    )


def find(text: str) -> Survey:
    """The stored survey ID@VERSION (no version: the highest); NotFound when there is none."""
    survey_id, version = parse_ref(text)
    ensure_started()
    db = storage.reader()
    if version is None:
        version = program_queries.highest_version(db, survey_id)
    survey = definition(db, survey_id, version) if version is not None else None
    if survey is None:
        raise NotFound("stored_survey", text=text)
    return survey


def open_survey(text: str) -> str:
    """Make a stored survey current and open, closing the previous current one."""
    survey = find(text)
    with storage.writer() as db:
        program_queries.lock_program(db)
        closed = _open(db, survey)
    return _opened(survey, closed)


def open_scheduled(survey_id: str, version: int, now: int) -> str | None:
    """Open this survey because its scheduled opening is due, unless another worker or host
    already did (None then): the claim and the opening are one transaction, so exactly one does.
    The same opening as open_survey's, with the same final snapshot of the survey it closes."""
    survey = definition(storage.reader(), survey_id, version)
    if survey is None:
        return None
    with storage.writer() as db:
        program_queries.lock_program(db)
        if not program_queries.take_due(db, survey_id, version, "opens", now):
            return None
        closed = _open(db, survey)
    return _opened(survey, closed)


def _open(db: Session, survey: Survey) -> tuple[str, int] | None:
    """Open `survey` and make it current in this transaction; the survey it closed, if any."""
    week = storage.iso_week()
    closed = None
    previous = program_queries.current_survey_key(db)
    if previous is not None and previous != (survey.id, survey.version):
        before = program_queries.survey_state(db, *previous, lock=True)
        if before.is_open:
            closed = previous
            _owe_final_snapshot(before)
            before.is_open, before.closed_week = False, week
            program_queries.stored_survey(db, *previous).closes_at = None  # closed now: done with
    program_queries.clear_current(db)
    # Opened now (by hand, or on schedule): a scheduled opening is done with.
    program_queries.stored_survey(db, survey.id, survey.version).opens_at = None
    now = program_queries.survey_state(db, survey.id, survey.version, lock=True)
    was_open = now is not None and now.is_open
    program_queries.set_survey_state(
        db,
        survey.id,
        survey.version,
        is_open=True,
        current=True,
        opened_week=(now.opened_week if now and now.opened_week else week),
        # Open again before an owed final snapshot was built: it is no longer final; its next
        # close owes one (under the growth rule, as any close after the first).
        final_snapshot_owed=None,
    )
    if not was_open:
        program_queries.record_event(db, "survey_opened", survey_id=survey.id, survey_version=survey.version)
    program_queries.program_changed(db)
    return closed


def _opened(survey: Survey, closed: tuple[str, int] | None) -> str:
    _forget_current_survey()
    message = f"{survey.title} ({ref(survey)}) is current and open for responses."
    if closed is not None:
        prev_id, prev_version = closed
        message += f" {prev_id}@{prev_version} was closed." + _final_snapshot(prev_id, prev_version)
    return message


def close_survey() -> str:
    """Close the current survey (it stays current) and build its final snapshot."""
    survey = current_survey()
    with storage.writer() as db:
        program_queries.lock_program(db)
        st = program_queries.survey_state(db, survey.id, survey.version, lock=True)
        if st is None or not st.is_open:
            raise Conflict("survey_closed_already", survey=ref(survey))
        _close(db, st)
    return _closed(survey)


def close_scheduled(survey_id: str, version: int, now: int) -> str | None:
    """Close this survey because its scheduled closing is due, unless another worker or host
    already did, or it is not open (None then; the schedule is emptied either way). The same
    close as close_survey's: the survey stays current and gets its final snapshot."""
    survey = definition(storage.reader(), survey_id, version)
    if survey is None:
        return None
    with storage.writer() as db:
        program_queries.lock_program(db)
        if not program_queries.take_due(db, survey_id, version, "closes", now):
            return None
        st = program_queries.survey_state(db, survey_id, version, lock=True)
        if st is None or not st.is_open:  # closed by hand, or by another survey's opening, already
            return None
        _close(db, st)
    return _closed(survey)


def _close(db: Session, st: Any) -> None:
    """Close this survey state in this transaction."""
    _owe_final_snapshot(st)
    st.is_open, st.closed_week = False, storage.iso_week()
    # Closed now (by hand, or on schedule): a scheduled closing is done with.
    program_queries.stored_survey(db, st.survey_id, st.survey_version).closes_at = None
    program_queries.program_changed(db)


def _owe_final_snapshot(st: Any) -> None:
    """Note, in the close's own transaction, the final snapshot the close owes: it is built after
    the commit (it must count every response the close let in), and if that build fails the note
    stays, so a worker builds it later (schedules.py) instead of the survey keeping an old N."""
    st.final_snapshot_owed = "first" if st.closed_week is None else "again"


def _closed(survey: Survey) -> str:
    _forget_current_survey()
    return f"{survey.title} ({ref(survey)}) is closed." + _final_snapshot(survey.id, survey.version)


def set_released(survey: Survey) -> str:
    """End early access for one survey: its latest snapshot is published again, with the same noise.

    The feed hears of it when the results are public: with that snapshot if it is published,
    otherwise with the first snapshot after the threshold (snapshots._store records it)."""
    with storage.writer() as db:
        st = program_queries.survey_state(db, survey.id, survey.version)
        if st is None:
            raise Conflict("release_never_opened", survey=ref(survey))
        program_queries.set_survey_state(db, survey.id, survey.version, released=True)
    snapshots.republish(storage.engine(), survey, snapshots.disclosure_rules(), releasing=True)
    return f"{survey.title} ({ref(survey)}): results released to everyone."


def _final_snapshot(survey_id: str, version: int) -> str:
    """The final snapshot the close just committed owes, built now; what to add to the close's
    sentence. A build that fails is logged and stays owed: the close stands (it is committed),
    and a worker builds the snapshot later (schedules.py), as does `pulse snapshot`."""
    # SQLite: a read this request began before the close sees the file as it was then, without
    # the responses that arrived since; end it, so that what the build reads is today's.
    storage.end_request_reads()
    try:
        n = build_final_snapshot(survey_id, version)
    except Exception:  # noqa: BLE001 - the close is committed: say so, and leave the snapshot owed
        log.exception("the final snapshot of %s@%s failed; it stays owed and is built again", survey_id, version)
        return (
            " Its final snapshot could not be built just now (see the log): a running Pulse builds it "
            "again by itself, as does `pulse snapshot`."
        )
    return f" Final snapshot: {n} responses." if n is not None else ""


def build_final_snapshot(survey_id: str, version: int) -> int | None:
    """Build the final snapshot a closed survey still owes; its N, or None when nothing was built
    (nothing owed, another worker or host took it, or too few responses to need one).

    Closing a survey the first time owes a final snapshot over every response it received: the
    one snapshot that needs no minimum of new responses; none follows it while the survey stays
    closed. A survey reopened and closed again keeps the usual growth rule. The claim (emptying
    what is owed) and the snapshot are one transaction, so exactly one of any number of workers
    that try builds it, and a failed build leaves it owed.
    """
    survey = definition(storage.reader(), survey_id, version)
    if survey is None:
        return None
    rules = snapshots.disclosure_rules()
    config = current_app.config

    def claim(db: Session) -> bool:
        owed = program_queries.take_final_snapshot(db, survey_id, version)
        if owed is None:
            return False
        total = response_queries.count_responses(db, survey_id, version)
        pending = response_queries.count_responses(db, survey_id, version, pending_only=True)
        if total < rules.release_threshold or pending == 0:
            return False  # nothing to publish, or the latest snapshot counts every response already
        if owed == "again":
            last = snapshot_queries.latest_snapshot_responses(db, survey_id, version)
            return pending >= snapshots.min_new(config, last)
        return True

    try:
        return snapshots.rebuild(storage.engine(), survey, rules, full=True, claim=claim)
    except Exception as exc:
        if snapshots.lost_race(exc):  # PostgreSQL: another worker took it first, and built it
            return None
        raise


def final_snapshot_again(survey_id: str, version: int) -> str | None:
    """Build a final snapshot still owed (its first build failed); a sentence saying so, or None
    when nothing was built (schedules.py logs and keeps what each call did)."""
    n = build_final_snapshot(survey_id, version)
    return None if n is None else f"{survey_label(survey_id, version)}: final snapshot: {n} responses."


def survey_label(survey_id: str, version: int) -> str:
    """A survey as sentences about it name it: "Title (id@version)"."""
    survey = definition(storage.reader(), survey_id, version)
    return f"{survey.title} ({survey_id}@{version})" if survey else f"{survey_id}@{version}"


def owes_final_snapshot(survey: Survey) -> bool:
    """Whether this closed survey still owes its final snapshot."""
    return (survey.id, survey.version) in program_queries.owed_final_snapshots(storage.reader())


def _forget_current_survey() -> None:
    state.of().cache.clear_program()
    g.pop("pulse_survey", None)


# ------------------------------------------------------------------ at start


def ensure_started() -> None:
    """Run start() once per worker, before it first needs the program (not at create_app: a
    command such as `pulse restore` needs the database left exactly as it found it)."""
    pulse = state.of()
    if not pulse.started:
        start(current_app._get_current_object())
        pulse.started = True
        # A read transaction this request began before (SQLite reads one snapshot of the file
        # per transaction) would not see what start() stored: end it.
        storage.end_request_reads()


def _republish_outdated() -> None:
    """Publish again, from their counts, the latest snapshots stored in an older shape of the
    published body (after an upgrade that changed it): pages and the API then serve every
    documented field. The same set of responses draws the same noise for the same cells."""
    db = storage.reader()
    outdated = snapshot_queries.outdated_snapshots(db, publishing.SHAPE)
    storage.end_request_reads()
    for survey_id, version in outdated:
        survey = definition(storage.reader(), survey_id, version)
        if survey is not None:
            snapshots.republish(storage.engine(), survey, snapshots.disclosure_rules(), outdated_only=True)


def start(app: Any) -> None:
    """Add the PULSE_QUESTIONS survey if it is not stored yet, and make it current if none is.

    Run once per worker before it first needs the program, and again if it finds no current
    survey. A database from before surveys were stored keeps its responses, snapshots
    and keys: they are stored under this (id, version) already, and its state row (if the
    organisers ever opened, closed or released it) keeps what they decided.
    """
    survey, text = app.config["SURVEY"], app.config["SURVEY_TEXT"]
    with app.app_context():
        try:
            _store(survey, text, None)
        except Conflict as exc:
            # The PULSE_QUESTIONS file changed under its stored version: a fault of the file, told
            # as every fault of a survey file is (a SurveyError, in the words `pulse survey add` uses).
            raise SurveyError(stored_survey_differs(**exc.data)) from None
        _republish_outdated()
        with storage.writer() as db:
            program_queries.lock_program(db)
            if program_queries.current_survey_key(db) is not None:
                return
            st = program_queries.survey_state(db, survey.id, survey.version, lock=True)
            if st is None:
                program_queries.set_survey_state(
                    db, survey.id, survey.version, is_open=True, current=True, opened_week=storage.iso_week()
                )
                program_queries.record_event(db, "survey_opened", survey_id=survey.id, survey_version=survey.version)
            else:
                st.current = True
                st.opened_week = st.opened_week or storage.iso_week()
            program_queries.program_changed(db)
        state.of(app).cache.clear_program()
