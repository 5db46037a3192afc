"""The API's bodies as models (api_models.py) and the document made from them (api_document.py).

Every response model round-trips the JSON the API answers, unchanged; the document's request
schemas accept exactly what the server accepts (answers of every survey, topic text, ballots);
each opened survey has its own responses path; refusals name the field as they always have.
"""

from __future__ import annotations

import json
import time

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey_app import admin_actions, api_document, api_models, program, snapshots, storage
from survey_app.community import voting as community
from survey_app.question_types import TYPES
from survey_app.questions import load_survey, validate_answers

from .helpers import FULL_ANSWERS, ROOT, submit_api

AFTERCARE = load_survey(ROOT / "questions.yaml")
COMFORT = load_survey(ROOT / "surveys" / "patient-comfort.yaml")
SURVEYS = [AFTERCARE, COMFORT]


def roundtrip(model, body) -> None:
    """The model reads the body and writes it back unchanged."""
    assert model.model_validate(body).model_dump(mode="json", by_alias=True, exclude_unset=True) == body


# ------------------------------------------------------------------ responses round-trip


def two_groups(i: int) -> dict:
    """Clinic i of 24: two practice types of 12, so the benchmark has segment groups and "you" a group."""
    return FULL_ANSWERS | {
        "practice_type": "psychiatry" if i % 2 else "dedicated_clinic",
        "first_followup": "within_24h" if i % 3 else "within_48h",
        "digital_tools": ["mood_app"] if i % 4 else ["none"],
    }


def test_every_response_model_round_trips_what_the_api_answers(app, client):
    seen = {}
    components = client.get("/api/v1/openapi.json").get_json()["components"]

    def check(model, response, status=200):
        """The model round-trips the body, and the document's schema of it (the model's) holds it."""
        assert response.status_code == status, response.get_data(as_text=True)[:300]
        roundtrip(model, response.get_json())
        schema = {"$ref": f"#/components/schemas/{model.__name__}", "components": components}
        jsonschema_rs.Draft202012Validator(schema).validate(response.get_json())
        seen[model] = True

    check(api_models.Topics, client.get("/api/v1/topics"))  # no round yet
    first = submit_api(client, two_groups(0)).get_json()["results_key"]
    unpublished = client.get("/api/v1/benchmarks", headers={"X-Results-Key": first})
    assert unpublished.get_json()["published"] is False and unpublished.get_json()["outcome"] is None
    check(api_models.Benchmark, unpublished)
    keys = [first]
    for i in range(1, 24):
        response = submit_api(client, two_groups(i))
        check(api_models.ResultsKey, response, 201)
        keys.append(response.get_json()["results_key"])
    with app.app_context():
        snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
        admin_actions.release(program.current_survey())
        topic = community.propose("Sleep after a session", "Line one\nline two")
        community.moderate(topic, "approve")
        program.link_topic("pulse-aftercare", 1, topic)
        community.open_round(closes_at=int(time.time()) + 86400)  # the listed round says when it closes
    check(api_models.Survey, client.get("/api/v1/survey"))
    check(api_models.Survey, client.get("/api/v1/surveys/pulse-aftercare/1"))
    check(api_models.SurveyList, client.get("/api/v1/surveys"))
    check(api_models.Benchmark, client.get("/api/v1/benchmarks"))
    with_you = client.get("/api/v1/benchmarks", headers={"X-Results-Key": keys[0]})
    assert with_you.get_json()["you"]["group"] is not None
    assert any(q["segments"] for q in with_you.get_json()["questions"])
    check(api_models.Benchmark, with_you)
    check(api_models.Topics, client.get("/api/v1/topics"))  # an open round
    headers = {"X-Results-Key": keys[1]}
    check(api_models.ProposalStored, client.post("/api/v1/topics", json={"title": "Music"}, headers=headers), 201)
    check(api_models.BallotStored, client.put("/api/v1/ballot", json={"approve": [topic]}, headers=headers))
    with app.app_context():
        community.close_round()
        program.close_survey()
    check(api_models.Topics, client.get("/api/v1/topics"))  # closed, with its choice
    check(api_models.SurveyList, client.get("/api/v1/surveys"))  # a closed survey: its weeks both set
    check(api_models.Error, submit_api(client, FULL_ANSWERS | {"practice_type": "spa"}), 422)
    check(api_models.Error, client.get("/api/v1/surveys/nope/1"), 404)
    assert set(seen) == set(api_models.RESPONSES)


def test_a_response_model_refuses_a_field_it_does_not_describe():
    schedule = {"opens": None, "closes": "2027-01-31T16:00:00Z"}
    body = {"id": "x", "version": 1, "title": "t", "invite_only": False, "questions": [], "schedule": schedule}
    roundtrip(api_models.Survey, body)
    with pytest.raises(ValueError):
        api_models.Survey.model_validate(body | {"extra": 1})


