"""The survey form: CSRF, validation with answers kept, the thank-you page, the session cookie."""

from __future__ import annotations

import re
import time

import itsdangerous.timed
import pytest
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from survey_app import admin_actions, keys, program, program_queries, questions, state, storage
from survey_app.models import Response

from .helpers import FULL_ANSWERS, ROOT, answers_to_form, form_tokens, make_app, post_form, row_count


def test_form_renders_every_question_as_a_fieldset(client, survey):
    html = client.get("/survey").get_data(as_text=True)
    assert html.count("<fieldset") == 8 and html.count("<legend") == 8
    for q in survey.questions:
        kind = "radio" if q.type == "single" else "checkbox"
        for o in q.options:
            assert f'type="{kind}"' in html and f'value="{o.key}"' in html
    assert "<script" not in html


@pytest.mark.both_databases  # stores, or refuses to, in one SQL statement
def test_submit_stores_and_redirects_to_thanks_with_key(app, client):
    response = post_form(client, FULL_ANSWERS)
    assert response.status_code == 303 and response.headers["Location"].endswith("/thanks")
    assert row_count(app) == 1
    page = client.get("/thanks").get_data(as_text=True)
    with client.session_transaction() as session:
        key = session["results_keys"]["pulse-aftercare@1"]
    assert key in page and "results key" in page
    with app.app_context():
        row = storage.reader().scalars(select(Response)).one()
    assert row.key_hash == keys.keyed_hash(app.config["SECRET_KEY"], "response", key)


def test_session_cookie_holds_only_csrf_and_results_key(app, client):
    post_form(client, FULL_ANSWERS)
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    data = serializer.loads(cookie.value)
    assert set(data) <= {"csrf_token", "results_keys"}
    # One key per survey, under the survey it answered: nothing else about the clinic.
    assert list(data["results_keys"]) == ["pulse-aftercare@1"]


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"practice_type": None}, "practice_type", "Choose one answer to “Which best describes your practice?”"),
        ({"discharge_checks": ["vitals", "none"]}, "discharge_checks", "cannot be combined"),
        (
            {"discharge_checks": []},
            "discharge_checks",
            "Choose at least one answer to “Before a patient leaves after a "
            "session, which of these do you routinely do?”, or “None of these "
            "routinely”",
        ),
        ({"digital_tools": ["mood_app", "mood_app"]}, "digital_tools", "an option is repeated"),
        ({"first_followup": "tomorrow"}, "first_followup", "unknown option"),
        ({"after_hours": ["on_call", "crisis_line"]}, "after_hours", "choose only one option"),
    ],
)
def test_bad_form_shows_error_beside_question_and_keeps_answers(app, client, changes, field, message):
    answers = {k: v for k, v in (FULL_ANSWERS | changes).items() if v is not None}
    response = post_form(client, answers)
    html = response.get_data(as_text=True)
    assert response.status_code in (400, 422)
    assert message in html
    assert f'id="{field}-error"' in html and f'aria-describedby="{field}-error"' in html
    assert (
        'value="pct_90_plus" checked' in html
        or 'checked value="pct_90_plus"' in html
        or ("pct_90_plus" in html and html.count("checked") >= 5)
    )
    assert row_count(app) == 0


def test_post_without_csrf_token_is_400_and_stores_nothing(app, client):
    client.get("/survey")
    response = client.post("/survey", data=MultiDict(answers_to_form(FULL_ANSWERS)))
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert row_count(app) == 0


def test_expired_csrf_token_keeps_the_answers(db_url, monkeypatch):
    app = make_app(db_url, WTF_CSRF_TIME_LIMIT=1)
    client = app.test_client()
    tokens = form_tokens(client.get("/survey").get_data(as_text=True))
    later = int(time.time()) + 2  # the signer's clock two seconds on, rather than waiting for it
    monkeypatch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: later)
    response = post_form(client, FULL_ANSWERS, tokens)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "expired" in html and "Your answers are still here" in html
    assert html.count("checked") >= 10  # every chosen option is still ticked
    assert row_count(app) == 0
    state.of(app).close()


def test_too_fast_submission_is_refused_kindly(db_url):
    app = make_app(db_url, PULSE_MIN_FILL_SECONDS=30)
    client = app.test_client()
    response = post_form(client, FULL_ANSWERS)
    assert response.status_code == 429
    assert "nothing was saved" in response.get_data(as_text=True)
    assert row_count(app) == 0
    state.of(app).close()


