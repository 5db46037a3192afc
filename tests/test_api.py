"""The JSON API: the survey, submissions with every kind of bad body, the OpenAPI document."""

from __future__ import annotations

import pytest

from survey_app import program_queries, storage

from .helpers import FULL_ANSWERS, row_count, submit_api


def test_get_survey(client, survey):
    body = client.get("/api/v1/survey").get_json()
    assert body["id"] == survey.id and body["version"] == survey.version
    assert [q["key"] for q in body["questions"]] == list(survey.keys)
    assert body["questions"][1]["options"][-1] == {"key": "none", "label": "None of these routinely", "exclusive": True}


def test_submit_returns_201_and_key(app, client):
    response = submit_api(client)
    assert response.status_code == 201
    assert len(response.get_json()["results_key"].replace("-", "")) == 26
    assert row_count(app) == 1


@pytest.mark.parametrize(
    "answers, field",
    [
        ({k: v for k, v in FULL_ANSWERS.items() if k != "mood_tracking"}, "mood_tracking"),
        (FULL_ANSWERS | {"unknown_q": "x"}, "unknown_q"),
        (FULL_ANSWERS | {"practice_type": "spa"}, "practice_type"),
        (FULL_ANSWERS | {"practice_type": ["psychiatry"]}, "practice_type"),
        (FULL_ANSWERS | {"digital_tools": ["none", "mood_app"]}, "digital_tools"),
        (FULL_ANSWERS | {"digital_tools": []}, "digital_tools"),
        (FULL_ANSWERS | {"digital_tools": ["mood_app", "mood_app"]}, "digital_tools"),
        (FULL_ANSWERS | {"digital_tools": "mood_app"}, "digital_tools"),
        (FULL_ANSWERS | {"first_followup": 1}, "first_followup"),
        (FULL_ANSWERS | {"first_followup": None}, "first_followup"),
        ("not an object", "answers"),
        ([], "answers"),
    ],
)
def test_bad_answers_are_422_naming_the_field(app, client, answers, field):
    response = submit_api(client, answers)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert row_count(app) == 0


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"data": "{not json", "content_type": "application/json"}, 400),
        ({"data": "answers=1", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"data": "[1, 2]", "content_type": "application/json"}, 422),
        ({"json": {"answers": FULL_ANSWERS, "extra": 1}}, 422),
        ({"json": {}}, 422),
        ({"data": '{"answers": ' + '"x", "a":' * 9000 + '"y"}', "content_type": "application/json"}, 413),
    ],
)
def test_bad_bodies(app, client, kwargs, status):
    response = client.post("/api/v1/responses", **kwargs)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert row_count(app) == 0


@pytest.mark.both_databases  # stores, or refuses to, in one SQL statement
def test_closed_survey_is_409(app, client):
    with app.app_context():
        with storage.writer() as db:
            program_queries.set_survey_state(db, "pulse-aftercare", 1, is_open=False)
    assert submit_api(client).status_code == 409
    assert row_count(app) == 0


def test_openapi_describes_the_routes(client, survey):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {"/api/v1/survey", "/api/v1/responses", "/api/v1/benchmarks"} <= set(doc["paths"])
    answers = doc["components"]["schemas"]["Answers"]
    assert answers["required"] == list(survey.keys)
    assert answers["properties"]["practice_type"]["enum"] == list(survey.question("practice_type").option_keys)
    none_alone = answers["properties"]["digital_tools"]["oneOf"][1]
    assert none_alone["items"]["enum"] == ["none"] and none_alone["maxItems"] == 1
    codes = set(doc["paths"]["/api/v1/responses"]["post"]["responses"])
    assert {"201", "400", "409", "413", "415", "422", "429"} <= codes


def test_benchmarks_with_a_key_are_the_public_document_and_you(app, client):
    """The stored snapshot's bytes with "you" added: the same members as the public document, once each."""
    import json

    from .helpers import fill

    results_key = fill(app, client, release=True)[0]
    public = client.get("/api/v1/benchmarks")
    with_key = client.get("/api/v1/benchmarks", headers={"X-Results-Key": results_key})
    assert with_key.status_code == 200 and with_key.mimetype == "application/json"

    def unique(pairs):
        names = [name for name, _ in pairs]
        assert len(names) == len(set(names)), names
        return dict(pairs)

    body = json.loads(with_key.data, object_pairs_hook=unique)
    you = body.pop("you")
    assert body == public.get_json()
    assert you["answers"]["practice_type"] == "psychiatry"
