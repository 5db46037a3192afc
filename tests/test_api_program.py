"""The API of the survey program: the list of surveys, each survey's own paths, and the older
paths that act on the current survey (with patient-comfort as the second survey)."""

from __future__ import annotations

import jsonschema_rs
import pytest
from sqlalchemy import select

from survey_app import admin_actions, program, snapshots, state, storage
from survey_app.community import voting as community
from survey_app.models import Response, StoredSurvey, SurveyState

from .helpers import FULL_ANSWERS, ROOT, fill, make_app, row_count, submit_api

COMFORT = ROOT / "surveys" / "patient-comfort.yaml"
COMFORT_ANSWERS = {
    "practice_type": "psychiatry",
    "session_preferences": ["lighting", "music"],
    "settle_before": "min_15_plus",
    "recovery_space": "private_room",
    "settle_after": "when_ready",
    "discomfort_signals": ["withdrawn", "patient_feedback"],
    "series_completion": "pct_75_89",
}
AFTERCARE = "/api/v1/surveys/pulse-aftercare/1"
COMFORT_PATH = "/api/v1/surveys/patient-comfort/1"
AFTERCARE_TITLE = "The Pulse of Clinical Aftercare"
COMFORT_TITLE = "The Pulse of Patient Comfort"


def started(app) -> None:
    """Start the program as a worker's first request does: the first survey stored, open and current."""
    with app.app_context():
        program.ensure_started()


def add_comfort(app) -> None:
    started(app)
    with app.app_context():
        program.add(COMFORT)


def open_survey(app, ref: str) -> None:
    with app.app_context():
        program.open_survey(ref)


def close_current(app) -> None:
    with app.app_context():
        program.close_survey()


def this_week() -> str:
    return storage.iso_week()


def listed(client) -> list[dict]:
    response = client.get("/api/v1/surveys")
    assert response.status_code == 200
    return response.get_json()["surveys"]


def stored(app) -> dict:
    """Row counts of every table a submission or a program change could write (once the program has started)."""
    started(app)
    return {model.__name__: row_count(app, model) for model in (Response, StoredSurvey, SurveyState)}


def responses_of(app) -> list[tuple[str, int]]:
    with app.app_context():
        return sorted(storage.reader().execute(select(Response.survey_id, Response.survey_version)).all())


def post_to(client, path: str, answers: dict):
    return client.post(path + "/responses", json={"answers": answers})


# ------------------------------------------------------------------ GET /api/v1/surveys


def test_the_list_shows_the_first_survey_as_it_stands(client):
    assert listed(client) == [
        {
            "id": "pulse-aftercare",
            "version": 1,
            "title": AFTERCARE_TITLE,
            "status": "open",
            "weeks": {"opened": this_week(), "closed": None},
            "responses": None,
            "topic": None,
            "schedule": {"opens": None, "closes": None},
        }
    ]


def test_a_survey_added_but_never_opened_is_not_listed(app, client):
    add_comfort(app)
    assert [s["id"] for s in listed(client)] == ["pulse-aftercare"]
    open_survey(app, "patient-comfort@1")
    assert [s["id"] for s in listed(client)] == ["patient-comfort", "pulse-aftercare"]


def test_the_current_survey_comes_first_and_closing_sets_its_week(app, client):
    add_comfort(app)
    open_survey(app, "patient-comfort@1")
    comfort, aftercare = listed(client)
    assert (comfort["id"], comfort["status"], comfort["weeks"]) == (
        "patient-comfort",
        "open",
        {"opened": this_week(), "closed": None},
    )
    assert comfort["title"] == COMFORT_TITLE
    # Opening another survey closed the first one, in this week.
    assert (aftercare["id"], aftercare["status"], aftercare["weeks"]) == (
        "pulse-aftercare",
        "closed",
        {"opened": this_week(), "closed": this_week()},
    )

    # Reopened, the first survey is current again: first in the list (not by name, not by age).
    open_survey(app, "pulse-aftercare@1")
    aftercare, comfort = listed(client)
    assert (aftercare["id"], aftercare["status"], aftercare["weeks"]["closed"]) == ("pulse-aftercare", "open", None)
    assert (comfort["id"], comfort["status"], comfort["weeks"]["closed"]) == ("patient-comfort", "closed", this_week())

    close_current(app)
    aftercare, comfort = listed(client)
    assert aftercare["id"] == "pulse-aftercare"  # closed, and still current
    assert (aftercare["status"], aftercare["weeks"]["closed"]) == ("closed", this_week())


