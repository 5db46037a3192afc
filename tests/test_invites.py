"""Invite mode: single-use codes, checked and burned at submission, leaving no trace in the row."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from survey_app import keys, program_queries, response_queries, state, storage
from survey_app.models import InviteCode, Response
from survey_app.questions import load_survey

from .helpers import FULL_ANSWERS, ROOT, make_app, submit_api

pytestmark = pytest.mark.both_databases


@pytest.fixture
def invite_app(db_url, tmp_path):
    path = tmp_path / "invite.yaml"
    path.write_text((ROOT / "questions.yaml").read_text().replace("invite_only: false", "invite_only: true"))
    app = make_app(db_url, PULSE_QUESTIONS=str(path), SURVEY=load_survey(path))
    yield app
    state.of(app).close()


def add_codes(app, n):
    codes = [keys.new_invite_code() for _ in range(n)]
    with app.app_context(), storage.writer() as db:
        hashes = [keys.keyed_hash(app.config["SECRET_KEY"], "invite", c) for c in codes]
        response_queries.add_invites(db, "pulse-aftercare", hashes)
    return codes


def test_code_is_burned_and_leaves_no_trace(invite_app):
    client = invite_app.test_client()
    code = add_codes(invite_app, 2)[0]
    assert submit_api(client, invite_code=code.lower().replace("-", " ")).status_code == 201
    again = submit_api(client, invite_code=code)
    assert again.status_code == 422 and "invite_code" in again.get_json()["errors"]
    with invite_app.app_context():
        db = storage.reader()
        row = db.scalars(select(Response)).one()
        left = list(db.scalars(select(InviteCode.code_hash)))
    assert len(left) == 1
    code_hash = keys.keyed_hash(invite_app.config["SECRET_KEY"], "invite", code)
    stored = json.dumps([row.id, row.answers, row.week, row.key_hash])
    assert code not in stored and code_hash not in stored and code.replace("-", "") not in stored


@pytest.mark.parametrize("code", [None, "", "nope", "AAAA-AAAA-AAAA-AAAA", 12])
def test_missing_or_unknown_code_stores_nothing(invite_app, code):
    add_codes(invite_app, 1)
    extra = {} if code is None else {"invite_code": code}
    response = submit_api(invite_app.test_client(), **extra)
    assert response.status_code == 422 and "invite_code" in response.get_json()["errors"]
    with invite_app.app_context():
        assert response_queries.count_responses(storage.reader(), "pulse-aftercare", 1) == 0


def test_bad_answers_do_not_burn_the_code(invite_app):
    client = invite_app.test_client()
    code = add_codes(invite_app, 1)[0]
    assert submit_api(client, FULL_ANSWERS | {"practice_type": "x"}, invite_code=code).status_code == 422
    assert submit_api(client, invite_code=code).status_code == 201


def test_form_asks_for_the_code(invite_app):
    html = invite_app.test_client().get("/survey").get_data(as_text=True)
    assert 'name="invite_code"' in html


def test_closed_survey_does_not_burn_the_code(invite_app):
    client = invite_app.test_client()
    code = add_codes(invite_app, 1)[0]
    with invite_app.app_context(), storage.writer() as db:
        program_queries.set_survey_state(db, "pulse-aftercare", 1, is_open=False)
    assert submit_api(client, invite_code=code).status_code == 409
    with invite_app.app_context(), storage.writer() as db:
        program_queries.set_survey_state(db, "pulse-aftercare", 1, is_open=True)
    assert submit_api(client, invite_code=code).status_code == 201