# ------------------------------------------------------------------ the document's request schemas


def document() -> dict:
    return api_document.document(AFTERCARE, SURVEYS)


DOC = document()


def validator(path: str, method: str = "post"):
    schema = DOC["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator(schema | {"components": DOC["components"]})


def answer_values(survey):
    """Answers near the edge: valid ones with one answer changed (its own options repeated, combined
    with an exclusive one, or none; another survey's keys; odd JSON), extra or missing questions."""
    keys = sorted({o.key for s in SURVEYS for q in s.questions for o in q.options}) + ["", "x"]
    value = st.one_of(
        st.sampled_from(keys),
        st.lists(st.sampled_from(keys), max_size=4),
        st.none(),
        st.integers(),
        st.booleans(),
        st.floats(allow_nan=False),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
    )
    valid = st.fixed_dictionaries(
        {
            q.key: (
                st.sampled_from(q.option_keys)
                if q.type == "single"
                else st.lists(st.sampled_from(q.option_keys), min_size=1, max_size=3, unique=True).filter(
                    lambda keys, q=q: len(keys) == 1 or not any(q.option(k).exclusive for k in keys)
                )
            )
            for q in survey.questions
        }
    )
    multi = [q for q in survey.questions if q.type == "multi"]
    lists = st.sampled_from(multi).flatmap(
        lambda q: st.tuples(st.just(q.key), st.lists(st.sampled_from(q.option_keys), max_size=4))
    )
    own = st.sampled_from(survey.questions).flatmap(
        lambda q: st.tuples(
            st.just(q.key),
            st.one_of(st.lists(st.sampled_from(q.option_keys), max_size=2), st.sampled_from(q.option_keys), value),
        )
    )
    names = st.sampled_from(list(survey.keys) + [k for s in SURVEYS for k in s.keys] + ["extra"])
    return st.one_of(
        valid,
        st.tuples(valid, lists).map(lambda t: t[0] | {t[1][0]: t[1][1]}),
        st.tuples(valid, lists).map(lambda t: t[0] | {t[1][0]: t[1][1]}),
        st.tuples(valid, own).map(lambda t: t[0] | {t[1][0]: t[1][1]}),
        st.tuples(valid, names).map(lambda t: {k: v for k, v in t[0].items() if k != t[1]}),
        st.tuples(valid, st.dictionaries(names, value, max_size=2)).map(lambda t: t[0] | t[1]),
        st.dictionaries(names, value, max_size=9),
        value,
    )


@pytest.mark.parametrize("survey", SURVEYS, ids=lambda s: s.id)
def test_each_survey_path_accepts_exactly_the_answers_the_server_accepts(survey):
    check = validator(f"/api/v1/surveys/{survey.id}/{survey.version}/responses")

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(answers=answer_values(survey))
    def agree(answers):
        accepted = not validate_answers(survey, answers)[1]
        assert check.is_valid({"answers": answers}) is accepted, (answers, validate_answers(survey, answers))
        body = {"answers": answers}
        try:
            api_models.submission_model(survey).parse(body)
            parsed = True
        except api_models.Refused:
            parsed = False
        assert parsed is accepted

    agree()
    example = DOC["paths"][f"/api/v1/surveys/{survey.id}/{survey.version}/responses"]["post"]["requestBody"]
    assert not validate_answers(survey, example["content"]["application/json"]["example"]["answers"])[1]


def test_every_question_type_has_a_check_and_a_schema():
    for name, kind in TYPES.items():
        assert kind.name == name
        for q in (q for s in SURVEYS for q in s.questions if q.type == name):
            assert jsonschema_rs.Draft202012Validator(kind.json_schema(q)).is_valid(kind.example(q))
            assert kind.check(q, kind.example(q)) is not None


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8) | st.sampled_from(
    [
        "",
        " ",
        "\u00a0",
        "\t",
        "ok\n",
        "ok\r\nmore",
        "a\x00",
        "a\x7f",
        "\u202e",
        "\u2066x",
        "\ufffe",
        "x" * 121,
        "y" * 1001,
        " title ",
        "\u200b",
    ]
)


@settings(max_examples=600, deadline=None)
@given(title=TEXT | st.integers() | st.none(), description=TEXT | st.none(), omit=st.booleans())
def test_the_proposal_schema_accepts_exactly_what_the_server_accepts(title, description, omit):
    body = {"title": title} if omit else {"title": title, "description": description}
    try:
        api_models.Proposal.parse(body)
        accepted = True
    except api_models.Refused:
        accepted = False
    assert validator("/api/v1/topics").is_valid(body) is accepted, body