def test_a_question_may_not_take_the_name_of_a_field_of_the_form_itself(db_url, tmp_path):
    # Every name the survey form posts besides the questions' keys, read from the page of an
    # invite-only survey (which asks for the code too): a question keyed like one of them would be
    # posted under the same name and could never be answered, so the loader refuses those keys.
    path = tmp_path / "invite.yaml"
    path.write_text((ROOT / "questions.yaml").read_text().replace("invite_only: false", "invite_only: true"))
    app = make_app(db_url, PULSE_QUESTIONS=str(path))
    html = app.test_client().get("/survey").get_data(as_text=True)
    form = html[html.index('<form method="post"') : html.index("</form>", html.index('<form method="post"'))]
    own = set(re.findall(r'name="([^"]+)"', form)) - set(app.config["SURVEY"].keys)
    assert own == set(questions.FORM_FIELDS)
    state.of(app).close()


def test_forged_served_stamp_is_refused(app, client):
    tokens = form_tokens(client.get("/survey").get_data(as_text=True))
    tokens["served"] = "forged"
    response = post_form(client, FULL_ANSWERS, tokens)
    assert response.status_code == 400 and "timing field" in response.get_data(as_text=True)
    assert row_count(app) == 0


def test_oversized_body_is_413(app, client):
    tokens = form_tokens(client.get("/survey").get_data(as_text=True))
    data = answers_to_form(FULL_ANSWERS) + list(tokens.items()) + [("padding", "x" * 70_000)]
    response = client.post("/survey", data=MultiDict(data))
    assert response.status_code == 413
    assert row_count(app) == 0


@pytest.mark.both_databases  # stores, or refuses to, in one SQL statement
def test_closed_survey_refuses_form(app, client):
    with app.app_context():
        with storage.writer() as db:
            program_queries.set_survey_state(db, "pulse-aftercare", 1, is_open=False)
    response = post_form(client, FULL_ANSWERS)
    assert response.status_code == 409
    assert row_count(app) == 0


@pytest.mark.parametrize(
    "path, title",
    [
        ("/", "The Pulse of Clinical Aftercare"),
        ("/survey", "Survey"),
        ("/thanks", "Thank you"),
        ("/privacy", "Privacy"),
    ],
)
def test_pages_have_title_and_favicon(client, path, title):
    html = client.get(path).get_data(as_text=True)
    assert f"<title>{title}" in html
    assert 'rel="icon"' in html
    assert client.get("/static/favicon.svg").status_code == 200


def test_privacy_page_lists_every_stored_column_and_thresholds(client):
    html = client.get("/privacy").get_data(as_text=True)
    for column in Response.__table__.columns:
        assert f"<code>{column.name}</code>" in html
    assert "before 10 responses" in html
    # Perturbation in plain words, with the table's own figures and the measured attack odds.
    assert "slightly randomised" in html and "0 or 5+" in html
    assert re.search(
        r"stays as it is (\d+)% of the time, moves up or down by 1 or 2 (\d+)% of the time, and by 3 "
        r"or 4 (\d+)% of the time, never more",
        html,
    )
    assert "SECURITY.md" in html and "plain guess" in html


@pytest.mark.parametrize("release", [False, True], ids=["early-access", "released"])
def test_thanks_page_offers_the_key_to_copy_and_the_results(app, client, release):
    if release:
        with app.app_context():
            admin_actions.release(program.current_survey())
    post_form(client, FULL_ANSWERS)
    page = client.get("/thanks").get_data(as_text=True)
    with client.session_transaction() as session:
        key = session["results_keys"]["pulse-aftercare@1"]
    # In a read-only field (selectable without a script), with a copy button the static script shows.
    assert re.search(rf'<input id="results-key-value"[^>]*value="{key}"[^>]*readonly', page)
    assert 'class="secondary copy-key" data-copy="results-key-value" hidden' in page
    assert re.search(r'<script src="/assets/[0-9a-f]{12}/copy-key.js"></script>', page)
    assert '<a class="button" href="/results">See my results</a>' in page
    # "Early access, before it is public" only while it is true.
    assert ("Early access" in page) is not release and ("before it is public" in page) is not release


def test_privacy_page_says_exactly_what_the_one_cookie_holds(app, client):
    html = client.get("/privacy").get_data(as_text=True)
    never = html[html.index("What is never stored") : html.index("</ul>", html.index("What is never stored"))]
    assert "cookie" not in never.replace("the one cookie below", "")  # not "no cookies", then a cookie
    cookie = html[html.index('id="cookie"') : html.index("<h2", html.index('id="cookie"'))]
    assert f"<code>{app.config['SESSION_COOKIE_NAME']}</code>" in cookie
    assert "anti-forgery token" in cookie and "your results key" in cookie and "not encrypted" in cookie
    # And what it says is what the cookie holds (test_session_cookie_holds_only_csrf_and_results_key).
    assert "not your answers, not your ballot" in cookie
