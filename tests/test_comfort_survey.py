"""surveys/patient-comfort.yaml, the program's second survey: it loads, is installed with the package,
scores as it says, and runs on the pages."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from survey_app import state
from survey_app.questions import INDEX_MAX, load_survey, validate_answers

from .helpers import ROOT, make_app, post_form

COMFORT = ROOT / "surveys" / "patient-comfort.yaml"
SURVEY = load_survey(COMFORT)
# The counts the pages write in words (_macros.html, in_words).
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def best_answers(survey) -> dict:
    """Each single-choice question's highest-scoring option (its first option when none scores),
    every non-exclusive option of a multi-choice question."""
    rules = {r.question: dict(r.points) for r in survey.scoring}
    answers = {}
    for q in survey.questions:
        points = rules.get(q.key, {})
        if q.type == "single":
            answers[q.key] = max(q.option_keys, key=lambda k: points.get(k, 0))
        else:
            answers[q.key] = [o.key for o in q.options if not o.exclusive]
    return answers


def least_answers(survey) -> dict:
    """Each single-choice question's lowest-scoring option, each multi-choice question's exclusive one."""
    rules = {r.question: dict(r.points) for r in survey.scoring}
    answers = {}
    for q in survey.questions:
        points = rules.get(q.key, {})
        if q.type == "single":
            answers[q.key] = min(q.option_keys, key=lambda k: points.get(k, 0))
        else:
            answers[q.key] = [next(o.key for o in q.options if o.exclusive)]
    return answers


def test_it_loads_as_the_second_survey():
    assert (SURVEY.id, SURVEY.version) == ("patient-comfort", 1)
    assert 6 <= len(SURVEY.questions) <= 8
    assert SURVEY.title and SURVEY.intro and SURVEY.index_note


def test_its_segment_reads_as_the_aftercare_surveys(survey):
    """Same question, keys, labels and heading as questions.yaml's, so 'clinics like yours' means the same."""
    assert SURVEY.segment == survey.segment == "practice_type"
    assert SURVEY.question(SURVEY.segment) == survey.question(survey.segment)
    assert SURVEY.segment_label == survey.segment_label
    assert SURVEY.question(SURVEY.segment).type == "single"


def test_privacy_text_is_the_same_promise(survey):
    assert SURVEY.privacy == survey.privacy


@pytest.mark.parametrize("path", [ROOT / "questions.yaml", COMFORT], ids=["aftercare", "comfort"])
def test_the_intro_claims_the_number_of_questions_it_has(path):
    loaded = load_survey(path)
    claims = [int(n) for n in re.findall(r"\b(\d+)-question", loaded.intro)]
    assert claims == [len(loaded.questions)], loaded.intro


def test_index_note_says_it_is_not_clinical_guidance():
    assert "describes practice" in SURVEY.index_note and "not clinical guidance" in SURVEY.index_note


def test_index_reaches_exactly_the_maximum():
    maximum = sum(rule.maximum(SURVEY.question(rule.question)) for rule in SURVEY.scoring)
    assert maximum == INDEX_MAX == 100


def test_keys_are_stable_identifiers_and_multi_choices_end_with_an_exclusive_none():
    for q in SURVEY.questions:
        assert SNAKE.fullmatch(q.key), q.key
        assert all(SNAKE.fullmatch(k) for k in q.option_keys), q.key
        exclusive = [o.key for o in q.options if o.exclusive]
        if q.type == "multi":
            assert exclusive == ["none"] and q.option_keys[-1] == "none", q.key
            assert q.options[-1].label.startswith("None"), q.key


def test_the_outcome_is_single_choice_and_not_scored():
    assert SURVEY.outcome and SURVEY.question(SURVEY.outcome).type == "single"
    assert SURVEY.outcome not in {r.question for r in SURVEY.scoring}
    assert SURVEY.outcome != SURVEY.segment
    # Changing only the outcome never moves the index.
    base = best_answers(SURVEY)
    scores = {SURVEY.index_of(base | {SURVEY.outcome: k}) for k in SURVEY.question(SURVEY.outcome).option_keys}
    assert scores == {INDEX_MAX}


