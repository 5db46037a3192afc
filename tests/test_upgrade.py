"""A database made before the survey program is carried over (PRODUCT.md, "The survey program"):
its responses, snapshots, state, keys, ballots and topics keep working.

tests/data/pre-program.* were made by Pulse as released at commit 16ea83d, through its own API
and `pulse` command (tools/make_pre_program_db.py says exactly how); pre-program.json holds what
that Pulse served. SQLite: a copy of its database file, upgraded by `pulse migrate`. PostgreSQL:
its `pulse backup`, loaded into an empty database by `pulse restore`, which upgrades it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3

import pytest
from sqlalchemy import create_engine, func, select

from survey_app import migrate, program_queries, storage
from survey_app.models import Admin, Ballot, BallotApproval, InviteCode, Response, Round, Snapshot, StoredSurvey, Topic

from .helpers import ROOT, SECRET, admin_login, form_tokens, make_app, row_count, run_pulse, submit_api

DATA = ROOT / "tests" / "data"
FACTS = json.loads((DATA / "pre-program.json").read_text())
SURVEY = (FACTS["survey"]["id"], FACTS["survey"]["version"])


def old_weeks() -> set[str]:
    """The ISO weeks the old database's responses arrived in."""
    with contextlib.closing(sqlite3.connect(f"file:{DATA / 'pre-program.sqlite3'}?mode=ro", uri=True)) as db:
        return {week for (week,) in db.execute("SELECT DISTINCT week FROM responses")}


def test_the_files_are_what_the_tests_expect():
    """Made by the old code (schema 0005), with the tests' SECRET_KEY, and small."""
    assert FACTS["secret_key"] == SECRET and "16ea83d" in FACTS["made_by"]
    with contextlib.closing(sqlite3.connect(f"file:{DATA / 'pre-program.sqlite3'}?mode=ro", uri=True)) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == ("0005",)
        names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "surveys" not in names  # from before the survey program
    with contextlib.closing(sqlite3.connect(f"file:{DATA / 'pre-program.backup'}?mode=ro", uri=True)) as db:
        assert db.execute("SELECT revision FROM pulse_backup").fetchone() == ("0005",)
    for name in ("pre-program.sqlite3", "pre-program.backup", "pre-program.json"):
        assert (DATA / name).stat().st_size < 256 * 1024, name


@pytest.fixture(params=["sqlite", "postgresql"])
def upgraded(request, tmp_path) -> str:
    """The old database, upgraded by today's Pulse: the SQLite file migrated, the backup restored into PostgreSQL."""
    if request.param == "sqlite":
        copy = tmp_path / "pulse.sqlite3"
        shutil.copy(DATA / "pre-program.sqlite3", copy)
        url = f"sqlite:///{copy}"
        result = run_pulse(url, "migrate")
        assert result.exit_code == 0, result.output
        assert "Backed up the database" in result.output  # the schema changed: a backup beside it first
        return url
    url = request.getfixturevalue("pg_databases")()
    result = run_pulse(url, "restore", str(DATA / "pre-program.backup"))
    assert result.exit_code == 0, result.output
    assert f"Restored {FACTS['responses']} responses" in result.output
    return url


@pytest.fixture
def app(upgraded):
    from survey_app import state

    app = make_app(upgraded)
    yield app
    state.of(app).close()


