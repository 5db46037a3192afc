"""Hypothesis against the form and the JSON API: never a 5xx, rows grow only for valid input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from survey_app import state
from survey_app.questions import load_survey, validate_answers

from .helpers import FULL_ANSWERS, ROOT, form_tokens, fuzz_examples, make_app, row_count

# Hundreds of examples each: long, so `pytest -m "not slow"` leaves them out of a quick run.
pytestmark = pytest.mark.slow

SURVEY = load_survey(ROOT / "questions.yaml")
EXAMPLES = fuzz_examples("PULSE_FUZZ_EXAMPLES", ci=300, local=100)
KEYS = list(SURVEY.keys) + ["extra", "", "__proto__"]
OPTIONS = sorted({o.key for q in SURVEY.questions for o in q.options}) + ["", "x" * 50, "<script>"]

answer = st.one_of(
    st.sampled_from(OPTIONS),
    st.lists(st.sampled_from(OPTIONS), max_size=7),
    st.none(),
    st.integers(),
    st.text(max_size=20),
    st.booleans(),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
# Mostly-valid answer sets with a few fields mutated find the interesting edges.
mutated = st.dictionaries(st.sampled_from(KEYS), answer, max_size=10).map(lambda changes: FULL_ANSWERS | changes)
anything = st.dictionaries(st.text(max_size=12), answer, max_size=10)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    from survey_app import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.sqlite3'}"
    migrate.upgrade(url)
    app = make_app(url)
    yield app
    state.of(app).close()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        mutated.map(lambda a: {"answers": a}),
        anything.map(lambda a: {"answers": a}),
        st.dictionaries(st.text(max_size=10), answer, max_size=4),
        st.lists(st.integers(), max_size=3),
    )
)
def test_api_never_5xx_and_stores_only_valid(fuzz_app, body):
    before = row_count(fuzz_app)
    response = fuzz_app.test_client().post("/api/v1/responses", json=body)
    valid = isinstance(body, dict) and set(body) == {"answers"} and not validate_answers(SURVEY, body["answers"])[1]
    assert response.status_code < 500
    assert response.status_code == (201 if valid else 422), (body, response.get_json())
    assert row_count(fuzz_app) == before + (1 if valid else 0)


def form_pairs(answers: dict) -> list[tuple[str, str]]:
    pairs = []
    for key, value in answers.items():
        values = value if isinstance(value, list) else [value]
        pairs += [(str(key), str(v)) for v in values if v is not None]
    return pairs


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.one_of(mutated, anything), duplicate=st.sampled_from([None] + list(SURVEY.keys)))
def test_form_never_5xx_and_stores_only_valid(fuzz_app, answers, duplicate):
    client = fuzz_app.test_client()
    tokens = form_tokens(client.get("/survey").get_data(as_text=True))
    pairs = form_pairs(answers)
    if duplicate:
        pairs.append((duplicate, "psychiatry"))  # a repeated key: HTTP parameter pollution
    before = row_count(fuzz_app)
    response = client.post("/survey", data=MultiDict(pairs + list(tokens.items())))
    from survey_app.forms import answers_from_form

    valid = not answers_from_form(SURVEY, MultiDict(pairs))[1]
    # A generated field named like the form's own hidden fields comes first, so it is the one
    # read: a tampered CSRF token or timing stamp, refused with 400 before the answers.
    tampered = any(key in tokens for key, _ in pairs)
    assert response.status_code < 500
    assert response.status_code == (400 if tampered else 303 if valid else 422)
    assert row_count(fuzz_app) == before + (1 if valid and not tampered else 0)