def test_responses_stay_null_until_published_and_released(app, client):
    fill(app, client, 16)  # a published snapshot, still in early access
    assert client.get("/api/v1/benchmarks").status_code == 403
    assert listed(client)[0]["responses"] is None
    with app.app_context():
        admin_actions.release(program.current_survey())
    published = client.get("/api/v1/benchmarks").get_json()
    assert published["published"] and published["released"]
    assert listed(client)[0]["responses"] == published["responses"] == 16


def test_responses_stay_null_while_released_below_the_threshold(app, client):
    with app.app_context():
        admin_actions.release(program.current_survey())
    for _ in range(3):
        assert submit_api(client).status_code == 201
    with app.app_context():
        snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
    body = client.get("/api/v1/benchmarks").get_json()
    assert body["released"] and not body["published"]
    assert listed(client)[0]["responses"] is None


def test_the_topic_a_survey_answers_is_linked(app, client):
    started(app)
    with app.app_context():
        topic_id = community.propose("Patient comfort during sessions", "Lighting, music, a quiet room.")
        community.moderate(topic_id, "approve")
        program.link_topic("pulse-aftercare", 1, topic_id)
    assert listed(client)[0]["topic"] == {"id": topic_id, "title": "Patient comfort during sessions"}
    with app.app_context():
        program.link_topic("pulse-aftercare", 1, None)
    assert listed(client)[0]["topic"] is None


# ------------------------------------------------------------------ one survey's paths


def test_each_opened_survey_is_served_by_its_path(app, client, survey):
    add_comfort(app)
    assert client.get(COMFORT_PATH).status_code == 404  # added, never opened: not public
    open_survey(app, "patient-comfort@1")
    comfort = client.get(COMFORT_PATH).get_json()
    assert (comfort["id"], comfort["version"], comfort["title"]) == ("patient-comfort", 1, COMFORT_TITLE)
    assert [q["key"] for q in comfort["questions"]] == list(COMFORT_ANSWERS)
    # The closed survey is still there to read, with its own questions.
    aftercare = client.get(AFTERCARE).get_json()
    assert aftercare["id"] == "pulse-aftercare"
    assert [q["key"] for q in aftercare["questions"]] == list(survey.keys)


@pytest.mark.both_databases  # stores, or refuses to, in one SQL statement
def test_a_response_to_a_survey_path_is_stored_under_that_survey(app, client):
    add_comfort(app)
    open_survey(app, "patient-comfort@1")
    response = post_to(client, COMFORT_PATH, COMFORT_ANSWERS)
    assert response.status_code == 201
    assert len(response.get_json()["results_key"].replace("-", "")) == 26
    assert responses_of(app) == [("patient-comfort", 1)]
    # The other survey's answers are not this survey's: 422 naming its questions, nothing stored.
    refused = post_to(client, COMFORT_PATH, COMFORT_ANSWERS | {"first_followup": "within_24h"})
    assert refused.status_code == 422 and "first_followup" in refused.get_json()["errors"]
    assert responses_of(app) == [("patient-comfort", 1)]


@pytest.mark.both_databases  # stores, or refuses to, in one SQL statement
@pytest.mark.parametrize("how", ["another survey opened", "closed by the organisers"])
def test_a_survey_that_is_not_open_refuses_responses_with_409(app, client, how):
    if how == "another survey opened":
        add_comfort(app)
        open_survey(app, "patient-comfort@1")
    else:
        close_current(app)
    before = stored(app)
    response = post_to(client, AFTERCARE, FULL_ANSWERS)
    assert response.status_code == 409
    assert "closed" in response.get_json()["error"]
    assert stored(app) == before and before["Response"] == 0


def test_an_open_survey_path_accepts_the_same_answers(app, client):
    """The control for the 409 test: the same request while the survey is open is stored."""
    before = stored(app)
    assert post_to(client, AFTERCARE, FULL_ANSWERS).status_code == 201
    assert stored(app) == before | {"Response": 1}


UNKNOWN = [
    "/api/v1/surveys/no-such-survey/1",
    "/api/v1/surveys/pulse-aftercare/2",
    "/api/v1/surveys/pulse-aftercare/0",
    "/api/v1/surveys/PULSE-AFTERCARE/1",
    "/api/v1/surveys/patient-comfort/1",  # stored, never opened
    # What the database cannot hold answers 404 too, never a 500 or a 503 "cannot reach the database".
    "/api/v1/surveys/pulse-aftercare/2147483648",
    "/api/v1/surveys/pulse-aftercare/99999999999999999999999",
    "/api/v1/surveys/pulse%00aftercare/1",
    "/api/v1/surveys/" + "x" * 300 + "/1",
]


