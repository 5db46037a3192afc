"""The kept reads (fast_reads.py): what Flask would answer, byte for byte but for the nonce, and
never once anything they were made from has changed."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from survey_app import fast_reads, keys, limits, program, schedules, snapshots, state, storage
from survey_app.participants import SESSION_KEYS

from .helpers import ROOT, clinic, fill, make_app, submit_api, wait_until
from .test_compression import decoded

pytestmark = pytest.mark.both_databases

NONCE = re.compile(r"nonce-([A-Za-z0-9_-]{22})")


def listening(app) -> None:
    """PostgreSQL: a kept read needs the listener; wait until it listens."""
    watch = state.of(app).watch
    if watch is not None:
        wait_until(watch.listening)


def normalized(response) -> tuple:
    """Status, headers and body with the response's nonce written as NONCE."""
    found = NONCE.search(response.headers.get("Content-Security-Policy", ""))
    nonce = found.group(1) if found else None

    def plain(text):
        return text.replace(nonce, "NONCE") if nonce else text

    headers = sorted((name, plain(value)) for name, value in response.headers.items())
    body = decoded(response)
    body = body.replace(nonce.encode(), b"NONCE") if nonce else body
    return response.status, headers, body


def kept(app, client, path: str, **options):
    """The first response to `path` served from a kept copy (a few requests: the first ones are Flask's)."""
    fast = fast_reads.of(app)
    for _ in range(4):
        before = fast.served
        response = client.get(path, **options)
        if fast.served == before + 1:
            return response
    raise AssertionError(f"{path} was never served from a kept copy")


def made_by_flask(app, client, path: str, **options):
    fast = fast_reads.of(app)
    fast.enabled = False
    try:
        return client.get(path, **options)
    finally:
        fast.enabled = True


@pytest.fixture
def released(app, client):
    listening(app)
    return fill(app, client, release=True)


def hold_key(app, client, key: str) -> None:
    """The session holds the key (and, after one page, the CSRF secret its forms need)."""
    with client.session_transaction() as session:
        session[SESSION_KEYS] = {"pulse-aftercare@1": key}
    assert client.get("/results").status_code == 200


@pytest.mark.parametrize(
    ("path", "keyed", "encoding"),
    [
        ("/results", False, None),
        ("/results", True, None),
        ("/results", False, "gzip"),
        ("/results", False, "gzip, deflate, br"),  # as browsers ask: gzip, the one that joins around a nonce
        ("/api/v1/benchmarks", False, None),
        ("/api/v1/benchmarks", False, "br"),
        ("/api/v1/benchmarks", False, "gzip"),
        ("/api/v1/benchmarks", True, None),
    ],
)
def test_a_kept_read_is_what_flask_answers_but_for_its_nonce(app, client, released, path, keyed, encoding):
    if keyed:
        hold_key(app, client, released[0])
    headers = {"Accept-Encoding": encoding} if encoding else {}
    again = kept(app, client, path, headers=headers)
    made = made_by_flask(app, client, path, headers=headers)
    assert made.status_code == 200
    assert normalized(again) == normalized(made)
    if encoding:
        assert again.headers["Content-Encoding"] in encoding
    if path == "/results":
        assert (b"Your clinic" in again.data) is keyed


def test_each_kept_page_has_its_own_nonce_in_its_header_and_its_scripts(app, client, released):
    first, second = kept(app, client, "/results"), kept(app, client, "/results")
    nonces = []
    for response in (first, second):
        nonce = NONCE.search(response.headers["Content-Security-Policy"]).group(1)
        in_body = set(re.findall(rb'nonce="([^"]+)"', response.data))
        assert in_body == {nonce.encode()}
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_a_snapshot_stored_by_another_worker_is_served_at_once(db_url, released, app, client):
    """The reader has served from its copy; the organisers' worker stores a snapshot; the reader's
    next page shows it (SQLite: the very next request; PostgreSQL: once its listener heard it)."""
    kept(app, client, "/results")
    kept(app, client, "/api/v1/benchmarks")
    organisers = make_app(db_url)
    try:
        for i in range(16, 20):
            assert submit_api(organisers.test_client(), clinic(i)).status_code == 201
        with organisers.app_context():
            survey = program.current_survey()
            snapshots.rebuild(storage.engine(), survey, snapshots.disclosure_rules(), full=True)
        if state.of(app).watch is None:
            assert "Figures from 20 responses" in client.get("/results").get_data(as_text=True)
            assert client.get("/api/v1/benchmarks").get_json()["responses"] == 20
        else:
            wait_until(lambda: "Figures from 20 responses" in client.get("/results").get_data(as_text=True))
            wait_until(lambda: client.get("/api/v1/benchmarks").get_json()["responses"] == 20)
        # And the new page is kept in turn.
        assert "Figures from 20 responses" in kept(app, client, "/results").get_data(as_text=True)
    finally:
        state.of(organisers).close()


