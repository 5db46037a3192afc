"""State per app: two apps in one process (two databases) never see each other's caches."""

from __future__ import annotations

import pytest

from survey_app import snapshot_queries, state, storage

from .helpers import clinic, fill, make_app, submit_api

pytestmark = pytest.mark.both_databases


@pytest.fixture
def second_app(tmp_path, sqlite_template):
    """Another app in this process, on another (SQLite) database."""
    target = tmp_path / "second.sqlite3"
    target.write_bytes(sqlite_template.read_bytes())
    other = make_app(f"sqlite:///{target}")
    yield other
    state.of(other).close()


def test_two_apps_keep_their_own_snapshots_pages_and_figures(app, client, second_app):
    fill(app, client, release=True)
    other = second_app.test_client()
    mine, theirs = state.of(app), state.of(second_app)
    assert mine is not theirs and mine.engine is not theirs.engine
    assert client.get("/results").status_code == 200  # the public page, rendered and cached
    assert client.get("/api/v1/benchmarks").get_json()["responses"] == 16
    # The second database has no responses: none of the first app's cached numbers leak into it.
    assert other.get("/api/v1/benchmarks").status_code == 403  # nothing released there
    assert other.get("/results").status_code == 403
    assert mine.cache.snapshots and mine.cache.public_pages and len(mine.cache.figures) == 1
    assert len(theirs.cache.figures) == 0 and not theirs.cache.public_pages
    assert not theirs.cache.snapshots  # no snapshot there yet: nothing is kept (a release could not clear it)
    # Snapshot ids start at 1 in both databases: the same id must never serve the other's body.
    fill(second_app, other, n=12, release=True)
    assert other.get("/api/v1/benchmarks").get_json()["responses"] == 12
    assert client.get("/api/v1/benchmarks").get_json()["responses"] == 16
    assert "Figures from 12 responses" in other.get("/results").get_data(as_text=True)
    assert "Figures from 16 responses" in client.get("/results").get_data(as_text=True)


def test_the_rebuild_timer_of_one_app_does_not_hold_back_another(db_url, sqlite_template, tmp_path):
    slow = make_app(db_url, PULSE_SNAPSHOT_MIN_INTERVAL=3600)
    target = tmp_path / "fast.sqlite3"
    target.write_bytes(sqlite_template.read_bytes())
    fast = make_app(f"sqlite:///{target}")
    try:
        for i in range(10):
            assert submit_api(slow.test_client(), clinic(i)).status_code == 201
        assert state.of(slow).catch_up is not None  # the slow app waits for its timer
        assert state.of(fast).last_rebuild_check == 0.0 and state.of(fast).catch_up is None  # untouched
        for i in range(10):
            assert submit_api(fast.test_client(), clinic(i)).status_code == 201
        assert state.of(fast).catch_up is None
        with fast.app_context():
            assert snapshot_queries.latest_snapshot(storage.reader(), "pulse-aftercare", 1).responses == 10
    finally:
        state.of(slow).close()
        state.of(fast).close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/api/v1/benchmarks", "/results", "/"])
def test_a_public_page_on_sqlite_asks_one_query(app, client, monkeypatch, path):
    """Without a listener a page must ask which survey is current and which snapshot is newest:
    one round trip on the probe pool answers both (program_queries.current_survey_now), or, for
    a read kept by fast_reads.py, whether anything was committed since (storage.probe_version)."""
    fill(app, client, release=True)
    assert client.get(path).status_code == 200  # every cache filled
    assert client.get(path).status_code == 200  # and a read kept
    asked = []
    original, original_version = storage.probe_row, storage.probe_version

    def counting(probe, sql, params):
        asked.append(sql)
        return original(probe, sql, params)

    def counting_version(probe):
        asked.append("PRAGMA data_version")
        return original_version(probe)

    monkeypatch.setattr(storage, "probe_row", counting)
    monkeypatch.setattr(storage, "probe_version", counting_version)
    assert client.get(path).status_code == 200
    assert len(asked) == 1, asked