@pytest.mark.parametrize("path", UNKNOWN)
def test_an_unknown_survey_is_404_on_every_path(app, client, path):
    add_comfort(app)
    before = stored(app)
    assert client.get(path).status_code == 404
    response = post_to(client, path, FULL_ANSWERS)
    assert response.status_code == 404 and "error" in response.get_json()
    assert client.get(path + "/benchmarks", headers={"X-Results-Key": "x"}).status_code == 404
    assert client.get(path + "/benchmarks").status_code == 404
    assert stored(app) == before


@pytest.mark.parametrize("version", ["x", "one", "1.0", "1e0", "-1", "+1", "1a", "%201", "%31%2E"])
def test_a_version_that_is_not_a_number_is_404(app, client, version):
    path = f"/api/v1/surveys/pulse-aftercare/{version}"
    before = stored(app)
    assert client.get(path).status_code == 404
    assert post_to(client, path, FULL_ANSWERS).status_code == 404
    assert client.get(path + "/benchmarks").status_code == 404
    assert stored(app) == before


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
def test_bad_bodies_on_a_survey_path(app, client, kwargs, status):
    response = client.post(AFTERCARE + "/responses", **kwargs)
    assert response.status_code == status
    assert "error" in response.get_json()
    assert row_count(app) == 0


@pytest.mark.parametrize("path", ["/api/v1/responses", AFTERCARE + "/responses"])
def test_an_invite_code_that_is_not_text_is_422_even_where_none_is_needed(app, client, path):
    """The document says invite_code is a string on both paths; the survey not being in invite
    mode does not make a number or an object acceptable (the fuzzer found one accepted)."""
    for code in (None, 7, {}, ["A"]):
        refused = client.post(path, json={"answers": FULL_ANSWERS, "invite_code": code})
        assert refused.status_code == 422 and "invite_code" in refused.get_json()["errors"]
    assert row_count(app) == 0
    # Text is ignored by a survey that needs no code.
    assert client.post(path, json={"answers": FULL_ANSWERS, "invite_code": "ABCD"}).status_code == 201


def test_a_survey_path_shares_the_submission_limit_with_the_current_path(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="2 per hour")
    client = app.test_client()
    assert submit_api(client).status_code == 201
    assert post_to(client, AFTERCARE, FULL_ANSWERS).status_code == 201
    limited = post_to(client, AFTERCARE, FULL_ANSWERS)
    assert limited.status_code == 429 and "error" in limited.get_json()
    assert submit_api(client).status_code == 429
    assert row_count(app) == 2
    state.of(app).close()


# ------------------------------------------------------------------ keys and benchmarks per survey


def test_a_key_of_another_survey_is_401_naming_its_survey(app, client):
    aftercare_key = submit_api(client).get_json()["results_key"]
    add_comfort(app)
    open_survey(app, "patient-comfort@1")
    comfort_key = post_to(client, COMFORT_PATH, COMFORT_ANSWERS).get_json()["results_key"]

    refused = client.get(COMFORT_PATH + "/benchmarks", headers={"X-Results-Key": aftercare_key})
    assert refused.status_code == 401
    assert "pulse-aftercare@1" in refused.get_json()["error"] and AFTERCARE_TITLE in refused.get_json()["error"]
    refused = client.get(AFTERCARE + "/benchmarks", headers={"X-Results-Key": comfort_key})
    assert refused.status_code == 401
    assert "patient-comfort@1" in refused.get_json()["error"] and COMFORT_TITLE in refused.get_json()["error"]
    # The current survey's path is comfort's now: the aftercare key is another survey's there too.
    refused = client.get("/api/v1/benchmarks", headers={"X-Results-Key": aftercare_key})
    assert refused.status_code == 401 and "pulse-aftercare@1" in refused.get_json()["error"]

    # Each key opens its own survey's benchmark, on its path.
    own = client.get(AFTERCARE + "/benchmarks", headers={"X-Results-Key": aftercare_key})
    assert own.status_code == 200 and own.get_json()["survey"] == {"id": "pulse-aftercare", "version": 1}
    own = client.get(COMFORT_PATH + "/benchmarks", headers={"X-Results-Key": comfort_key})
    assert own.status_code == 200 and own.get_json()["survey"] == {"id": "patient-comfort", "version": 1}
    # A key that is no key at all says nothing about any survey.
    unknown = client.get(COMFORT_PATH + "/benchmarks", headers={"X-Results-Key": "A" * 26})
    assert unknown.status_code == 401 and "@" not in unknown.get_json()["error"]


