"""`pulse serve --demo`'s whole program, all synthetic: two waves of the first survey, a closed
round that chose the comfort topic, and the comfort survey current, open and released."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
from sqlalchemy import func, select

from survey_app import demo, keys, program, program_queries, snapshots, state, storage, wording
from survey_app.cli import DEMO_RESPONSES
from survey_app.community import voting as community
from survey_app.domain_errors import DomainError
from survey_app.models import Ballot, BallotApproval, Response, Round, Snapshot, StoredSurvey, Topic
from survey_app.questions import load_survey, validate_answers

from .helpers import ROOT, SECRET, make_app, submit_api

pytestmark = pytest.mark.both_databases

COMFORT = load_survey(ROOT / "surveys" / "patient-comfort.yaml")
FIRST = load_survey(ROOT / "questions.yaml")
COUNTED = (Response, Topic, Round, Ballot, BallotApproval, Snapshot, StoredSurvey)


@pytest.fixture
def built(db_url):
    """An app on a database the demo program was built into, as `pulse serve --demo` builds it."""
    app = make_app(db_url)
    with app.app_context():
        assert demo.fill_program(storage.engine(), SECRET, DEMO_RESPONSES, seed=5) is True
    yield app
    state.of(app).close()


def counts(app) -> dict:
    with app.app_context():
        db = storage.reader()
        return {model.__name__: db.scalar(select(func.count()).select_from(model)) for model in COUNTED}


def test_two_waves_and_the_comfort_survey_are_stored(built):
    with built.app_context():
        entries = {(e.survey.id, e.survey.version): e for e in program.entries(counts=True)}
        assert set(entries) == {("pulse-aftercare", 1), ("pulse-aftercare", 2), ("patient-comfort", 1)}
        comfort = entries[("patient-comfort", 1)]
        assert comfort.is_current and comfort.is_open and comfort.released
        assert program.current_survey() == COMFORT
        for version in (1, 2):
            wave = entries[("pulse-aftercare", version)]
            assert wave.opened and not wave.is_open and not wave.is_current and wave.released
            assert wave.closed_week is not None and wave.responses == DEMO_RESPONSES
        for entry in entries.values():
            published = snapshots.served(entry.survey).published
            assert published.published and published.released, entry.ref
            assert published.responses >= DEMO_RESPONSES - 10  # perturbed, never far off
        assert comfort.responses == DEMO_RESPONSES
        assert program_queries.is_demo(storage.reader())


def test_wave_two_changes_one_question_and_its_clinics_do_a_little_more(built):
    with built.app_context():
        one, two = program.find("pulse-aftercare@1"), program.find("pulse-aftercare@2")
    assert one == FIRST
    changed = [q.key for q in two.questions if q != one.question(q.key)]
    assert changed == ["digital_tools"]
    assert "text_check_ins" in two.question("digital_tools").option_keys
    assert two.scoring == one.scoring and two.title == one.title
    # Its clinics are a little more thorough: the then-and-now change is visible.
    with built.app_context():
        means = {}
        for version in (1, 2):
            survey = program.find(f"pulse-aftercare@{version}")
            rows = storage.reader().scalars(
                select(Response.answers).filter_by(survey_id="pulse-aftercare", survey_version=version)
            )
            means[version] = np.mean([survey.index_of(json.loads(a)) for a in rows])
    assert means[2] > means[1] + 2


def test_a_closed_round_chose_the_comfort_topic_by_votes(built):
    with built.app_context():
        chosen = community.chosen_topics()
        assert len(chosen) == 1 and chosen[0]["chosen_by"] == "votes"
        assert chosen[0]["topic"]["title"] == "Patient comfort during and after a session"
        assert program.entry(COMFORT).topic == chosen[0]["topic"]
        summary = community.round_summary()
        assert summary["status"] == "closed" and summary["ballots"] >= 20
        votes = [t["votes"] for t in summary["topics"]]
        assert votes[0] > votes[1] > 0 and len(votes) >= 3
        queue = community.moderation_queue()
        assert len(queue["approved"]) >= 2 and not queue["pending"]


def test_ballots_came_from_wave_two_keys(db_url, monkeypatch):
    """The voting rule held: each ballot hash is the ballot-domain hash of a key whose response is in wave 2."""
    app = make_app(db_url)
    kept: list[tuple[str, str]] = []
    real_fill = demo.fill

    def keeping_fill(engine, survey, *args, **kwargs):
        found = real_fill(engine, survey, *args, **kwargs)
        kept.extend((program.ref(survey), k) for k in found)
        return found

    monkeypatch.setattr(demo, "fill", keeping_fill)
    try:
        with app.app_context():
            demo.fill_program(storage.engine(), SECRET, 60, seed=1)
            ballots = set(storage.reader().scalars(select(Ballot.ballot_hash)))
        voters = {keys.keyed_hash(SECRET, "ballot", k): ref for ref, k in kept}
        assert ballots and ballots <= set(voters)
        assert {voters[b] for b in ballots} == {"pulse-aftercare@2"}
    finally:
        state.of(app).close()


def test_pages_show_the_whole_program(built):
    client = built.test_client()
    with built.app_context():
        chosen_round = community.chosen_topics()[0]["round"]
    home = client.get("/").get_data(as_text=True)
    assert f"Chosen by the community in round {chosen_round}" in home
    assert COMFORT.title in home and "Demo data" in home
    archive = client.get("/surveys")
    html = archive.get_data(as_text=True)
    assert archive.status_code == 200
    # Both waves of the aftercare survey are labelled, the first too; weeks are said as dates.
    assert '<span class="muted">wave 1</span>' in html and '<span class="muted">wave 2</span>' in html
    assert "-W" not in re.sub(r'datetime="[^"]*"', "", html)
    for path in ("/results/pulse-aftercare/1", "/results/pulse-aftercare/2", "/results/patient-comfort/1"):
        assert path in html, path
        assert client.get(path).status_code == 200, path
    listed = client.get("/api/v1/surveys").get_json()["surveys"]
    assert Counter(s["status"] for s in listed) == {"closed": 2, "open": 1}
    assert all(s["responses"] for s in listed)
    assert client.get("/results").status_code == 200
    assert client.get("/topics").status_code == 200
    # The comfort survey takes answers.
    answers = {q.key: (q.option_keys[0] if q.type == "single" else [q.option_keys[0]]) for q in COMFORT.questions}
    assert submit_api(client, answers).status_code == 201


def test_a_second_fill_adds_nothing(built):
    before = counts(built)
    with built.app_context():
        assert demo.fill_program(storage.engine(), SECRET, DEMO_RESPONSES) is False
    assert counts(built) == before
    with built.app_context():
        assert program.current_survey() == COMFORT


def test_demo_data_refuses_a_database_with_real_responses(db_url):
    app = make_app(db_url)
    try:
        assert submit_api(app.test_client()).status_code == 201
        before = counts(app)
        with app.app_context(), pytest.raises(DomainError) as caught:
            demo.fill_program(storage.engine(), SECRET, 30)
        said = wording.for_http(caught.value)
        assert said.status == 409 and "real responses" in said.message
        assert counts(app) == before
    finally:
        state.of(app).close()


def test_another_configured_survey_is_filled_alone(db_url):
    """With PULSE_QUESTIONS naming another survey, --demo fills that survey, as before the program."""
    app = make_app(db_url, PULSE_QUESTIONS=str(ROOT / "surveys" / "patient-comfort.yaml"))
    try:
        with app.app_context():
            assert demo.fill_program(storage.engine(), SECRET, 40, seed=2) is True
            entries = program.entries(counts=True)
            assert [(e.survey.id, e.responses, e.released) for e in entries] == [("patient-comfort", 40, True)]
            assert snapshots.served(COMFORT).published.published
            assert not community.chosen_topics()
    finally:
        state.of(app).close()


# ------------------------------------------------------------------ synthetic answers


@pytest.mark.parametrize("survey", [FIRST, COMFORT], ids=lambda s: s.id)
def test_synthetic_answers_are_valid(survey):
    for answers in demo.synthetic_answers(survey, 300, np.random.default_rng(4)):
        assert validate_answers(survey, answers)[1] == {}


def test_only_at_home_programs_rest_at_home():
    rows = list(demo.synthetic_answers(COMFORT, 2000, np.random.default_rng(8)))
    for answers in rows:
        at_home = answers["recovery_space"].startswith("at_home_")
        assert at_home == (answers["practice_type"] == "telehealth"), answers
    home = Counter(a["recovery_space"] for a in rows if a["practice_type"] == "telehealth")
    assert set(home) == {"at_home_guided", "at_home_unguided"}


def test_care_shifts_the_index_up():
    def mean(care):
        rows = demo.synthetic_answers(FIRST, 3000, np.random.default_rng(6), care=care)
        return np.mean([FIRST.index_of(a) for a in rows])

    assert mean(0.1) > mean(0.0) + 3


def test_default_answers_are_unchanged_for_the_first_survey():
    """care=0 draws exactly what it drew before: seeded tests elsewhere keep their data."""
    first = list(demo.synthetic_answers(FIRST, 50, np.random.default_rng(11)))
    again = list(demo.synthetic_answers(FIRST, 50, np.random.default_rng(11), care=0.0))
    assert first == again


def test_a_demo_database_from_before_the_program_gets_the_rest(db_url):
    """A demo database the earlier `serve --demo` filled (the first survey only, released) keeps
    its responses as wave 1 and gets the rest of the program, once."""
    app = make_app(db_url)
    try:
        with app.app_context():
            program.ensure_started()  # as `pulse serve` does before it fills
            demo.fill(storage.engine(), FIRST, 30, SECRET, seed=3)
            with storage.writer() as db:
                program_queries.set_survey_state(db, FIRST.id, FIRST.version, released=True)
            snapshots.rebuild(storage.engine(), FIRST, snapshots.disclosure_rules(), full=True)
            assert demo.fill_program(storage.engine(), SECRET, 40, seed=4) is True
            found = {e.ref: (e.responses, e.status) for e in program.entries(counts=True)}
            assert found == {
                "pulse-aftercare@1": (30, "closed"),
                "pulse-aftercare@2": (40, "closed"),
                "patient-comfort@1": (40, "open"),
            }
            assert community.chosen_topics()
        before = counts(app)
        with app.app_context():
            assert demo.fill_program(storage.engine(), SECRET, 40) is False
        assert counts(app) == before
    finally:
        state.of(app).close()
