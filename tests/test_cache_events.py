"""Every event that changes what a worker keeps in memory, seen by another worker on the same database.

One app (the organisers' worker) makes each event happen; another (a worker that served the
pages just before) must then show it: at once on SQLite, which asks the database on each
request, and as soon as its listener hears the notification on PostgreSQL. The entries a
worker keeps (state.py): the served snapshot, the public results page built from it, its
figures, and the current survey.
"""

from __future__ import annotations

import pytest

from survey_app import admin_actions, backup, program, restore, snapshots, state, storage

from .helpers import ROOT, clinic, fill, make_app, submit_api, wait_until

# The events reach other workers by NOTIFY on PostgreSQL and by a query per request on SQLite.
pytestmark = pytest.mark.both_databases

COMFORT = ROOT / "surveys" / "patient-comfort.yaml"
CURRENT = ("pulse-aftercare", 1)
# The entries a clear_* empties (the figures are an LruCache, counted by len).
ENTRIES = ("definitions", "current_survey_key", "snapshots", "public_pages")


@pytest.fixture
def workers(db_url):
    """(the organisers' app, a reader app that has served every page once), on one database."""
    organisers, reader = make_app(db_url), make_app(db_url)
    fill(organisers, organisers.test_client(), n=16, release=True)
    pages = reader.test_client()
    assert pages.get("/api/v1/benchmarks").get_json()["responses"] == 16
    assert "Figures from 16 responses" in pages.get("/results").get_data(as_text=True)
    assert pages.get("/api/v1/survey").get_json()["id"] == "pulse-aftercare"
    yield organisers, reader
    state.of(organisers).close()
    state.of(reader).close()


def seen(reader, check) -> None:
    """The reader shows the change: at once, or once its listener has heard of it."""
    client = reader.test_client()
    wait_until(lambda: check(client), timeout=15)


def rebuilt(organisers) -> int:
    """A snapshot built by the organisers' worker; its id."""
    with organisers.app_context():
        survey = program.current_survey()
        snapshots.rebuild(storage.engine(), survey, snapshots.disclosure_rules(), full=True)
        return snapshots.served(survey).snapshot_id


def test_a_snapshot_built_is_served_paged_and_charted(workers):
    organisers, reader = workers
    for i in range(16, 20):
        assert submit_api(organisers.test_client(), clinic(i)).status_code == 201
    new_id = rebuilt(organisers)
    seen(reader, lambda c: c.get("/api/v1/benchmarks").get_json()["responses"] == 20)
    seen(reader, lambda c: "Figures from 20 responses" in c.get("/results").get_data(as_text=True))
    pulse = state.of(reader)
    assert pulse.cache.snapshots[CURRENT].snapshot_id == new_id
    # One public page per survey, the new snapshot's; its figures are the new snapshot's too.
    assert [key[1] for key in pulse.cache.public_pages if key[0] == CURRENT] == [new_id]
    assert (CURRENT, new_id, "null", None) in pulse.cache.figures._items


def test_a_survey_opened_becomes_current_for_every_worker(workers):
    organisers, reader = workers
    with organisers.app_context():
        program.add(COMFORT)
        program.open_survey("patient-comfort@1")
    seen(reader, lambda c: c.get("/api/v1/survey").get_json()["id"] == "patient-comfort")
    with organisers.app_context():
        program.open_survey("pulse-aftercare@1")
    seen(reader, lambda c: c.get("/api/v1/survey").get_json()["id"] == "pulse-aftercare")


def test_a_survey_closed_is_closed_for_every_worker(workers):
    organisers, reader = workers
    with organisers.app_context():
        program.close_survey()
    seen(reader, lambda c: submit_api(c, clinic(30)).status_code == 409)
    seen(reader, lambda c: c.get("/api/v1/surveys").get_json()["surveys"][0]["status"] == "closed")


def test_a_release_is_public_for_every_worker(db_url):
    organisers, reader = make_app(db_url), make_app(db_url)
    try:
        fill(organisers, organisers.test_client(), n=16, release=False)
        pages = reader.test_client()
        assert pages.get("/api/v1/benchmarks").status_code == 403  # early access, cached as such
        assert pages.get("/results").status_code == 403
        with organisers.app_context():
            admin_actions.release(program.current_survey())
        seen(reader, lambda c: c.get("/api/v1/benchmarks").status_code == 200)
        seen(reader, lambda c: "Figures from 16 responses" in c.get("/results").get_data(as_text=True))
    finally:
        state.of(organisers).close()
        state.of(reader).close()