def test_each_survey_has_its_own_early_access(app, client):
    keys = fill(app, client, 16, release=True)
    add_comfort(app)
    open_survey(app, "patient-comfort@1")
    released = client.get(AFTERCARE + "/benchmarks")
    assert released.status_code == 200 and released.get_json()["responses"] == 16
    assert client.get(COMFORT_PATH + "/benchmarks").status_code == 403
    you = client.get(AFTERCARE + "/benchmarks", headers={"X-Results-Key": keys[0]}).get_json()["you"]
    assert you["answers"]["practice_type"] == "psychiatry"


# ------------------------------------------------------------------ the older paths follow the current survey


def test_the_older_paths_act_on_the_current_survey(app, client):
    assert client.get("/api/v1/survey").get_json()["id"] == "pulse-aftercare"
    add_comfort(app)
    open_survey(app, "patient-comfort@1")
    body = client.get("/api/v1/survey").get_json()
    assert (body["id"], body["version"], body["title"]) == ("patient-comfort", 1, COMFORT_TITLE)
    assert [q["key"] for q in body["questions"]] == list(COMFORT_ANSWERS)

    refused = submit_api(client)  # the aftercare answers: not this survey's questions
    assert refused.status_code == 422 and "first_followup" in refused.get_json()["errors"]
    response = submit_api(client, COMFORT_ANSWERS)
    assert response.status_code == 201
    assert responses_of(app) == [("patient-comfort", 1)]
    key = response.get_json()["results_key"]
    benchmark = client.get("/api/v1/benchmarks", headers={"X-Results-Key": key}).get_json()
    assert benchmark["survey"] == {"id": "patient-comfort", "version": 1}

    close_current(app)  # closed and still current: the older paths refuse for it, not for another survey
    assert client.get("/api/v1/survey").get_json()["id"] == "patient-comfort"
    assert submit_api(client, COMFORT_ANSWERS).status_code == 409
    assert responses_of(app) == [("patient-comfort", 1)]


# ------------------------------------------------------------------ the OpenAPI document


def document(client) -> dict:
    return client.get("/api/v1/openapi.json").get_json()


def conforms(doc: dict, schema: dict, instance) -> None:
    """Validate an answer against a schema of the document (its $refs resolved within it)."""
    jsonschema_rs.Draft202012Validator(schema | {"components": doc["components"]}).validate(instance)


def response_schema(doc: dict, path: str, method: str, status: str) -> dict:
    return doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


SURVEY_PATH = "/api/v1/surveys/{survey_id}/{version}"


def test_openapi_documents_every_program_path_and_status(client):
    doc = document(client)
    paths = doc["paths"]
    assert set(paths["/api/v1/surveys"]) == {"get"}
    assert set(paths[SURVEY_PATH]) == {"get"}
    assert set(paths[SURVEY_PATH + "/responses"]) == {"post"}
    assert set(paths[SURVEY_PATH + "/benchmarks"]) == {"get"}
    assert set(paths["/api/v1/surveys"]["get"]["responses"]) == {"200"}
    assert set(paths[SURVEY_PATH]["get"]["responses"]) == {"200", "404"}
    assert set(paths[SURVEY_PATH + "/responses"]["post"]["responses"]) == {
        "201",
        "400",
        "404",
        "409",
        "413",
        "415",
        "422",
        "429",
    }
    assert set(paths[SURVEY_PATH + "/benchmarks"]["get"]["responses"]) == {"200", "401", "403", "404"}


def test_openapi_path_parameters_give_the_current_survey_as_example(app, client):
    for ref, expected in [(None, ("pulse-aftercare", 1)), ("patient-comfort@1", ("patient-comfort", 1))]:
        if ref:
            add_comfort(app)
            open_survey(app, ref)
        doc = document(client)
        for path in (SURVEY_PATH, SURVEY_PATH + "/responses", SURVEY_PATH + "/benchmarks"):
            operation = next(iter(doc["paths"][path].values()))
            params = {p["name"]: p for p in operation["parameters"] if p["in"] == "path"}
            assert set(params) == {"survey_id", "version"}
            assert all(p["required"] for p in params.values())
            assert (params["survey_id"]["example"], params["version"]["example"]) == expected
            assert params["version"]["schema"]["type"] == "integer"


