"""Schedules: a survey opens and closes by itself, a round closes by itself, exactly once across
workers; times read and shown in PULSE_TIMEZONE; bad input refused with nothing changed."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest
from sqlalchemy import create_engine, func, select, text

from survey_app import (
    program,
    program_queries,
    schedule_times,
    schedules,
    snapshot_queries,
    snapshots,
    state,
    storage,
    wording,
)
from survey_app.community import queries as cs
from survey_app.community import voting
from survey_app.domain_errors import Conflict, Invalid
from survey_app.models import Snapshot, StoredSurvey

from .helpers import (
    ADMIN_PASSWORD,
    ROOT,
    LiveServer,
    admin_login,
    clinic,
    form_tokens,
    make_app,
    request,
    run_pulse,
    submit_api,
    wait_until,
)

COMFORT_FILE = ROOT / "surveys" / "patient-comfort.yaml"
AFTERCARE = ("pulse-aftercare", 1)
COMFORT = ("patient-comfort", 1)
BERLIN = schedule_times.zone("Europe/Berlin")
NEXT_YEAR = dt.date.today().year + 1


def iso_in(seconds: float) -> str:
    """A time `seconds` from now, as an organiser may type it (ISO 8601 in UTC, to the second)."""
    return schedule_times.iso_utc(int(time.time() + seconds))


def add_comfort(app) -> None:
    with app.app_context():
        program.add(COMFORT_FILE)


def stored(app, key=AFTERCARE) -> tuple[int | None, int | None]:
    with app.app_context():
        row = storage.reader().get(StoredSurvey, key)
        return row.opens_at, row.closes_at


def current_and_open(app) -> tuple[tuple[str, int] | None, bool]:
    """(the current survey, whether it is open), read without a request (a request would check the schedule)."""
    with app.app_context():
        db = storage.reader()
        key = program_queries.current_survey_key(db)
        return key, program_queries.read_survey_state(db, *key)[0]


def in_app(app, call, *args):
    with app.app_context():
        return call(*args)


# ------------------------------------------------------------------ reading and checking times


def test_a_time_is_read_in_the_time_zone_and_stored_in_utc():
    winter = schedule_times.parse("2027-01-31 17:00", BERLIN, "closes")
    assert schedule_times.iso_utc(winter) == "2027-01-31T16:00:00Z"
    summer = schedule_times.parse("2027-07-31T17:00", BERLIN, "closes")
    assert schedule_times.iso_utc(summer) == "2027-07-31T15:00:00Z"
    # A time with its own offset means what it says, whatever the zone.
    assert schedule_times.parse("2027-01-31T17:00Z", BERLIN, "opens") == winter + 3600
    assert schedule_times.parse("2027-01-31T17:00:00+01:00", BERLIN, "opens") == winter
    # A bare date is the start of that day; spaces around are forgiven.
    assert schedule_times.iso_utc(schedule_times.parse(" 2027-02-01 ", BERLIN, "opens")) == "2027-01-31T23:00:00Z"


@pytest.mark.parametrize(
    "text", ["tomorrow", "", "2027-02-30 10:00", "2027-01-31 25:00", "31/01/2027", "2027-01-31 17:00 CET", "x" * 200]
)
def test_a_bad_time_is_refused_naming_its_field(text):
    with pytest.raises(Invalid) as refused:
        schedule_times.parse(text, BERLIN, "closes")
    assert refused.value.reason == "schedule_format" and refused.value.data["field"] == "closes"


def test_a_schedule_lies_ahead_and_closes_after_it_opens():
    now = 1_800_000_000
    schedule_times.check(now + 60, now + 120, now)
    schedule_times.check(None, now + 1, now)
    for opens, closes, reason, field in [
        (now - 1, None, "schedule_past", "opens"),
        (None, now, "schedule_past", "closes"),
        (now + 120, now + 60, "schedule_order", None),
        (now + 60, now + 60, "schedule_order", None),
    ]:
        with pytest.raises(Invalid) as refused:
            schedule_times.check(opens, closes, now)
        assert refused.value.reason == reason and refused.value.data.get("field") == field


def test_a_schedule_reaches_at_most_three_years_ahead():
    """A time further ahead is a typo in the year (2207 for 2027), and near year 9999 one that no
    page could show: refused, naming the field."""
    now = 1_800_000_000
    three_years = 1096 * 86400
    schedule_times.check(now + 60, now + three_years, now)
    far = schedule_times.parse("9999-12-31 23:59-14:00", BERLIN, "opens")  # 10000-01-01 13:59 UTC
    for opens, closes, field in [
        (now + three_years + 1, None, "opens"),
        (None, now + three_years + 1, "closes"),
        (far, None, "opens"),
        (now + 60, far, "closes"),
    ]:
        with pytest.raises(Invalid) as refused:
            schedule_times.check(opens, closes, now)
        assert refused.value.reason == "schedule_far" and refused.value.data["field"] == field


def test_a_time_past_the_calendar_is_shown_not_raised():
    """Times stored before they were bounded (or written into the database by hand) are shown
    as the last day the calendar holds: no page, API answer or command fails on them."""
    far = schedule_times.parse("9999-12-31 23:59-14:00", BERLIN, "opens")
    assert schedule_times.iso_utc(far) == "9999-12-30T00:00:00Z"
    assert schedule_times.when(far, BERLIN, 1_800_000_000) == "30 December 9999, 01:00 CET"
    assert schedule_times.form_value(far, BERLIN) == "9999-12-30 01:00"
    assert schedule_times.iso_utc(-(10**13)) == "0001-01-02T00:00:00Z"


def test_a_time_is_said_in_words_with_the_year_only_when_it_is_not_this_year():
    seconds = schedule_times.parse("2027-01-31 17:00", BERLIN, "closes")
    in_2027 = schedule_times.parse("2027-06-01 12:00", BERLIN, "closes")
    assert schedule_times.day(seconds, BERLIN, in_2027) == "31 January"
    assert schedule_times.when(seconds, BERLIN, in_2027) == "31 January, 17:00 CET"
    assert schedule_times.when(seconds, BERLIN, in_2027 - 365 * 86400) == "31 January 2027, 17:00 CET"
    assert schedule_times.form_value(seconds, BERLIN) == "2027-01-31 17:00"


def last_sunday(year: int, month: int) -> dt.date:
    """The last Sunday of a month: when the clocks change in Europe (March forward, October back)."""
    day = dt.date(year, month, 31)
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)


SKIPPED = f"{last_sunday(NEXT_YEAR, 3)} 02:30"  # Berlin's clocks go from 02:00 to 03:00
TWICE = f"{last_sunday(NEXT_YEAR, 10)} 02:30"  # 02:30 CEST, then 02:30 CET an hour later


def test_a_local_time_the_clocks_skip_is_refused():
    """2:30 on the morning the clocks go forward does not exist: it was read as 3:30, silently."""
    with pytest.raises(Invalid) as refused:
        schedule_times.parse(SKIPPED, BERLIN, "closes")
    assert refused.value.reason == "schedule_skipped" and refused.value.data["field"] == "closes"
    said = wording.message(refused.value)
    assert f"{SKIPPED!r} does not exist in Europe/Berlin" in said and "clocks go forward" in said
    # With its offset a time means what it says.
    assert schedule_times.parse(SKIPPED + "+01:00", BERLIN, "closes") == schedule_times.parse(
        SKIPPED.replace("02:30", "01:30") + "Z", BERLIN, "closes"
    )


def test_a_local_time_the_clocks_pass_twice_needs_its_offset():
    """2:30 on the morning the clocks go back happens twice: nothing chooses one silently; the
    message gives both, and a stored time in that hour is shown with its offset, so a form saved
    unchanged keeps the instant."""
    with pytest.raises(Invalid) as refused:
        schedule_times.parse(TWICE, BERLIN, "opens")
    assert refused.value.reason == "schedule_twice" and refused.value.data["field"] == "opens"
    said = wording.message(refused.value)
    assert f"{TWICE}+02:00 (CEST, the first)" in said and f"{TWICE}+01:00 (CET, the second)" in said
    first = schedule_times.parse(TWICE + "+02:00", BERLIN, "opens")
    second = schedule_times.parse(TWICE + "+01:00", BERLIN, "opens")
    assert second - first == 3600
    for seconds, offset, zone in ((first, "+02:00", "CEST"), (second, "+01:00", "CET")):
        assert schedule_times.form_value(seconds, BERLIN) == TWICE + offset
        assert schedule_times.parse(schedule_times.form_value(seconds, BERLIN), BERLIN, "opens") == seconds
        assert schedule_times.when(seconds, BERLIN).endswith(f", 02:30 {zone}")
    # An hour later the time of day is unambiguous again: no offset to read.
    assert schedule_times.form_value(second + 3600, BERLIN) == TWICE.replace("02:30", "03:30")


def test_pulse_timezone_must_name_a_zone(monkeypatch):
    from survey_app.settings import SettingsError, read_settings

    assert read_settings({})["PULSE_TIMEZONE"] == "UTC"
    assert read_settings({"PULSE_TIMEZONE": "Europe/Berlin"})["PULSE_TIMEZONE"] == "Europe/Berlin"
    for bad in ("Mars/Olympus", "../etc/passwd"):
        with pytest.raises(SettingsError, match="PULSE_TIMEZONE"):
            read_settings({"PULSE_TIMEZONE": bad})


# ------------------------------------------------------------------ the command line


def test_pulse_survey_schedule_sets_shows_and_clears(db_url):
    env = {"PULSE_TIMEZONE": "Europe/Berlin"}
    assert run_pulse(db_url, "survey", "add", str(COMFORT_FILE)).exit_code == 0
    done = run_pulse(
        db_url,
        "survey",
        "schedule",
        "patient-comfort",
        "--opens",
        f"{NEXT_YEAR}-01-31 17:00",
        "--closes",
        f"{NEXT_YEAR}-02-28 17:00",
        env=env,
    )
    assert done.exit_code == 0, done.output
    assert f"opens by itself on 31 January {NEXT_YEAR}, 17:00 CET" in done.output
    assert f"closes by itself on 28 February {NEXT_YEAR}, 17:00 CET" in done.output
    listed = run_pulse(db_url, "survey", "list", env=env).output
    assert f"opens {NEXT_YEAR}-01-31 17:00 CET, closes {NEXT_YEAR}-02-28 17:00 CET" in listed
    app = make_app(db_url)
    opens = schedule_times.parse(f"{NEXT_YEAR}-01-31T16:00Z", BERLIN, "opens")
    assert stored(app, COMFORT) == (opens, opens + 28 * 86400)
    # Only the closing changes; then both are cleared.
    moved = run_pulse(db_url, "survey", "schedule", "patient-comfort@1", "--closes", f"{NEXT_YEAR}-03-01T00:00Z")
    assert moved.exit_code == 0, moved.output
    assert stored(app, COMFORT)[0] == opens
    cleared = run_pulse(db_url, "survey", "schedule", "patient-comfort", "--opens", "none", "--closes", "none")
    assert cleared.exit_code == 0 and "nothing scheduled" in cleared.output
    assert stored(app, COMFORT) == (None, None)
    state.of(app).close()


@pytest.mark.parametrize(
    "args, says",
    [
        (["nosuch", "--opens", f"{NEXT_YEAR}-01-01 10:00"], "There is no stored survey 'nosuch'"),
        (["patient-comfort@x", "--opens", f"{NEXT_YEAR}-01-01 10:00"], "the version after @ must be"),
        (["patient-comfort", "--opens", "next friday"], "'next friday' is not a time"),
        (["patient-comfort", "--opens", "2020-01-01 10:00"], "The time it opens is already past"),
        (
            ["patient-comfort", "--opens", f"{NEXT_YEAR}-02-01 10:00", "--closes", f"{NEXT_YEAR}-01-01 10:00"],
            "must come after",
        ),
        (["patient-comfort", "--closes", f"{NEXT_YEAR}-01-01 10:00"], "is not open and not scheduled to open"),
        (["pulse-aftercare", "--opens", f"{NEXT_YEAR}-01-01 10:00"], "is open already"),
        (["patient-comfort", "--opens", "9999-12-31 23:59-14:00"], "The time it opens is more than three years ahead"),
        (["pulse-aftercare", "--closes", "9999-12-31 23:59-14:00"], "The time it closes is more than three years"),
        (["pulse-aftercare", "--closes", f"{NEXT_YEAR + 4}-01-01 10:00"], "more than three years ahead"),
    ],
)
def test_pulse_survey_schedule_refuses_in_one_line_and_changes_nothing(db_url, args, says):
    assert run_pulse(db_url, "survey", "add", str(COMFORT_FILE)).exit_code == 0
    refused = run_pulse(db_url, "survey", "schedule", *args)
    assert refused.exit_code == 1
    assert says in refused.output and refused.output.count("\n") == 1 and "Traceback" not in refused.output
    app = make_app(db_url)
    assert stored(app, COMFORT) == (None, None) and stored(app) == (None, None)
    state.of(app).close()


def test_pulse_survey_schedule_needs_a_time(db_url):
    refused = run_pulse(db_url, "survey", "schedule", "pulse-aftercare")
    assert refused.exit_code == 2 and "give --opens TIME, --closes TIME or both" in refused.output


def test_pulse_round_open_and_schedule_set_its_close(db_url):
    app = make_app(db_url)
    with app.app_context():
        for title in ("Aftercare by phone", "Integration groups"):
            voting.moderate(voting.propose(title, ""), "approve")
    refused = run_pulse(db_url, "round", "schedule", "--closes", f"{NEXT_YEAR}-01-31 17:00")
    assert refused.exit_code == 1 and "No round is open." in refused.output
    opened = run_pulse(db_url, "round", "open", "--closes", f"{NEXT_YEAR}-01-31 17:00")
    assert opened.exit_code == 0, opened.output
    assert f"It closes by itself on 31 January {NEXT_YEAR}, 17:00 UTC." in opened.output
    bad = run_pulse(db_url, "round", "schedule", "--closes", "2001-01-01 00:00")
    assert bad.exit_code == 1 and "already past" in bad.output
    with app.app_context():
        assert cs.next_round_close(storage.reader()) == schedule_times.parse(f"{NEXT_YEAR}-01-31T17:00Z", BERLIN, "c")
    cleared = run_pulse(db_url, "round", "schedule", "--closes", "none")
    assert cleared.exit_code == 0 and "nothing scheduled" in cleared.output
    with app.app_context():
        assert cs.next_round_close(storage.reader()) is None
    state.of(app).close()


# ------------------------------------------------------------------ by itself, on time


def test_a_scheduled_opening_happens_by_itself(db_url):
    app = make_app(db_url)
    client = app.test_client()
    add_comfort(app)
    assert client.get("/").status_code == 200  # the worker's first request: its scheduler is made
    message = in_app(app, schedules.schedule_survey, "patient-comfort", iso_in(2), None)
    assert "opens by itself" in message
    assert current_and_open(app) == (AFTERCARE, True)
    # No request, no button: the worker's timer opens it, which makes it current and closes the other.
    done = wait_until(lambda: list(state.of(app).schedule.done))
    assert done[0].startswith("The Pulse of Patient Comfort (patient-comfort@1) is current and open")
    assert current_and_open(app) == (COMFORT, True)
    assert stored(app, COMFORT) == (None, None)
    with app.app_context():
        assert program_queries.read_survey_state(storage.reader(), *AFTERCARE) == (False, False)
    assert "The Pulse of Patient Comfort" in client.get("/").get_data(as_text=True)
    # Opened through the organisers' own code: the feed announces it as it does an opening by hand.
    assert "Survey open: The Pulse of Patient Comfort (version 1)" in client.get("/feed.atom").get_data(as_text=True)
    state.of(app).close()


def test_a_due_time_is_acted_on_before_the_page_that_finds_it(db_url):
    """A worker that has no timer for it (the time was set elsewhere, and no request came since)
    acts on the request that finds it due, so no page shows a survey open past its close."""
    app = make_app(db_url)
    client = app.test_client()
    due = int(time.time()) + 3
    closes = schedule_times.iso_utc(due)
    assert run_pulse(db_url, "survey", "schedule", "pulse-aftercare", "--closes", closes).exit_code == 0
    assert state.of(app).schedule is None
    wait_until(lambda: time.time() >= due)
    assert "This survey is closed" in client.get("/").get_data(as_text=True)
    assert current_and_open(app) == (AFTERCARE, False)
    state.of(app).close()


def test_a_serving_worker_learns_of_a_time_set_elsewhere_within_its_poll(db_url):
    """A serving worker with no request to wake it asks the database every
    PULSE_SCHEDULE_POLL_SECONDS, so a close set from the command line happens by itself."""
    app = make_app(db_url, PULSE_SCHEDULE_POLL_SECONDS=0.5)
    schedules.scheduler(app).serve()  # as `pulse serve` starts it in each worker
    due = int(time.time()) + 2
    closes = schedule_times.iso_utc(due)
    assert run_pulse(db_url, "survey", "schedule", "pulse-aftercare", "--closes", closes).exit_code == 0
    # With the default 15-second poll this worker would not know of it for up to 15 s.
    done = wait_until(lambda: list(state.of(app).schedule.done), timeout=6)
    assert done[0].startswith("The Pulse of Clinical Aftercare (pulse-aftercare@1) is closed.")
    assert time.time() >= due
    state.of(app).close()


def test_a_scheduled_close_that_fails_is_tried_again_later_not_at_once(db_url, monkeypatch):
    app = make_app(db_url)
    client = app.test_client()
    client.get("/")
    tries = []
    close = program.close_scheduled

    def failing_once(*args):
        tries.append(time.monotonic())
        if len(tries) == 1:
            raise RuntimeError("the database went away")
        return close(*args)

    monkeypatch.setattr(program, "close_scheduled", failing_once)
    monkeypatch.setattr(schedules, "RETRY_SECONDS", 1.5)  # 5 s when serving; the wait is the same code
    in_app(app, schedules.schedule_survey, "pulse-aftercare", None, iso_in(2))
    wait_until(lambda: list(state.of(app).schedule.done), timeout=schedules.RETRY_SECONDS + 15)
    assert current_and_open(app) == (AFTERCARE, False)
    assert len(tries) == 2 and tries[1] - tries[0] >= schedules.RETRY_SECONDS - 0.5
    state.of(app).close()


def fill_then_one_more(app, client) -> int:
    """10 responses and their first snapshot, then one more that no snapshot is due for; how many
    snapshots are stored (older ones are dropped as a new one is stored)."""
    for i in range(10):
        assert submit_api(client, clinic(i)).status_code == 201
    assert submit_api(client, clinic(10)).status_code == 201
    with app.app_context():
        latest = snapshot_queries.latest_snapshot(storage.reader(), *AFTERCARE)
        assert latest.responses == 10
        return 1


def latest_snapshot(app) -> tuple[int, int]:
    """(snapshots stored, responses the latest counts) of the survey."""
    with app.app_context():
        db = storage.reader()
        latest = snapshot_queries.latest_snapshot(db, *AFTERCARE)
        return db.scalar(select(func.count()).select_from(Snapshot)), latest.responses


def test_a_scheduled_close_builds_the_final_snapshot_by_itself(db_url):
    app = make_app(db_url)
    client = app.test_client()
    first = fill_then_one_more(app, client)
    in_app(app, schedules.schedule_survey, "pulse-aftercare", None, iso_in(2))
    assert "This survey is open until" in client.get("/").get_data(as_text=True)
    done = wait_until(lambda: list(state.of(app).schedule.done))  # closed, and the final snapshot built
    assert done == ["The Pulse of Clinical Aftercare (pulse-aftercare@1) is closed. Final snapshot: 11 responses."]
    assert current_and_open(app) == (AFTERCARE, False)
    assert latest_snapshot(app) == (first, 11)  # the final snapshot, over every response (it replaced the first)
    assert stored(app) == (None, None)
    assert submit_api(client, clinic(11)).status_code == 409
    state.of(app).close()


def failing_once(monkeypatch) -> list[dict]:
    """Make the next snapshot build fail (the database away for a moment); the builds tried."""
    tries: list[dict] = []
    rebuild = snapshots.rebuild

    def flaky(*args, **kwargs):
        tries.append(kwargs)
        if len(tries) == 1:
            raise RuntimeError("the database went away during the final snapshot")
        return rebuild(*args, **kwargs)

    monkeypatch.setattr(snapshots, "rebuild", flaky)
    return tries


@pytest.mark.both_databases
def test_a_scheduled_close_whose_final_snapshot_fails_gets_it_built_again_by_itself(db_url, monkeypatch):
    """The close is committed before its final snapshot is built: a build that fails then is owed
    (durably), and the timer builds it later, rather than leaving the survey closed with an old N."""
    app = make_app(db_url)
    client = app.test_client()
    first = fill_then_one_more(app, client)
    tries = failing_once(monkeypatch)
    monkeypatch.setattr(schedules, "FINAL_SNAPSHOT_RETRY_SECONDS", 1.0)  # 30 s when serving; the same code
    client.get("/")
    in_app(app, schedules.schedule_survey, "pulse-aftercare", None, iso_in(2))
    wait_until(lambda: latest_snapshot(app) == (first, 11), timeout=20)
    assert current_and_open(app) == (AFTERCARE, False)
    assert [t.get("full") for t in tries] == [True, True]
    done = list(state.of(app).schedule.done)
    assert done[0].startswith("The Pulse of Clinical Aftercare (pulse-aftercare@1) is closed.")
    assert "final snapshot could not be built" in done[0]
    assert done[1] == "The Pulse of Clinical Aftercare (pulse-aftercare@1): final snapshot: 11 responses."
    # Built once: nothing is owed any more, and no later look builds it again.
    with app.app_context():
        assert program_queries.owed_final_snapshots(storage.reader()) == []
    state.of(app).close()


def test_a_close_by_hand_whose_final_snapshot_fails_gets_it_built_by_a_serving_worker(db_url, monkeypatch):
    """`pulse survey close` and /admin close through program.close_survey: the same hole, the same fix."""
    app = make_app(db_url, PULSE_SCHEDULE_POLL_SECONDS=0.5)
    client = app.test_client()
    first = fill_then_one_more(app, client)
    failing_once(monkeypatch)
    monkeypatch.setattr(schedules, "FINAL_SNAPSHOT_RETRY_SECONDS", 1.0)
    closed = run_pulse(db_url, "survey", "close")
    assert closed.exit_code == 0, closed.output
    assert "is closed." in closed.output and "final snapshot could not be built" in closed.output
    assert "Traceback" not in closed.output
    assert latest_snapshot(app) == (first, 10)
    schedules.scheduler(app).serve()  # a served worker, as `pulse serve` starts each
    wait_until(lambda: latest_snapshot(app) == (first, 11), timeout=20)
    assert list(state.of(app).schedule.done) == [
        "The Pulse of Clinical Aftercare (pulse-aftercare@1): final snapshot: 11 responses."
    ]
    state.of(app).close()


def test_pulse_snapshot_builds_an_owed_final_snapshot(db_url, monkeypatch):
    """Without a running Pulse, the organisers' `pulse snapshot` builds what the close still owes
    (the usual rule would refuse it: 1 new response, 10 needed)."""
    app = make_app(db_url)
    first = fill_then_one_more(app, app.test_client())
    failing_once(monkeypatch)
    assert "final snapshot could not be built" in in_app(app, program.close_survey)
    built = run_pulse(db_url, "snapshot")
    assert built.exit_code == 0, built.output
    assert "Snapshot rebuilt: 11 responses." in built.output
    assert latest_snapshot(app) == (first, 11)
    again = run_pulse(db_url, "snapshot")  # owed no more: the usual rule again
    assert again.exit_code == 1 and "Traceback" not in again.output
    state.of(app).close()


@pytest.mark.both_databases
def test_an_owed_final_snapshot_is_built_once_however_many_try(db_url, monkeypatch):
    """Two hosts and six threads retry the same owed final snapshot at once: one builds it."""
    apps = [make_app(db_url), make_app(db_url)]
    first = fill_then_one_more(apps[0], apps[0].test_client())
    failing_once(monkeypatch)
    in_app(apps[0], program.close_survey)
    stored_snapshots = []
    save = snapshot_queries.save_snapshot
    monkeypatch.setattr(
        snapshot_queries, "save_snapshot", lambda db, *a, **k: stored_snapshots.append(a[2]) or save(db, *a, **k)
    )
    start = threading.Barrier(6)
    results: list = []

    def retry(app):
        start.wait()
        with app.app_context():
            results.append(program.build_final_snapshot(*AFTERCARE))

    threads = [threading.Thread(target=retry, args=(apps[i % 2],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert stored_snapshots == [11]
    assert sorted(results, key=str) == [11, None, None, None, None, None]
    assert latest_snapshot(apps[1]) == (first, 11)
    for a in apps:
        state.of(a).close()


@pytest.mark.both_databases
def test_two_servers_on_one_database_close_it_exactly_once(db_url, monkeypatch):
    """Two apps with their own engines and timers on one database (two hosts), and eight threads
    besides that all try at the due moment: one close, one final snapshot."""
    apps = [make_app(db_url), make_app(db_url)]
    clients = [a.test_client() for a in apps]
    first = fill_then_one_more(apps[0], clients[0])
    builds = []
    rebuild = snapshots.rebuild
    monkeypatch.setattr(snapshots, "rebuild", lambda *a, **k: builds.append(k) or rebuild(*a, **k))
    for c in clients:
        c.get("/")  # each host's scheduler is made and looks at the database
    due = int(time.time()) + 2
    in_app(apps[0], schedules.schedule_survey, "pulse-aftercare", None, schedule_times.iso_utc(due))
    state.of(apps[1]).schedule.refresh()  # the other host learns of it (as its next poll would)
    assert [state.of(a).schedule.next_due for a in apps] == [due, due]

    start = threading.Barrier(8)
    results: list[list[str]] = []

    def race(app):
        start.wait()
        while time.time() < due:
            time.sleep(0.01)
        results.append(schedules.run_due(app))

    threads = [threading.Thread(target=race, args=(apps[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wait_until(lambda: all(state.of(a).schedule.next_due is None for a in apps))
    closes = [m for r in results for m in r] + [m for a in apps for m in state.of(a).schedule.done]
    assert len(closes) == 1 and closes[0].startswith("The Pulse of Clinical Aftercare (pulse-aftercare@1) is closed.")
    assert "Final snapshot: 11 responses." in closes[0]
    assert [b.get("full") for b in builds] == [True]  # the one final snapshot
    assert latest_snapshot(apps[1]) == (first, 11)
    assert current_and_open(apps[1]) == (AFTERCARE, False)
    for a in apps:
        state.of(a).close()


def test_a_scheduled_round_close_tallies_and_chooses_by_itself(db_url):
    app = make_app(db_url)
    client = app.test_client()
    key = submit_api(client).get_json()["results_key"]
    with app.app_context():
        topics = [voting.propose(t, "") for t in ("Aftercare by phone", "Integration groups")]
        for topic in topics:
            voting.moderate(topic, "approve")
    client.get("/")
    in_app(app, schedules.open_round, iso_in(2))
    page = client.get("/topics").get_data(as_text=True)
    assert "Voting is open until" in page
    assert (
        client.put("/api/v1/ballot", json={"approve": [topics[1]]}, headers={"X-Results-Key": key}).status_code == 200
    )
    wait_until(lambda: client.get("/api/v1/topics").get_json()["round"]["status"] == "closed")
    assert client.get("/api/v1/topics").get_json()["round"]["chosen"] == topics[1]
    assert state.of(app).schedule.done[-1] == "Round 1 is closed: 1 ballot."
    state.of(app).close()


def test_an_opening_by_hand_ends_its_scheduled_opening(app):
    add_comfort(app)
    in_app(app, schedules.schedule_survey, "patient-comfort", f"{NEXT_YEAR}-01-31 17:00", f"{NEXT_YEAR}-02-28 17:00")
    in_app(app, program.open_survey, "patient-comfort")
    assert stored(app, COMFORT)[0] is None and stored(app, COMFORT)[1] is not None
    in_app(app, program.close_survey)
    assert stored(app, COMFORT) == (None, None)


def test_refusals_change_nothing(app):
    add_comfort(app)
    in_app(app, schedules.schedule_survey, "patient-comfort", f"{NEXT_YEAR}-01-31 17:00", None)
    before = stored(app, COMFORT)
    with pytest.raises(Invalid):
        in_app(app, schedules.schedule_survey, "patient-comfort", None, f"{NEXT_YEAR}-01-01 17:00")
    with pytest.raises(Conflict):
        in_app(app, schedules.schedule_survey, "patient-comfort", "none", f"{NEXT_YEAR}-03-01 17:00")
    assert stored(app, COMFORT) == before


# ------------------------------------------------------------------ pages and the API


def test_the_landing_page_says_until_when_and_what_opens_next(db_url):
    app = make_app(db_url, PULSE_TIMEZONE="Europe/Berlin")
    client = app.test_client()
    add_comfort(app)
    in_app(app, schedules.schedule_survey, "pulse-aftercare", None, f"{NEXT_YEAR}-01-31 17:00")
    page = client.get("/").get_data(as_text=True)
    until = f'<time datetime="{NEXT_YEAR}-01-31T16:00:00Z">31 January {NEXT_YEAR}, 17:00 CET</time>'
    assert f"This survey is open until {until}." in page
    in_app(app, program.close_survey)
    in_app(app, schedules.schedule_survey, "patient-comfort", f"{NEXT_YEAR}-02-01 09:00", None)
    page = client.get("/").get_data(as_text=True)
    assert "This survey is closed" in page and "open until" not in page
    assert (
        "The next survey, The Pulse of Patient Comfort, opens on "
        f'<time datetime="{NEXT_YEAR}-02-01T08:00:00Z">1 February {NEXT_YEAR}, 09:00 CET</time>.' in page
    )
    archive = client.get("/surveys").get_data(as_text=True)
    assert "closed" in archive and "The Pulse of Patient Comfort" not in archive  # never opened: not public yet
    state.of(app).close()


def test_the_archive_shows_until_when_a_survey_is_open(app, client):
    in_app(app, schedules.schedule_survey, "pulse-aftercare", None, f"{NEXT_YEAR}-01-31 17:00")
    archive = client.get("/surveys").get_data(as_text=True)
    assert f'until <time datetime="{NEXT_YEAR}-01-31T17:00:00Z">31 January {NEXT_YEAR}</time>' in archive


def test_the_api_gives_each_survey_its_schedule_in_utc(app, client):
    nothing = {"opens": None, "closes": None}
    assert client.get("/api/v1/survey").get_json()["schedule"] == nothing
    in_app(app, schedules.schedule_survey, "pulse-aftercare", None, f"{NEXT_YEAR}-01-31 17:00")
    scheduled = {"opens": None, "closes": f"{NEXT_YEAR}-01-31T17:00:00Z"}
    assert client.get("/api/v1/survey").get_json()["schedule"] == scheduled
    assert client.get("/api/v1/surveys/pulse-aftercare/1").get_json()["schedule"] == scheduled
    [listed] = client.get("/api/v1/surveys").get_json()["surveys"]
    assert listed["schedule"] == scheduled
    document = client.get("/api/v1/openapi.json").get_json()
    schedule = document["components"]["schemas"]["Schedule"]
    assert set(schedule["required"]) == {"opens", "closes"}
    assert "schedule" in document["components"]["schemas"]["Survey"]["required"]


def test_the_api_gives_the_open_rounds_closing_time_in_utc(app, client):
    """GET /api/v1/topics: the round says when it closes by itself (a new key beside id, status and
    chosen; null when nothing is scheduled, and once it is closed), as /topics does."""
    with app.app_context():
        for title in ("Aftercare by phone", "Integration groups"):
            voting.moderate(voting.propose(title, ""), "approve")
        voting.open_round()
    assert client.get("/api/v1/topics").get_json()["round"] == {
        "id": 1,
        "status": "open",
        "chosen": None,
        "closes": None,
    }
    in_app(app, schedules.schedule_round, f"{NEXT_YEAR}-01-31 17:00")
    assert client.get("/api/v1/topics").get_json()["round"]["closes"] == f"{NEXT_YEAR}-01-31T17:00:00Z"
    document = client.get("/api/v1/openapi.json").get_json()
    described = document["components"]["schemas"]["Round"]["properties"]["closes"]
    assert described["type"] == ["string", "null"] and described["format"] == "date-time"
    assert described == document["components"]["schemas"]["Schedule"]["properties"]["closes"] | {
        "description": described["description"]
    }  # the same time as a survey's schedule gives
    # As GET /api/v1/topics lists a round, the key is always there (as "chosen" is).
    listed = document["components"]["schemas"]["Topics"]["properties"]["round"]
    assert {"required": ["chosen", "closes"]} in listed["oneOf"][0]["allOf"]
    with app.app_context():
        voting.close_round()
    closed = client.get("/api/v1/topics").get_json()["round"]
    assert closed["status"] == "closed" and closed["closes"] is None


def test_a_time_stored_past_the_calendar_breaks_no_page_and_no_command(app, db_url):
    """A time near year 9999 stored before times were bounded: `pulse survey list`, /admin, the
    landing page, /surveys and the API show it (as the calendar's last day) instead of failing."""
    client = admin_client(app)  # its requests store the PULSE_QUESTIONS survey
    add_comfort(app)
    far = schedule_times.parse("9999-12-31 23:59-14:00", BERLIN, "opens")
    with app.app_context(), storage.writer() as db:
        program_queries.stored_survey(db, *AFTERCARE).closes_at = far
        program_queries.stored_survey(db, *COMFORT).opens_at = far
    listed = run_pulse(db_url, "survey", "list")
    assert listed.exit_code == 0 and "closes 9999-12-30 00:00" in listed.output
    assert "opens 9999-12-30 00:00" in listed.output
    for path in ("/admin?survey=pulse-aftercare@1", "/admin?survey=patient-comfort@1", "/", "/surveys"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "30 December 9999" in page.get_data(as_text=True), path
    api = client.get("/api/v1/surveys/pulse-aftercare/1")
    assert api.status_code == 200 and api.get_json()["schedule"]["closes"] == "9999-12-30T00:00:00Z"
    assert client.get("/api/v1/surveys").status_code == 200


# ------------------------------------------------------------------ /admin


def admin_client(app):
    with app.app_context():
        from survey_app import admin_auth

        admin_auth.create_admin("ada", ADMIN_PASSWORD)
    client = app.test_client()
    assert admin_login(client).status_code == 303
    return client


def test_admin_schedules_a_survey_and_says_what_is_wrong(app):
    add_comfort(app)
    client = admin_client(app)
    page = client.get("/admin?survey=patient-comfort@1").get_data(as_text=True)
    assert 'id="schedule-opens"' in page and "Nothing is scheduled" in page
    tokens = form_tokens(page)
    good = {"survey": "patient-comfort@1", "opens": f"{NEXT_YEAR}-01-31 17:00", "closes": "", **tokens}
    done = client.post("/admin/schedule", data=good, follow_redirects=True).get_data(as_text=True)
    assert f"opens by itself on 31 January {NEXT_YEAR}, 17:00 UTC" in done
    assert f'value="{NEXT_YEAR}-01-31 17:00"' in done
    before = stored(app, COMFORT)
    for opens, closes, field, says in [
        ("soon", "", "opens", "is not a time"),
        (f"{NEXT_YEAR}-01-31 17:00", f"{NEXT_YEAR}-01-30 17:00", "closes", "closes: must come after the opening time"),
        ("2001-01-01 00:00", "", "opens", "opens: already past"),
    ]:
        bad = client.post(
            "/admin/schedule",
            data={"survey": "patient-comfort@1", "opens": opens, "closes": closes, **tokens},
        )
        # Refused on the page itself, with a 4xx: the sentence, the field at fault marked, and
        # what was typed still in the fields to be mended.
        assert bad.status_code == 422
        said = bad.get_data(as_text=True)
        assert says in said and 'role="alert" id="refused"' in said
        assert re.search(rf'id="schedule-{field}"[^>]*aria-invalid="true"', said)
        assert f'value="{opens}"' in said
        assert stored(app, COMFORT) == before
    unknown = client.post("/admin/schedule", data={"survey": "nope", "opens": "", "closes": "", **tokens})
    assert unknown.status_code == 404
    assert "There is no stored survey" in unknown.get_data(as_text=True)
    assert stored(app, COMFORT) == before


def test_admin_keeps_a_close_in_the_hour_the_clocks_pass_twice(db_url):
    """A close at 02:30 CET, the second 02:30 of the night the clocks go back: the form shows it
    with its offset, and saving the form unchanged keeps it (it was read back as CEST, an hour
    earlier); `pulse survey list` says which 02:30 it is. A time the clocks skip is refused."""
    app = make_app(db_url, PULSE_TIMEZONE="Europe/Berlin")
    client = admin_client(app)
    in_app(app, schedules.schedule_survey, "pulse-aftercare", None, TWICE + "+01:00")
    before = stored(app)
    page = client.get("/admin?survey=pulse-aftercare@1").get_data(as_text=True)
    assert f'value="{TWICE}+01:00"' in page and "02:30 CET" in page
    same = {"survey": "pulse-aftercare@1", "opens": "", "closes": f"{TWICE}+01:00", **form_tokens(page)}
    assert client.post("/admin/schedule", data=same).status_code == 303
    assert stored(app) == before
    listed = run_pulse(db_url, "survey", "list", env={"PULSE_TIMEZONE": "Europe/Berlin"}).output
    assert f"closes {TWICE} CET" in listed
    for typed, says in ((TWICE, "happens twice in Europe/Berlin"), (SKIPPED, "does not exist in Europe/Berlin")):
        bad = client.post("/admin/schedule", data=same | {"closes": typed})
        assert bad.status_code == 422 and says in bad.get_data(as_text=True)
        assert re.search(r'id="schedule-closes"[^>]*aria-invalid="true"', bad.get_data(as_text=True))
    assert stored(app) == before
    state.of(app).close()


def test_admin_schedules_the_open_rounds_close(app):
    with app.app_context():
        voting.moderate(voting.propose("Aftercare by phone", ""), "approve")
        voting.open_round()
    client = admin_client(app)
    page = client.get("/admin/topics").get_data(as_text=True)
    assert "Round 1 closes when you close it." in page
    done = client.post(
        "/admin/round/schedule",
        data={"closes": f"{NEXT_YEAR}-01-31 17:00", **form_tokens(page)},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert f"Round 1 closes by itself on 31 January {NEXT_YEAR}, 17:00 UTC." in done
    bad = client.post("/admin/round/schedule", data={"closes": "later", **form_tokens(page)})
    assert bad.status_code == 422
    said = bad.get_data(as_text=True)
    assert "is not a time" in said and 'value="later"' in said
    assert re.search(r'id="round-closes"[^>]*aria-invalid="true"', said)
    with app.app_context():
        assert cs.next_round_close(storage.reader()) is not None


# ------------------------------------------------------------------ backups


def test_a_backup_carries_the_schedule(app, tmp_path):
    from survey_app import backup

    add_comfort(app)
    in_app(app, schedules.schedule_survey, "patient-comfort", f"{NEXT_YEAR}-01-31 17:00", f"{NEXT_YEAR}-02-28 17:00")
    with app.app_context():
        voting.moderate(voting.propose("Aftercare by phone", ""), "approve")
    in_app(app, schedules.open_round, f"{NEXT_YEAR}-01-15 12:00")
    before = stored(app, COMFORT)
    with app.app_context():
        path = backup.write_backup(storage.engine(), tmp_path / "b.backup").path
    target = f"sqlite:///{tmp_path / 'restored.sqlite3'}"
    assert run_pulse(target, "restore", str(path)).exit_code == 0
    restored = make_app(target)
    assert stored(restored, COMFORT) == before
    with restored.app_context():
        closes = cs.next_round_close(storage.reader())
    assert schedule_times.iso_utc(closes) == f"{NEXT_YEAR}-01-15T12:00:00Z"
    state.of(restored).close()


@pytest.mark.both_databases
def test_a_due_time_is_claimed_once(app):
    add_comfort(app)
    in_app(app, schedules.schedule_survey, "patient-comfort", f"{NEXT_YEAR}-01-31 17:00", None)
    later = schedule_times.parse(f"{NEXT_YEAR}-02-01", BERLIN, "opens")
    claims = []
    for _ in range(2):
        with app.app_context(), storage.writer() as db:
            assert not program_queries.take_due(db, *COMFORT, "closes", later)  # nothing to close
            claims.append(program_queries.take_due(db, *COMFORT, "opens", later))
    assert claims == [True, False]
    with app.app_context(), storage.writer() as db:
        assert program_queries.due_surveys(db, later) == []


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_pulse_serve_hosts_close_it_on_time_with_no_request(tmp_path, db_url):
    """Two `pulse serve` hosts (two workers each) on one PostgreSQL; the close is scheduled from the
    command line, which no worker hears of, and no request comes after: it closes on time, once,
    with its final snapshot."""
    # Each worker asks the database every second (PULSE_SCHEDULE_POLL_SECONDS, 15 by default).
    env = {"DATABASE_URL": db_url, "PULSE_SNAPSHOT_MIN_INTERVAL": "0", "PULSE_SCHEDULE_POLL_SECONDS": "1"}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    hosts = [LiveServer(tmp_path / name, env=env, args=("--workers", "2")) for name in ("a", "b")]
    engine = create_engine(db_url)

    def seen() -> tuple:
        with engine.connect() as conn:
            is_open = conn.scalar(text("SELECT is_open FROM survey_states WHERE survey_id = 'pulse-aftercare'"))
            snapshots_ = conn.execute(text("SELECT responses FROM snapshots")).scalars().all()
            return is_open, snapshots_

    try:
        for i in range(11):
            status, _ = request(hosts[i % 2].url + "/api/v1/responses", "POST", {"answers": clinic(i)})
            assert status == 201
        assert seen() == (True, [10])
        due = int(time.time()) + 3
        scheduled = run_pulse(
            db_url,
            "survey",
            "schedule",
            "pulse-aftercare",
            "--closes",
            schedule_times.iso_utc(due),
            env={"SECRET_KEY": hosts[0].env["SECRET_KEY"]},
        )
        assert scheduled.exit_code == 0, scheduled.output
        # Each worker looks at the database at least every second, request or not: the close is
        # seen and done soon after it is due (a 15-second poll would miss this more often than not).
        assert wait_until(lambda: seen() == (False, [11]), timeout=12)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT closes_at FROM surveys WHERE id = 'pulse-aftercare'")) is None
    finally:
        for host in hosts:
            host.stop()
        engine.dispose()
    for host in hosts:
        assert "Traceback" not in host.output() and "failed" not in host.output()
