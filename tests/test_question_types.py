"""A question type is one class, registered once: a new one needs nothing else.

A toy type, defined and registered here only, goes through everything a survey does: the file
is parsed, the form asks it, the API and the form take answers to it, the tally counts them
(and refuses an answer of another shape), the results page and the API show it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from survey_app import question_types, snapshots, state
from survey_app.domain_errors import Invalid
from survey_app.pipeline import charts
from survey_app.pipeline.tallies import tally
from survey_app.question_types import AnswerError, SingleChoice
from survey_app.questions import SurveyError, answers_schema, parse_survey, validate_answers

from .helpers import FULL_ANSWERS, ROOT, fill, form_tokens, make_app, post_form

QUESTIONS = (ROOT / "questions.yaml").read_text()
# The aftercare survey with its first follow-up (a ladder of answers) asked as a scale.
SCALE_SURVEY = QUESTIONS.replace(
    "  - key: first_followup\n    type: single", "  - key: first_followup\n    type: scale"
)


class Scale(SingleChoice):
    """One point of an ordered scale: answered, counted and scored as one choice, said its own way."""

    name = "scale"
    title = "scale"
    answers_note = "One point on the scale each."
    caption = "Share of clinics at each point"
    form_hint = "Pick one point on the scale."

    def check(self, q, value):
        if isinstance(value, int) and not isinstance(value, bool):
            raise AnswerError("must be the key of a point on the scale, not its number")
        return super().check(q, value)


@pytest.fixture
def scale():
    kind = question_types.register(Scale())
    yield kind
    del question_types.TYPES["scale"]


def test_a_type_is_known_only_once_registered(scale):
    assert parse_survey(SCALE_SURVEY, "x.yaml").question("first_followup").kind is scale
    del question_types.TYPES["scale"]
    try:
        with pytest.raises(SurveyError, match=r"x.yaml, line \d+: question 'first_followup': unknown type 'scale'"):
            parse_survey(SCALE_SURVEY, "x.yaml")
    finally:
        question_types.register(scale)
    with pytest.raises(ValueError):
        question_types.register(Scale())  # one class per name


def test_a_registered_type_is_parsed_checked_and_tallied(scale):
    survey = parse_survey(SCALE_SURVEY, "x.yaml")
    q = survey.question("first_followup")
    assert q.type == "scale" and q.kind is scale
    # Its rules in the file: a one-answer type has no exclusive options.
    broken = SCALE_SURVEY.replace("      - key: within_24h\n", "      - key: within_24h\n        exclusive: true\n", 1)
    with pytest.raises(SurveyError, match="only multi-choice questions have exclusive options"):
        parse_survey(broken, "x.yaml")
    # Its check, and the schema the API document publishes.
    assert validate_answers(survey, FULL_ANSWERS) == (FULL_ANSWERS, {})
    assert validate_answers(survey, FULL_ANSWERS | {"first_followup": 2})[1] == {
        "first_followup": "must be the key of a point on the scale, not its number"
    }
    assert answers_schema(survey)["properties"]["first_followup"]["enum"] == list(q.option_keys)
    # Its count, and a stored answer of another shape refused.
    rows = [json.dumps(FULL_ANSWERS | {"first_followup": k}) for k in ("within_24h", "within_24h", "within_72h")]
    counted = tally(survey, rows).totals("options", lambda key: key[2] if key[1] == "first_followup" else None)
    assert counted == {"within_24h": 2, "within_72h": 1}
    with pytest.raises(Invalid) as caught:
        tally(survey, [*rows, json.dumps(FULL_ANSWERS | {"first_followup": ["within_24h"]})])
    assert caught.value.data["question"] == "first_followup"


def test_a_registered_type_is_asked_and_shown(scale, db_url, tmp_path: Path):
    path = tmp_path / "scale.yaml"
    path.write_text(SCALE_SURVEY)
    app = make_app(db_url, PULSE_QUESTIONS=str(path))
    client = app.test_client()
    page = client.get("/survey").get_data(as_text=True)
    question = page[page.index('id="q-first_followup"') :]
    question = question[: question.index("</fieldset>")]
    assert "Pick one point on the scale." in question and 'type="radio"' in question
    tokens = form_tokens(page)
    assert post_form(client, FULL_ANSWERS | {"first_followup": "within_48h"}, tokens).status_code in (302, 303)

    fill(app, client, release=True)
    api = client.get("/api/v1/survey").get_json()
    assert next(q for q in api["questions"] if q["key"] == "first_followup")["type"] == "scale"
    results = client.get("/results").get_data(as_text=True)
    block = results[results.index('id="q-first_followup"') :]
    block = block[: block.index("</section>")]
    assert "One point on the scale each." in block and "Share of clinics at each point (N = " in block
    with app.app_context():
        body = snapshots.served(app.config["SURVEY"]).published
    state.of(app).close()
    shown = next(q for q in body.questions if q.key == "first_followup")
    assert shown.type == "scale"
    figure = charts.question_figure(app.config["SURVEY"], shown, FULL_ANSWERS)
    assert [t["type"] for t in figure["data"]][0] == "bar"
    assert "Your answer" in json.dumps(figure)