def test_every_row_is_carried_over(upgraded):
    engine = create_engine(upgraded)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Response)) == FACTS["responses"]
            for model in (Snapshot, Topic, Round, Ballot, BallotApproval, Admin, InviteCode):
                assert conn.scalar(select(func.count()).select_from(model)) == FACTS["rows"][model.__tablename__]
            assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_the_survey_is_current_in_its_old_state(app, upgraded):
    client = app.test_client()
    assert client.get("/api/v1/survey").get_json()["id"] == SURVEY[0]
    with app.app_context():
        db = storage.reader()
        assert program_queries.current_survey_key(db) == SURVEY
        assert program_queries.read_survey_state(db, *SURVEY) == (FACTS["state"]["is_open"], FACTS["state"]["released"])
        # The first start stored the definition its responses answer.
        stored = db.get(StoredSurvey, SURVEY)
        assert stored.definition == (ROOT / "questions.yaml").read_text()
    [listed] = client.get("/api/v1/surveys").get_json()["surveys"]
    assert listed == {
        "id": SURVEY[0],
        "version": SURVEY[1],
        "title": stored.title,
        "status": "closed",
        "weeks": {"opened": min(old_weeks()), "closed": None},
        "responses": FACTS["benchmarks"]["responses"],
        "topic": None,
        "schedule": {"opens": None, "closes": None},  # nothing was scheduled before schedules existed
    }
    # Closed as the organisers left it: nothing is stored.
    assert submit_api(client).status_code == 409
    assert row_count(app) == FACTS["responses"]
    output = run_pulse(upgraded, "survey", "list").output
    assert re.search(rf"^\* {SURVEY[0]}@{SURVEY[1]}\s+.*\s+closed\s+.*\s+{FACTS['responses']}\s", output, re.M)


def served_again(app) -> dict:
    """The old snapshot published again from its stored counts, as this Pulse publishes."""
    from survey_app import snapshot_queries, snapshots
    from survey_app.pipeline import publishing
    from survey_app.pipeline.tallies import Tally

    with app.app_context():
        row = snapshot_queries.latest_snapshot(storage.reader(), *SURVEY)
        assert (row.shape, row.responses) == (publishing.SHAPE, FACTS["benchmarks"]["responses"])
        tally = Tally.from_json(json.loads(row.tally))
        return json.loads(
            json.dumps(
                publishing.publish(
                    app.config["SURVEY"], tally, snapshots.disclosure_rules(), FACTS["benchmarks"]["released"]
                ).to_json()
            )
        )


def test_the_snapshot_is_published_again_in_the_current_shape(app):
    """Its body had no "changes" in "disclosure": published again from the same counts at start,
    it has every documented field, and the same N and release."""
    client = app.test_client()
    body = client.get("/api/v1/benchmarks").get_json()
    assert "changes" not in FACTS["benchmarks"]["disclosure"] and body["disclosure"]["changes"]
    assert body == served_again(app)
    assert (body["responses"], body["released"]) == (FACTS["benchmarks"]["responses"], FACTS["benchmarks"]["released"])
    assert client.get("/api/v1/surveys/pulse-aftercare/1/benchmarks").get_json() == body
    assert f'<td class="num">{FACTS["benchmarks"]["responses"]}</td>' in client.get("/surveys").get_data(as_text=True)
    assert client.get("/results").status_code == 200


def test_the_old_results_keys_open_their_clinic(app):
    from survey_app.pipeline import publishing
    from survey_app.pipeline.figures import Published

    client = app.test_client()
    client.get("/api/v1/survey")  # the first request starts the program, which publishes it again
    published = served_again(app)
    for key, you in zip(FACTS["results_keys"], FACTS["you"]):
        body = client.get("/api/v1/benchmarks", headers={"X-Results-Key": key}).get_json()
        # The clinic's own answers and index as before; its standing from the figures published now.
        assert (body["you"]["answers"], body["you"]["index"]) == (you["answers"], you["index"])
        typed = Published.from_json(published)
        assert body["you"] == json.loads(
            json.dumps(publishing.you(app.config["SURVEY"], you["answers"], typed).to_json())
        )
    # The key form, and the page with the clinic's own scorecard.
    key = FACTS["results_keys"][3]
    tokens = form_tokens(client.get("/results/key").get_data(as_text=True))
    went = client.post("/results", data={"csrf_token": tokens["csrf_token"], "results_key": key})
    assert went.status_code == 303 and went.headers["Location"].endswith("/results/pulse-aftercare/1")
    page = client.get("/results/pulse-aftercare/1").get_data(as_text=True)
    assert f'<span class="score-number">{FACTS["you"][3]["index"]}</span>' in page


