"""On PostgreSQL, pages hear about new snapshots (LISTEN/NOTIFY) instead of asking per request."""

from __future__ import annotations

import threading
import types
import uuid

import psycopg
import pytest
from sqlalchemy import create_engine, text

from survey_app import program_queries, response_queries, snapshot_queries, snapshot_watch, state

from .helpers import clinic, fill, make_app, submit_api
from .helpers import wait_until as until

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def asked(monkeypatch):
    """How many times pages asked the database for the newest snapshot id (alone, with the
    current survey in the same query, or with a results key's response)."""
    calls = []
    for module, name in (
        (snapshot_queries, "newest_snapshot_id"),
        (program_queries, "current_survey_now"),
        (response_queries, "keyed_response"),
    ):

        def counting(*args, original=getattr(module, name)):
            calls.append(args)
            return original(*args)

        monkeypatch.setattr(module, name, counting)
    return calls


def responses_seen(client) -> int:
    return client.get("/api/v1/benchmarks").get_json()["responses"]


@pytest.fixture
def notes(monkeypatch):
    """Every notification the app's listener has read and acted on, in order (its connection, wrapped)."""
    payloads = []

    def connect(*args, **kwargs):
        conn = psycopg.connect(*args, **kwargs)
        read = conn.notifies

        def notifies(*args, **kwargs):
            for note in read(*args, **kwargs):
                yield note  # the listener counts it...
                payloads.append(note.payload)  # ...before it asks for the next one

        conn.notifies = notifies
        return conn

    monkeypatch.setattr(snapshot_watch, "psycopg", types.SimpleNamespace(connect=connect, Error=psycopg.Error))
    return payloads


def settled(watch, notes):
    """The listener's generation once it has heard every notification sent so far (the fill's
    snapshots, its release, the program's start): PostgreSQL delivers notifications in commit
    order, so once a marker sent now has been read, so has everything before it."""
    marker = f"settled-{uuid.uuid4().hex}"
    with psycopg.connect(watch._conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (watch._ping_channel, marker))
    until(lambda: marker in notes)
    return watch.generation()


def test_pages_ask_nothing_while_listening_and_hear_other_hosts(app, client, db_url, asked, notes):
    fill(app, client, release=True)
    watch = state.of(app).watch
    watch.generation()  # starts the listener
    until(watch.generation)
    settled(watch, notes)
    assert responses_seen(client) == 16
    asked.clear()
    for _ in range(20):
        assert responses_seen(client) == 16
    assert asked == []  # no query per request while nothing new was stored
    # Another host on the same database stores a newer snapshot.
    heard = watch.generation()
    other = make_app(db_url)
    other_client = other.test_client()
    for i in range(16):
        assert submit_api(other_client, clinic(i)).status_code == 201
    until(lambda: watch.generation() not in (None, heard))  # the notification arrived
    settled(watch, notes)
    assert responses_seen(client) == 32
    asked.clear()
    for _ in range(5):
        assert responses_seen(client) == 32
    assert asked == []
    state.of(other).close()


def test_a_dropped_listener_falls_back_to_asking_and_catches_up(app, client, db_url, asked, monkeypatch):
    # The listener may reconnect only when the test says so: the gap is a condition, not a time.
    reconnect = threading.Event()
    reconnect.set()

    def gated_connect(*args, **kwargs):
        reconnect.wait(30)
        return psycopg.connect(*args, **kwargs)

    monkeypatch.setattr(snapshot_watch, "psycopg", types.SimpleNamespace(connect=gated_connect, Error=psycopg.Error))
    monkeypatch.setattr(snapshot_watch, "RETRY_SECONDS", (0.05, 0.05))
    fill(app, client, release=True)
    watch = state.of(app).watch
    watch.generation()
    first = until(watch.generation)
    reconnect.clear()
    admin = create_engine(db_url)
    with admin.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": snapshot_watch.APPLICATION_NAME},
        ).scalar()
    assert ended >= 1  # this app's listener (and any a finished test has not yet closed)
    until(lambda: watch.generation() is None)
    # While nobody listens, a snapshot is stored: pages ask the database, so they see it at once.
    other = make_app(db_url)
    for i in range(16):
        assert submit_api(other.test_client(), clinic(i)).status_code == 201
    asked.clear()
    assert responses_seen(client) == 32
    assert len(asked) == 1
    # Reconnected, the count has moved on: the copy checked during the gap is checked once more.
    reconnect.set()
    again = until(watch.generation)
    assert again[0] == first[0] and again[1] > first[1]
    asked.clear()
    for _ in range(5):
        assert responses_seen(client) == 32
    assert len(asked) == 1
    admin.dispose()
    state.of(other).close()