def test_a_release_before_the_first_snapshot_is_public_for_every_worker(db_url):
    """Released while no snapshot is stored yet (found by the accessibility pass, whose organiser
    released before the catch-up build): no snapshot is stored again to carry the news, so no
    worker may keep the early-access answer it gave before."""
    organisers, reader = make_app(db_url), make_app(db_url)
    try:
        for i in range(5):
            assert submit_api(organisers.test_client(), clinic(i)).status_code == 201
        for app in (organisers, reader):
            assert app.test_client().get("/api/v1/benchmarks").status_code == 403  # early access
        with organisers.app_context():
            admin_actions.release(program.current_survey())
        for app in (organisers, reader):
            seen(app, lambda c: c.get("/api/v1/benchmarks").status_code == 200)
            body = app.test_client().get("/api/v1/benchmarks").get_json()
            assert body["released"] and not body["published"]
    finally:
        state.of(organisers).close()
        state.of(reader).close()


def test_a_restore_is_served_by_every_worker(workers, tmp_path):
    """The organisers' data replaced under running workers: they serve the restored figures."""
    organisers, reader = workers
    saved = tmp_path / "pulse-backup.sqlite3"
    with organisers.app_context():
        backup.write_backup(storage.engine(), saved)  # 16 responses
    for i in range(16, 20):
        assert submit_api(organisers.test_client(), clinic(i)).status_code == 201
    rebuilt(organisers)
    seen(reader, lambda c: "Figures from 20 responses" in c.get("/results").get_data(as_text=True))
    engine = state.of(organisers).engine
    with engine.begin() as conn:  # the database emptied, as `pulse restore` needs it
        for table in reversed(backup.tables()):
            conn.execute(table.delete())
    restore.restore_backup(saved, engine)
    seen(reader, lambda c: c.get("/api/v1/benchmarks").get_json()["responses"] == 16)
    seen(reader, lambda c: "Figures from 16 responses" in c.get("/results").get_data(as_text=True))


def deaf(app, monkeypatch) -> None:
    """PostgreSQL: this worker's listener acts on nothing it hears (its own changes come back to
    it as notifications too), so that a test sees only the calls the events make themselves."""
    if state.of(app).watch is not None:
        monkeypatch.setattr(state.of(app).watch, "_heard", lambda what: None)


def test_each_clear_empties_its_entries_and_no_other(app, client, monkeypatch):
    """The events' clear_* calls, on the worker that made the event: what each one forgets."""
    deaf(app, monkeypatch)
    fill(app, client, n=16, release=True)
    assert client.get("/results").status_code == 200  # every entry filled
    cache = state.of(app).cache

    def filled() -> dict[str, bool]:
        return {name: bool(getattr(cache, name)) for name in ENTRIES}

    assert all(filled().values()) and len(cache.figures) == 1
    cache.clear_snapshots()  # a snapshot built or republished (a release) by this worker
    assert filled() == {"definitions": True, "current_survey_key": True, "snapshots": False, "public_pages": True}
    assert client.get("/results").status_code == 200
    cache.clear_program()  # a survey opened or closed
    assert filled() == {"definitions": True, "current_survey_key": False, "snapshots": True, "public_pages": True}
    assert client.get("/results").status_code == 200
    cache.clear_all()  # the data replaced (a restore)
    assert not any(filled().values()) and len(cache.figures) == 0
    assert "Figures from 16 responses" in client.get("/results").get_data(as_text=True)


def test_the_events_call_their_clear(app, client, monkeypatch):
    """A rebuild, a release, an opening and a closing each call their clear_*, and nothing else evicts."""
    deaf(app, monkeypatch)
    fill(app, client, n=16, release=True)
    calls = []
    cache = state.of(app).cache
    for name in ("clear_snapshots", "clear_program", "clear_all"):
        monkeypatch.setattr(cache, name, lambda name=name: calls.append(name))
    with app.app_context():
        rebuilt_id = rebuilt(app)
        assert rebuilt_id is not None and calls == ["clear_snapshots"]
        calls.clear()
        admin_actions.release(program.current_survey())
        assert calls == ["clear_snapshots"]
        calls.clear()
        program.close_survey()
        assert calls == ["clear_program"]
        calls.clear()
        program.open_survey("pulse-aftercare@1")
        assert calls == ["clear_program"]