def test_a_session_signed_before_the_program_keeps_its_key(app):
    """A browser session from the old Pulse kept one key as "results_key"; it still opens the clinic's view."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["results_key"] = FACTS["results_keys"][7]
    page = client.get("/results").get_data(as_text=True)
    assert f'<span class="score-number">{FACTS["you"][7]["index"]}</span>' in page
    with client.session_transaction() as session:
        assert session["results_keys"] == {"pulse-aftercare@1": FACTS["results_keys"][7]}
        assert "results_key" not in session


def test_topics_rounds_and_ballots_are_kept(app, upgraded):
    client = app.test_client()
    open_round = FACTS["rounds"]["2"]
    view = client.get("/api/v1/topics").get_json()
    assert (view["round"]["id"], view["round"]["status"]) == (2, "open")
    assert sorted(t["id"] for t in view["topics"]) == open_round["topics"]
    assert {t["id"]: t["title"] for t in view["topics"]} == {
        i: t["title"] for i, t in FACTS["topics"].items() if i in open_round["topics"]
    }
    with app.app_context():
        db = storage.reader()
        per_round = dict(db.execute(select(Ballot.round_id, func.count()).group_by(Ballot.round_id)).all())
        assert per_round == {int(r): len(cast) for r, cast in FACTS["ballots"].items()}
        topics = {t.id: (t.title, t.status) for t in db.scalars(select(Topic))}
        assert topics == {i: (t["title"], t["status"]) for i, t in FACTS["topics"].items()}
        closed = db.get(Round, 1)
        assert closed.status == "closed"
    # The closed round's tally, as the old Pulse printed it when it closed.
    votes = {}
    for approve in FACTS["ballots"]["1"].values():
        for topic_id in approve:
            votes[topic_id] = votes.get(topic_id, 0) + 1
    for topic_id, n in votes.items():
        assert any(re.fullmatch(rf"\s*{n}\s+{topic_id}\s+.*", line) for line in FACTS["rounds"]["1"]["tally"])
    # A key that voted in the open round still finds its ballot, and changing it replaces it.
    voter = FACTS["results_keys"][5]
    changed = [i for i in open_round["topics"] if i not in FACTS["ballots"]["2"]["5"]]
    put = client.put("/api/v1/ballot", json={"approve": changed}, headers={"X-Results-Key": voter})
    assert put.status_code == 200
    with app.app_context():
        assert storage.reader().scalar(select(func.count()).select_from(Ballot).filter_by(round_id=2)) == 3
    with client.session_transaction() as session:
        session["results_keys"] = {"pulse-aftercare@1": voter}
    page = client.get("/topics").get_data(as_text=True)
    for topic_id in open_round["topics"]:
        box = re.search(rf'<input type="checkbox" id="t-{topic_id}"[^>]*>', page).group(0)
        assert ("checked" in box) == (topic_id in changed)
    assert run_pulse(upgraded, "round", "close").output.startswith("Round 2 is closed: 3 ballots.")


def test_the_admin_logs_in(app):
    client = app.test_client()
    assert admin_login(client, FACTS["admin"]["username"], FACTS["admin"]["password"]).status_code == 303
    page = client.get("/admin").get_data(as_text=True)
    assert re.search(rf'<strong class="big-number">{FACTS["responses"]}</strong> responses', page)


def test_the_survey_reopens_and_its_snapshot_grows(upgraded):
    """Reopened, the old snapshot's tally takes the next responses: 2 waiting plus 18 new make the next
    snapshot (each snapshot doubles N: 20 new after a snapshot of 20)."""
    from survey_app import state

    assert run_pulse(upgraded, "survey", "open").exit_code == 0
    app = make_app(upgraded)
    client = app.test_client()
    for i in range(18):
        assert submit_api(client, FACTS["answers"][i % len(FACTS["answers"])]).status_code == 201
    body = client.get("/api/v1/benchmarks").get_json()
    assert body["responses"] == 2 * FACTS["benchmarks"]["responses"] == FACTS["responses"] + 18
    assert body["released"] is True
    state.of(app).close()