def test_a_counted_participant_is_never_served_an_older_snapshot(app, client, db_url, asked, notes, monkeypatch):
    """A key holder's "you" subtracts their row from the tally: that tally must contain it."""
    fill(app, client, release=True)
    watch = state.of(app).watch
    watch.generation()
    until(watch.generation)
    settled(watch, notes)
    assert responses_seen(client) == 16
    monkeypatch.setattr(watch, "_heard", lambda what: None)  # the notification is still on its way
    other = make_app(db_url)
    other_client = other.test_client()
    late_key = submit_api(other_client, clinic(0)).get_json()["results_key"]
    for i in range(1, 16):
        assert submit_api(other_client, clinic(i)).status_code == 201  # a snapshot of 32 counts late_key
    asked.clear()
    assert responses_seen(client) == 16  # a reader may see the older snapshot for a moment
    assert asked == []
    mine = client.get("/api/v1/benchmarks", headers={"X-Results-Key": late_key}).get_json()
    assert mine["responses"] == 32 and len(asked) == 1  # checked: the snapshot that counts the row
    state.of(other).close()


def test_a_key_is_looked_up_once_while_listening_and_again_after_a_snapshot(app, client, db_url, asked, notes):
    """What a key's lookup reads (its response counted or not, its survey's newest snapshot)
    changes only with a stored snapshot: the worker keeps it while its listener hears them all,
    and asks again once one is heard, so the page counts the participant with the new snapshot."""
    fill(app, client, release=True)
    watch = state.of(app).watch
    watch.generation()
    until(watch.generation)
    settled(watch, notes)
    other = make_app(db_url)
    other_client = other.test_client()
    key = submit_api(other_client, clinic(0)).get_json()["results_key"]  # the 17th: no snapshot counts it
    settled(watch, notes)  # the other worker's start is heard
    headers = {"X-Results-Key": key}
    asked.clear()
    looked_up = lambda: [args for args in asked if len(args) == 2]  # noqa: E731  (probe, key hash)
    first = client.get("/api/v1/benchmarks", headers=headers).get_json()
    assert client.get("/api/v1/benchmarks", headers=headers).get_json() == first
    assert len(looked_up()) == 1 and first["responses"] == 16  # the second answered from memory
    for i in range(1, 16):
        assert submit_api(other_client, clinic(i)).status_code == 201  # a snapshot of 32 counts the key
    until(lambda: client.get("/api/v1/benchmarks", headers=headers).get_json()["responses"] == 32)
    assert len(looked_up()) >= 2  # the snapshot heard: asked again
    asked.clear()
    assert client.get("/api/v1/benchmarks", headers=headers).get_json()["responses"] == 32
    assert looked_up() == []
    state.of(other).close()


def test_a_listener_that_stops_hearing_itself_is_not_trusted(app, client, db_url, asked, monkeypatch):
    """A connection that goes deaf without an error (or a proxy that drops LISTEN) is caught."""
    monkeypatch.setattr(snapshot_watch, "HEARTBEAT_SECONDS", 0.3)
    monkeypatch.setattr(snapshot_watch, "RETRY_SECONDS", (30.0, 30.0))
    fill(app, client, release=True)
    watch = state.of(app).watch
    watch.generation()
    until(watch.generation)
    monkeypatch.setattr(watch, "_ping", lambda conn: None)  # its heartbeat never comes back
    until(lambda: watch.generation() is None)
    asked.clear()
    assert responses_seen(client) == 16
    assert len(asked) == 1  # not listening: every page asks the database again


@pytest.mark.parametrize(
    ("payload", "cleared"),
    [
        ("snapshot", ["clear_snapshots"]),
        ("program", ["clear_program"]),
        ("restore", ["clear_all"]),
        ("", ["clear_snapshots", "clear_program"]),  # a kind it does not know: both
    ],
)
def test_the_listener_calls_the_clear_of_what_it_heard(app, client, notes, monkeypatch, payload, cleared):
    """The listener evicts through the cache's clear_* calls, by the kind of change, and nothing else."""
    fill(app, client, release=True)
    watch = state.of(app).watch
    watch.generation()
    until(watch.generation)
    settled(watch, notes)
    cache = state.of(app).cache
    calls: list[str] = []
    for name in ("clear_snapshots", "clear_program", "clear_all"):
        monkeypatch.setattr(cache, name, lambda name=name: calls.append(name))
    with psycopg.connect(watch._conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (snapshot_watch.CHANNEL, payload))
    settled(watch, notes)
    assert calls == cleared


def test_a_reconnecting_listener_clears_what_it_may_have_missed(app, client, db_url, notes, monkeypatch):
    monkeypatch.setattr(snapshot_watch, "RETRY_SECONDS", (0.05, 0.05))
    fill(app, client, release=True)
    watch = state.of(app).watch
    watch.generation()
    until(watch.generation)
    settled(watch, notes)
    cache = state.of(app).cache
    calls: list[str] = []
    for name in ("clear_snapshots", "clear_program"):
        monkeypatch.setattr(cache, name, lambda name=name: calls.append(name))
    admin = create_engine(db_url)
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": snapshot_watch.APPLICATION_NAME},
        )
    until(lambda: len(calls) >= 2)
    assert calls == ["clear_snapshots", "clear_program"]
    admin.dispose()
