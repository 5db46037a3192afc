"""Snapshot building: prefetching chunks, incremental equals full, a failed build keeps the old one."""

from __future__ import annotations

import gc
import json

import pytest
from sqlalchemy import select, text

from survey_app import admin_actions, program, response_queries, snapshot_queries, snapshots, state, storage
from survey_app.models import Response, Snapshot
from survey_app.pipeline import publishing
from survey_app.pipeline.tallies import Tally

from .helpers import FULL_ANSWERS, make_app, submit_api

pytestmark = pytest.mark.both_databases


def test_prefetched_yields_every_chunk_in_order():
    chunks = [[str(i)] * 3 for i in range(7)]
    assert list(snapshots._prefetched(iter(chunks))) == chunks


def test_prefetched_raises_what_the_fetcher_raised():
    def broken():
        yield ["a"]
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        list(snapshots._prefetched(broken()))


def test_prefetched_stops_the_fetcher_when_counting_fails():
    fetched = []

    def endless():
        for i in range(10_000):
            fetched.append(i)
            yield [str(i)]

    for count, _ in enumerate(snapshots._prefetched(endless())):
        if count == 2:
            break  # the generator is closed here: it must not hang or keep fetching
    assert len(fetched) < 10


def test_incremental_rebuilds_equal_a_full_one(app, client):
    for i in range(40):
        submit_api(client, FULL_ANSWERS | {"practice_type": ["psychiatry", "telehealth", "other"][i % 3]})
    with app.app_context():
        engine = storage.engine()
        survey = app.config["SURVEY"]
        rules = snapshots.disclosure_rules_from_config(app.config)
        incremental = json.loads(snapshot_queries.latest_snapshot(storage.reader(), survey.id, 1).tally)
        counted = storage.reader().scalars(select(Response.in_snapshot)).all()
        storage.reader().rollback()  # end the read transaction, to see the next snapshot
        snapshots.rebuild(engine, survey, rules, full=True)
        full = json.loads(snapshot_queries.latest_snapshot(storage.reader(), survey.id, 1).tally)
    assert sum(counted) == 40  # three incremental snapshots: 10, then 10 more, then 20 more
    assert Tally.from_json(incremental).n == 40
    assert incremental == full


def test_failed_build_keeps_previous_snapshot(app, client, monkeypatch, caplog):
    for _ in range(10):
        submit_api(client)
    with app.app_context():
        before = snapshot_queries.latest_snapshot(storage.reader(), "pulse-aftercare", 1)
    monkeypatch.setattr(snapshots.publishing, "publish", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("bug")))
    for _ in range(10):
        assert submit_api(client).status_code == 201  # the response is kept even if the build fails
    with app.app_context():
        db = storage.reader()
        after = snapshot_queries.latest_snapshot(db, "pulse-aftercare", 1)
        pending = response_queries.count_responses(db, "pulse-aftercare", 1, pending_only=True)
    assert after.id == before.id and after.responses == 10
    assert pending == 10
    assert "snapshot rebuild failed, previous snapshot kept" in caplog.text


@pytest.mark.parametrize("fails", [False, True])
def test_full_rebuild_pauses_the_cycle_collector_while_reading_and_restores_it(app, client, monkeypatch, fails):
    for _ in range(10):
        submit_api(client)
    seen = []
    read = response_queries.iter_answers

    def watched(*args):
        for chunk in read(*args):
            seen.append(gc.isenabled())
            yield chunk
        if fails:
            raise RuntimeError("disk gone")

    monkeypatch.setattr(response_queries, "iter_answers", watched)
    with app.app_context():

        def build():
            return snapshots.rebuild(
                storage.engine(),
                app.config["SURVEY"],
                snapshots.disclosure_rules_from_config(app.config),
                full=True,
            )

        if fails:
            with pytest.raises(RuntimeError, match="disk gone"):
                build()
        else:
            assert build() == 10
    assert seen == [False] and gc.isenabled()


def test_a_snapshot_of_an_older_shape_is_published_again_at_start(app, client, db_url):
    """After an upgrade that changes the published body, the latest snapshot is published again
    from its counts: every documented field is there, and the same cells show the same numbers
    (the same set of responses draws the same noise). It happens once, whichever worker starts first."""
    for i in range(10):
        submit_api(client, FULL_ANSWERS | {"practice_type": ["psychiatry", "telehealth"][i % 2]})
    with app.app_context():
        admin_actions.release(program.current_survey())
    current = client.get("/api/v1/benchmarks").get_json()
    with app.app_context(), storage.writer() as db:
        row = snapshot_queries.latest_snapshot(db, "pulse-aftercare", 1)
        assert row.shape == publishing.SHAPE
        old = json.loads(row.published)
        del old["disclosure"]["changes"], old["disclosure"]["from"]  # as shape 1 stored it
        row.published, row.shape = json.dumps(old), 1
        old_id = row.id
    upgraded = make_app(db_url)
    body = upgraded.test_client().get("/api/v1/surveys/pulse-aftercare/1/benchmarks").get_json()
    assert body["disclosure"]["changes"] and body["disclosure"]["from"] == 10
    assert body == current
    with upgraded.app_context():
        db = storage.reader()
        row = snapshot_queries.latest_snapshot(db, "pulse-aftercare", 1)
        assert (row.shape, row.responses) == (publishing.SHAPE, 10) and row.id != old_id
        assert json.loads(row.published)["questions"] == old["questions"]  # the same noise, cell by cell
        assert db.scalar(select(Snapshot.id).where(Snapshot.shape < publishing.SHAPE)) is None
    again = make_app(db_url)  # another worker starting later finds nothing to do
    again.test_client().get("/api/v1/survey")
    with again.app_context():
        assert snapshot_queries.latest_snapshot(storage.reader(), "pulse-aftercare", 1).id == row.id
    for each in (upgraded, again):
        state.of(each).close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_first_snapshots_built_at_once_store_one_and_log_no_error(app, client, monkeypatch, caplog):
    """PostgreSQL: a worker's request and its catch-up timer (or two workers) building the first
    snapshot at once both read in REPEATABLE READ; the second to flag the rows fails to serialize.
    That is the race one of them should lose: one snapshot is stored, and the loser says so in a
    line, not an error with a traceback."""
    import logging
    import threading

    for _ in range(10):
        submit_api(client)
    with app.app_context():
        survey = program.current_survey()
        db = storage.reader()
        before = db.scalar(text("SELECT count(*) FROM snapshots"))
        db.execute(text("UPDATE responses SET in_snapshot = false"))
        db.execute(text("DELETE FROM snapshots"))
        db.commit()
    both_read = threading.Barrier(2, timeout=10)
    original = response_queries.mark_counted_in_id_order

    def after_both_read(*args, **kwargs):
        both_read.wait()  # each has read its snapshot of the rows before either flags them
        return original(*args, **kwargs)

    monkeypatch.setattr(response_queries, "mark_counted_in_id_order", after_both_read)

    def build():
        with app.app_context():
            snapshots._check_and_rebuild(app, survey)

    caplog.set_level(logging.INFO, logger="survey_app.snapshots")
    builders = [threading.Thread(target=build) for _ in range(2)]
    for thread in builders:
        thread.start()
    for thread in builders:
        thread.join(30)
    with app.app_context():
        db = storage.reader()
        assert db.scalar(text("SELECT count(*) FROM snapshots")) == 1
        assert db.scalar(text("SELECT count(*) FROM responses WHERE NOT in_snapshot")) == 0
    assert before >= 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    assert "another build stored it" in caplog.text