def test_a_response_that_sets_a_cookie_is_not_kept(app, released):
    """A session without a CSRF secret gets one with the key holder's page (a cookie): every such
    response comes from Flask."""
    client = app.test_client(use_cookies=False)
    with app.test_client() as source:
        with source.session_transaction() as session:
            session[SESSION_KEYS] = {"pulse-aftercare@1": released[0]}
        cookie = source.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    # And a device cookie with a well-formed key of no response here: each page drops it.
    unknown = keys.new_results_key()
    fast = fast_reads.of(app)
    for header in (f"{app.config['SESSION_COOKIE_NAME']}={cookie}", f"pulse_key={unknown}"):
        for _ in range(4):
            response = client.get("/results", headers={"Cookie": header})
            assert "Set-Cookie" in response.headers
    assert fast.served == 0


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/results?x=1", {}),
        ("HEAD", "/results", {}),
        ("GET", "/api/v1/benchmarks", {"X-Results-Key": "AAAA"}),
        ("GET", "/api/v1/benchmarks", {"Authorization": "Basic eDp5"}),
        ("GET", "/", {}),
    ],
)
def test_other_requests_always_go_to_flask(app, client, released, method, path, headers):
    for _ in range(4):
        client.open(path, method=method, headers=headers)
    assert fast_reads.of(app).served == 0


def test_nothing_is_served_from_a_copy_while_the_scheduler_has_a_look_due(app, client, released):
    kept(app, client, "/results")
    scheduler = state.of(app).schedule
    scheduler.checked = float("-inf")  # its poll is due: the next request looks at the database first
    fast = fast_reads.of(app)
    before = fast.served
    client.get("/results")
    assert fast.served == before
    assert scheduler.checked > time.monotonic() - 5  # that request (Flask's) looked
    kept(app, client, "/results")


def test_a_scheduled_opening_shows_on_the_next_read(app, client, released):
    """A survey scheduled to open while the benchmarks are kept: the reads after its time show the
    survey that opened (in early access, so a 403), with nobody pressing a button."""
    with app.app_context():
        program.add(ROOT / "surveys" / "patient-comfort.yaml")
        opens = dt.datetime.fromtimestamp(int(time.time()) + 2, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        schedules.schedule_survey("patient-comfort@1", opens, None)
    kept(app, client, "/api/v1/benchmarks")
    wait_until(lambda: client.get("/api/v1/benchmarks").status_code == 403, timeout=15)


def test_a_key_holders_page_is_kept_no_longer_than_its_csrf_token(app, client, released, monkeypatch):
    hold_key(app, client, released[0])
    kept(app, client, "/results")
    later = time.monotonic() + 61
    monkeypatch.setattr("survey_app.limits._clock", lambda: later)
    fast = fast_reads.of(app)
    before = fast.served
    response = client.get("/results")
    assert fast.served == before  # Flask's: csrf_token() made the page's token anew
    assert response.status_code == 200


def test_a_session_cookie_past_its_lifetime_is_not_served_from_a_copy(app, client, released, monkeypatch):
    hold_key(app, client, released[0])
    kept(app, client, "/results")
    lifetime = app.permanent_session_lifetime.total_seconds()
    monkeypatch.setattr(fast_reads, "_wall", lambda: time.time() + lifetime + 1)
    fast = fast_reads.of(app)
    before = fast.served
    client.get("/results")
    assert fast.served == before


def test_a_worker_keeps_no_cookie_and_no_key(app, client, released):
    hold_key(app, client, released[0])
    kept(app, client, "/results")
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    fast = fast_reads.of(app)
    keys = repr(list(fast._kept().keys()))
    assert cookie not in keys
    assert released[0] not in keys


def test_a_limit_on_every_request_leaves_every_read_to_flask(db_url):
    """Pulse sets no limit on every request; were one set (Flask-Limiter's check before each
    request, as RATELIMIT_DEFAULT installs it), every read must reach it to be counted."""
    from flask import Flask

    plain = Flask(__name__)
    plain.before_request(limits.limiter._check_request_limit)
    wsgi = plain.wsgi_app
    fast_reads.install(plain)
    assert fast_reads.of(plain) is None and plain.wsgi_app == wsgi
    app = make_app(db_url)
    try:
        assert not limits.checks_every_request(app)
        assert isinstance(app.wsgi_app, fast_reads.FastReads)
    finally:
        state.of(app).close()