def request_schema(doc: dict, path: str) -> dict:
    return doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_openapi_answers_of_each_opened_survey_are_its_own(app, client, survey):
    """A path template cannot say which survey a body is for, so each opened survey has its own
    responses path taking exactly its answers; the template gives the current survey's (its example)."""
    add_comfort(app)  # stored, never opened: no path of its own
    doc = document(client)
    assert "/api/v1/surveys/patient-comfort/1/responses" not in doc["paths"]
    body = doc["paths"][SURVEY_PATH + "/responses"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    assert schema["required"] == ["answers"]
    conforms(doc, schema, {"answers": FULL_ANSWERS})
    conforms(doc, schema, {"answers": FULL_ANSWERS, "invite_code": "ABCD"})
    for bad in (
        {"answers": FULL_ANSWERS | {"first_followup": 1}},
        {"answers": FULL_ANSWERS | {"digital_tools": []}},
        {"answers": []},
        {"answers": FULL_ANSWERS, "extra": 1},
        {},
        {"answers": COMFORT_ANSWERS},
        {"answers": FULL_ANSWERS | {"unknown_q": "x"}},
    ):
        with pytest.raises(jsonschema_rs.ValidationError):
            conforms(doc, schema, bad)
    # Its example is a valid response to the current survey, so the fuzzer reaches a 201.
    assert body["example"] == {"answers": body["example"]["answers"]}
    assert post_to(client, AFTERCARE, body["example"]["answers"]).status_code == 201

    open_survey(app, "patient-comfort@1")
    doc = document(client)
    aftercare, comfort = request_schema(doc, AFTERCARE + "/responses"), request_schema(doc, COMFORT_PATH + "/responses")
    conforms(doc, aftercare, {"answers": FULL_ANSWERS})
    conforms(doc, comfort, {"answers": COMFORT_ANSWERS})
    for schema, other in ((aftercare, COMFORT_ANSWERS), (comfort, FULL_ANSWERS)):
        with pytest.raises(jsonschema_rs.ValidationError):
            conforms(doc, schema, {"answers": other})
    precise = doc["components"]["schemas"]["Answers"]  # /api/v1/responses keeps the current survey's
    assert precise["required"] == list(COMFORT_ANSWERS) and precise["additionalProperties"] is False
    current = request_schema(doc, "/api/v1/responses")
    # A survey not in invite mode ignores a code given as text: optional, and still a string.
    assert current["required"] == ["answers"] and current["properties"]["invite_code"]["type"] == "string"
    conforms(doc, current, {"answers": COMFORT_ANSWERS, "invite_code": "ABCD"})


def test_openapi_schemas_match_what_the_program_paths_answer(app, client):
    started(app)
    with app.app_context():
        topic_id = community.propose("Patient comfort during sessions", "")
        community.moderate(topic_id, "approve")
        program.link_topic("pulse-aftercare", 1, topic_id)
    keys = fill(app, client, 16, release=True)
    add_comfort(app)
    open_survey(app, "patient-comfort@1")
    doc = document(client)
    surveys = client.get("/api/v1/surveys").get_json()
    assert [s["responses"] for s in surveys["surveys"]] == [None, 16]
    assert surveys["surveys"][1]["topic"]["id"] == topic_id
    conforms(doc, response_schema(doc, "/api/v1/surveys", "get", "200"), surveys)
    conforms(doc, response_schema(doc, SURVEY_PATH, "get", "200"), client.get(COMFORT_PATH).get_json())
    benchmarks = response_schema(doc, SURVEY_PATH + "/benchmarks", "get", "200")
    conforms(doc, benchmarks, client.get(AFTERCARE + "/benchmarks", headers={"X-Results-Key": keys[0]}).get_json())
    created = post_to(client, COMFORT_PATH, COMFORT_ANSWERS)
    conforms(doc, response_schema(doc, SURVEY_PATH + "/responses", "post", "201"), created.get_json())
    for status, answer in [
        ("404", client.get("/api/v1/surveys/nope/1")),
        ("409", post_to(client, AFTERCARE, FULL_ANSWERS)),
        ("401", client.get(COMFORT_PATH + "/benchmarks", headers={"X-Results-Key": keys[0]})),
    ]:
        assert str(answer.status_code) == status
        path, method = (
            (SURVEY_PATH + "/responses", "post")
            if status == "409"
            else ((SURVEY_PATH + "/benchmarks", "get") if status == "401" else (SURVEY_PATH, "get"))
        )
        conforms(doc, response_schema(doc, path, method, status), answer.get_json())
    # The listing's schema holds exactly its fields, with the states it can take.
    item = doc["components"]["schemas"]["SurveyListing"]
    assert set(item["required"]) == {"id", "version", "title", "status", "weeks", "responses", "topic", "schedule"}
    assert item["properties"]["status"]["enum"] == ["open", "closed"]
    with pytest.raises(jsonschema_rs.ValidationError):
        conforms(
            doc,
            response_schema(doc, "/api/v1/surveys", "get", "200"),
            {"surveys": [surveys["surveys"][0] | {"status": "added"}]},
        )
