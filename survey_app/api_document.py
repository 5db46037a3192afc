"""The OpenAPI 3 document of /api/v1, assembled from the bodies' models (api_models.py).

The bodies' schemas are pydantic's; this module adds only what a schema cannot say: the
paths, their statuses and parameters. Every survey that has been opened gets its own
responses path with its own answers schema, so the document accepts exactly the answers
the server accepts for each survey (a path template cannot say which survey a body is for).
Pure: neither Flask nor a database; the view hands it the surveys.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from pydantic_core import core_schema

from . import api_models as m
from .questions import Survey, example_answers

REF = "#/components/schemas/{model}"
KEY_HEADER = {
    "name": "X-Results-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The results key shown after submitting.",
}


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON Schema, written as the document has always been: no titles on properties,
    no defaults, and a nullable scalar as a list of types ({"type": ["string", "null"]})."""

    def field_title_should_be_set(self, schema) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        return self.generate_inner(schema["schema"])

    def nullable_schema(self, schema: core_schema.NullableSchema) -> dict[str, Any]:
        inner = self.generate_inner(schema["schema"])
        if isinstance(inner.get("type"), str) and "$ref" not in inner:
            return inner | {"type": [inner["type"], "null"]}
        return {"oneOf": [inner, {"type": "null"}]}


@lru_cache(maxsize=256)
def _schema(model) -> dict[str, Any]:
    """A model's JSON Schema, made once per worker (models do not change; nothing edits the result)."""
    return model.model_json_schema(ref_template=REF, schema_generator=_Schema)


@cache
def _components() -> dict[str, Any]:
    """The response bodies' schemas, by name (the requests are described inline where they are read)."""
    _, defs = models_json_schema(
        [(model, "validation") for model in m.RESPONSES + m.REQUESTS], ref_template=REF, schema_generator=_Schema
    )
    return {
        name: schema for name, schema in defs["$defs"].items() if name not in {model.__name__ for model in m.REQUESTS}
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


def answers_name(survey: Survey, current: Survey) -> str:
    """The component that holds a survey's answers: "Answers" for the current survey."""
    return "Answers" if survey == current else f"Answers.{survey.id}.{survey.version}"


def submission(survey: Survey, current: Survey, components: dict) -> dict:
    """A survey's request body, its answers a component of their own."""
    schema = _schema(m.submission_model(survey))
    components[answers_name(survey, current)] = schema["properties"]["answers"]
    return schema | {"properties": schema["properties"] | {"answers": _ref(answers_name(survey, current))}}


def _submit(
    survey: Survey, body: dict, summary: str, closed: str, unknown: dict | None = None, parameters: list | None = None
) -> dict:
    operation: dict[str, Any] = {"summary": summary}
    if parameters:
        operation["parameters"] = parameters
    operation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": body, "example": {"answers": example_answers(survey)}}},
    }
    operation["responses"] = {
        "201": _json(_ref("ResultsKey"), "Stored; the results key is shown only now"),
        "400": _error("The body is not valid JSON"),
        **({"404": unknown} if unknown else {}),
        "409": _error(closed),
        "413": _error("The body is too large"),
        "415": _error("The body is not JSON"),
        "422": _error("Answers that do not fit this survey, or a bad body; errors by question key or field"),
        "429": _error("Too many submissions from this network (one budget for every responses path)"),
    }
    return {"post": operation}


def survey_parameters(survey: Survey) -> list[dict]:
    """The path parameters naming one survey; the current survey is the example."""
    return [
        {
            "name": "survey_id",
            "in": "path",
            "required": True,
            "example": survey.id,
            "schema": {"type": "string", "minLength": 1},
            "description": "The survey's id, as GET /api/v1/surveys lists it. A survey never opened is unknown (404).",
        },
        {
            "name": "version",
            "in": "path",
            "required": True,
            "example": survey.version,
            "schema": {"type": "integer", "minimum": 1},
            "description": "The survey's version, a whole number; anything else is no path here (404).",
        },
    ]