def test_every_scored_question_is_a_question_other_than_segment_and_outcome():
    scored = {r.question for r in SURVEY.scoring}
    assert scored == set(SURVEY.keys) - {SURVEY.segment, SURVEY.outcome}


def test_the_packaged_copy_is_the_repository_file():
    """Installed as questions.yaml is: survey_app/surveys links to ../surveys, setup.cfg's package_data
    lists surveys/*.yaml, so `pip install .` and a wheel carry it."""
    packaged = resources.files("survey_app") / "surveys" / "patient-comfort.yaml"
    assert packaged.is_file()
    assert packaged.read_text(encoding="utf-8") == COMFORT.read_text(encoding="utf-8")
    assert load_survey(str(packaged)) == SURVEY


@pytest.mark.parametrize("question", SURVEY.keys)
def test_every_option_of_every_question_is_accepted_in_a_full_answer(question):
    q = SURVEY.question(question)
    for option in q.option_keys:
        answers = best_answers(SURVEY) | {question: option if q.type == "single" else [option]}
        clean, errors = validate_answers(SURVEY, answers)
        assert errors == {} and set(clean) == set(SURVEY.keys), (question, option, errors)


def test_the_none_of_these_options_cannot_be_combined():
    for q in SURVEY.questions:
        if q.type == "multi":
            answers = best_answers(SURVEY) | {q.key: [q.option_keys[0], "none"]}
            assert "cannot be combined" in validate_answers(SURVEY, answers)[1][q.key]


def test_best_practice_scores_the_maximum_and_none_of_it_the_minimum():
    best, least = best_answers(SURVEY), least_answers(SURVEY)
    assert validate_answers(SURVEY, best)[1] == {} and validate_answers(SURVEY, least)[1] == {}
    assert SURVEY.index_of(best) == INDEX_MAX
    # Every single-choice question has an option worth nothing and every multi-choice one an
    # exclusive "None of these", so the least an answer can score is 0.
    assert SURVEY.index_of(least) == 0


@pytest.mark.parametrize(
    "changes, lost",
    [
        ({"session_preferences": ["lighting", "music"]}, 6),
        ({"settle_before": "min_5_to_14"}, 5),
        ({"recovery_space": "at_home_guided"}, 0),  # a quiet place at home counts as a private room
        ({"recovery_space": "shared_quiet_area"}, 8),
        ({"settle_after": "set_30_plus"}, 5),
        ({"discomfort_signals": ["withdrawn"]}, 25),
    ],
)
def test_index_points(changes, lost):
    assert SURVEY.index_of(best_answers(SURVEY) | changes) == INDEX_MAX - lost


def test_the_pages_run_on_it(db_url):
    """An app started on the comfort survey shows its title, its questions and its own count."""
    app = make_app(db_url, PULSE_QUESTIONS=str(COMFORT), PULSE_MIN_FILL_SECONDS=30)
    client = app.test_client()
    n = len(SURVEY.questions)
    landing = client.get("/").get_data(as_text=True)
    assert SURVEY.title in landing and f"{n} questions · about 3 minutes" in landing
    form = client.get("/survey").get_data(as_text=True)
    assert all(q.text.replace("'", "&#39;") in form for q in SURVEY.questions)
    assert form.count('<span class="qnum">') == n and f"{n} of {n}</span>" in form
    refused = post_form(client, best_answers(SURVEY)).get_data(as_text=True)  # sooner than 30 seconds
    assert f"quicker than anyone can read {WORDS[n]} questions" in refused
    state.of(app).close()


def test_pages_name_its_own_index():
    """The comfort survey's index is the "comfort index" on its pages, never the aftercare one."""
    assert load_survey(COMFORT).index_name == "comfort index"
    assert load_survey(ROOT / "questions.yaml").index_name == "aftercare index"
