"""Snapshot building: prefetching chunks, incremental equals full, a failed build keeps the old one."""
from __future__ import annotations

import gc
import json

import pytest
from sqlalchemy import select

from survey_app import response_queries, snapshot_queries, snapshots, storage
from survey_app.models import Response
from survey_app.pipeline.tallies import Tally

from .helpers import FULL_ANSWERS, submit_api

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
        build = lambda: snapshots.rebuild(storage.engine(), app.config["SURVEY"],  # noqa: E731
                                          snapshots.disclosure_rules_from_config(app.config), full=True)
        if fails:
            with pytest.raises(RuntimeError, match="disk gone"):
                build()
        else:
            assert build() == 10
    assert seen == [False] and gc.isenabled()