def survey_paths(current: Survey, opened: list[Survey], components: dict) -> dict:
    """/api/v1/surveys, the paths of any survey by id and version, and each opened survey's responses path."""
    params = survey_parameters(current)
    unknown = _error("No survey with this id and version has been opened")
    closed = "This survey is not open: closed by the organisers, or another survey is current"
    paths: dict[str, Any] = {
        "/api/v1/surveys": {
            "get": {
                "summary": "Every survey that has been opened, the current one first",
                "responses": {"200": _json(_ref("SurveyList"), "The surveys")},
            }
        },
        "/api/v1/surveys/{survey_id}/{version}": {
            "get": {
                "summary": "One survey: questions and options",
                "parameters": params,
                "responses": {"200": _json(_ref("Survey"), "The survey"), "404": unknown},
            }
        },
        "/api/v1/surveys/{survey_id}/{version}/responses": _submit(
            current,
            submission(current, current, components),
            "Submit one clinic's answers to the survey named in the path",
            closed,
            unknown,
            params,
        ),
        "/api/v1/surveys/{survey_id}/{version}/benchmarks": {
            "get": {
                "summary": "This survey's latest benchmark snapshot",
                "parameters": params + [KEY_HEADER],
                "responses": {
                    "200": _json(_ref("Benchmark"), "The benchmark"),
                    "401": _error(
                        "Malformed or unknown results key, or a key of another survey (the message names it)"
                    ),
                    "403": _error("This survey's results are in early access: a results key is needed"),
                    "404": unknown,
                },
            }
        },
    }
    paths["/api/v1/surveys/{survey_id}/{version}/responses"]["post"]["description"] = (
        "A survey's answers are its own: each opened survey has its own path below, with its own "
        "answers schema. This one gives the current survey's; answers to another survey are refused "
        "with 422 naming the question, and a survey never opened is 404 whatever the body."
    )
    for survey in opened:
        paths[f"/api/v1/surveys/{survey.id}/{survey.version}/responses"] = _submit(
            survey,
            submission(survey, current, components),
            f"Submit one clinic's answers to {survey.title} (version {survey.version})",
            closed,
        )
    return paths


def document(current: Survey, opened: list[Survey]) -> dict:
    """The whole OpenAPI document: `current` serves the older paths, `opened` (every survey ever
    opened, the current one among them) each get their own responses path."""
    components = dict(_components())
    paths = {
        "/api/v1/survey": {
            "get": {
                "summary": "The survey: questions and options",
                "responses": {"200": _json(_ref("Survey"), "The survey")},
            }
        },
        "/api/v1/responses": _submit(
            current, submission(current, current, components), "Submit one clinic's answers", "The survey is closed"
        ),
        "/api/v1/benchmarks": {
            "get": {
                "summary": "The latest benchmark snapshot",
                "parameters": [KEY_HEADER],
                "responses": {
                    "200": _json(_ref("Benchmark"), "The benchmark"),
                    "401": _error("Malformed or unknown results key"),
                    "403": _error("Results are in early access: a results key is needed"),
                },
            }
        },
        "/api/v1/topics": {
            "get": {
                "summary": "The latest voting round and its topics",
                "description": "Topics of the latest round: in random order with votes null while it is open, "
                "most approved first with the tally once it is closed, when `round.chosen` "
                "names the topic it chose (null while a tie waits for the organisers). While it is "
                "open, `round.closes` says when it closes by itself (UTC; null when the organisers "
                "close it). With no round yet, the approved topics waiting for one (votes null).",
                "responses": {"200": _json(_ref("Topics"), "The round and its topics")},
            },
            "post": {
                "summary": "Propose a topic for the next survey (moderated before it is shown)",
                "parameters": [KEY_HEADER],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _schema(m.Proposal)}}},
                "responses": {
                    "201": _json(_ref("ProposalStored"), "Stored, waiting for moderation"),
                    "400": _error("The body is not valid JSON"),
                    "401": _error("No X-Results-Key, or a malformed or unknown one"),
                    "413": _error("The body is too large"),
                    "415": _error("The body is not JSON"),
                    "422": _error("Invalid title or description; errors by field"),
                    "429": _error("Too many proposals from this network or results key"),
                },
            },
        },
        "/api/v1/ballot": {
            "put": {
                "summary": "Cast or replace this results key's approval ballot in the open round",
                "parameters": [KEY_HEADER],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _schema(m.Ballot)}}},
                "responses": {
                    "200": _json(_ref("BallotStored"), "Stored; it replaces this key's earlier ballot in the round"),
                    "400": _error("The body is not valid JSON"),
                    "401": _error("No X-Results-Key, or a malformed or unknown one"),
                    "409": _error("No voting round is open"),
                    "413": _error("The body is too large"),
                    "415": _error("The body is not JSON"),
                    "422": _error("A topic not in the open round (rejected, merged or unknown), or a bad body"),
                    "429": _error("Too many ballots from this network"),
                },
            }
        },
    } | survey_paths(current, opened, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Pulse API: {current.title}",
            "version": "1.0.0",
            "description": "Anonymous survey and benchmark. Nothing here identifies a clinic.",
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items()))},
    }