@settings(max_examples=200, deadline=None)
@given(
    approve=st.lists(st.text(max_size=4) | st.integers(), max_size=4)
    | st.none()
    | st.text(max_size=3)
    | st.integers(495, 505).map(lambda n: ["t"] * n)
)
def test_the_ballot_schema_accepts_exactly_what_the_server_accepts(approve):
    try:
        api_models.Ballot.parse({"approve": approve})
        accepted = True
    except api_models.Refused:
        accepted = False
    assert validator("/api/v1/ballot", "put").is_valid({"approve": approve}) is accepted


def test_a_responses_path_for_each_opened_survey_and_none_for_another():
    doc = api_document.document(COMFORT, [COMFORT])
    assert "/api/v1/surveys/patient-comfort/1/responses" in doc["paths"]
    assert not any(path.startswith("/api/v1/surveys/pulse-aftercare") for path in doc["paths"])
    # The current survey's answers are the older path's, and the template's example.
    assert doc["components"]["schemas"]["Answers"]["required"] == list(COMFORT.keys)
    assert DOC["components"]["schemas"]["Answers.patient-comfort.1"]["required"] == list(COMFORT.keys)
    assert json.dumps(doc)  # plain JSON, nothing pydantic left in it


def test_an_invite_only_survey_documents_its_code_as_required():
    invite = type(AFTERCARE)(**{**AFTERCARE.__dict__, "invite_only": True})
    schema = api_models.submission_model(invite).model_json_schema()
    assert schema["required"] == ["answers", "invite_code"]
    # A missing code is refused after the answers, as ever (submissions.py): the model lets it by.
    assert api_models.submission_model(invite).parse({"answers": FULL_ANSWERS}).invite_code is None


# ------------------------------------------------------------------ refusals name the field as before


@pytest.mark.parametrize(
    "model, body, message, errors",
    [
        ("submission", {}, "The answers are missing.", {"answers": "required"}),
        (
            "submission",
            {"answers": {"x": 1}, "invite_code": 5},
            "The invite code must be text.",
            {"invite_code": "must be text"},
        ),
        (
            "submission",
            {"answers": "no"},
            "Some answers need attention.",
            {"answers": "must be an object mapping question keys to option keys"},
        ),
        (
            "submission",
            {"answers": FULL_ANSWERS | {"unknown_q": 1}},
            "Some answers need attention.",
            {"unknown_q": "unknown question"},
        ),
        ("submission", [1], "The body must be a JSON object.", {"body": "must be a JSON object"}),
        (
            "submission",
            {"answers": FULL_ANSWERS, "extra": 1},
            "Unknown fields in the body.",
            {"extra": "unknown field"},
        ),
        (
            api_models.Proposal,
            {"title": 5, "description": "a\x00"},
            "The proposal needs attention.",
            {
                "title": "the title must be text",
                "description": "the description contains control characters; use plain text",
            },
        ),
        (
            api_models.Proposal,
            {"description": "x" * 1001},
            "The proposal needs attention.",
            {
                "title": "the title is required",
                "description": "the description is 1001 characters long; at most 1000 are allowed",
            },
        ),
        (
            api_models.Proposal,
            {"title": " \u00a0 "},
            "The proposal needs attention.",
            {"title": "the title is required"},
        ),
        (api_models.Ballot, {}, "The ballot needs attention.", {"approve": "required"}),
        (
            api_models.Ballot,
            {"approve": ["t"] * 600 + [1]},
            "The ballot needs attention.",
            {"approve": "must be a list of topic ids"},
        ),
        (api_models.Ballot, {"approve": ["t"] * 501}, "The ballot needs attention.", {"approve": "at most 500 ids"}),
    ],
)
def test_refusals_name_the_field(model, body, message, errors):
    model = api_models.submission_model(AFTERCARE) if model == "submission" else model
    with pytest.raises(api_models.Refused) as refused:
        model.parse(body)
    assert (refused.value.message, refused.value.errors) == (message, errors)


def test_clean_values_come_out_of_the_models():
    proposal = api_models.Proposal.parse({"title": "  Sleep  ", "description": "a\r\nb "})
    assert (proposal.title, proposal.description) == ("Sleep", "a\nb")
    body = api_models.submission_model(AFTERCARE).parse(
        {"answers": FULL_ANSWERS | {"discharge_checks": ["emotional_checkin", "vitals"]}}
    )
    assert body.answers["discharge_checks"] == ["vitals", "emotional_checkin"]


def test_every_answer_in_need_is_named_however_many():
    with pytest.raises(api_models.Refused) as refused:
        api_models.submission_model(AFTERCARE).parse({"answers": {f"q{i}": "x" for i in range(12)}})
    assert len(refused.value.errors) == 12 + len(AFTERCARE.keys)
