"""The OpenAPI 3 document of /api/v1, built from the survey so it matches what the API accepts."""
from __future__ import annotations

from typing import Any

from .community import rules as community
from .questions import Survey

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
WEEK = {"type": "string", "pattern": r"^\d{4}-W\d{2}$"}
CELLS = {"type": "array", "items": {"$ref": "#/components/schemas/Cell"}}
KEY_HEADER = {"name": "X-Results-Key", "in": "header", "required": False, "schema": {"type": "string"},
              "description": "The results key shown after submitting."}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _object(required: list[str], **properties: dict) -> dict:
    """A JSON object schema with these properties, of which `required` must be present."""
    return {"type": "object", "required": required, "properties": properties}


def _array(items: dict) -> dict:
    return {"type": "array", "items": items}


def answers_schema(survey: Survey) -> dict:
    """JSON schema of the answers object: one property per question, all required."""
    properties: dict[str, Any] = {}
    for q in survey.questions:
        keys = list(q.option_keys)
        if q.type == "single":
            properties[q.key] = {"type": "string", "enum": keys, "description": q.text}
        else:
            exclusive = [o.key for o in q.options if o.exclusive]
            real = [o.key for o in q.options if not o.exclusive]
            several = _array({"type": "string", "enum": real}) | {"minItems": 1, "uniqueItems": True}
            if not exclusive:
                properties[q.key] = several | {"description": q.text}
                continue
            # An exclusive option ("None of these") stands alone: say so in the schema itself.
            alone = _array({"type": "string", "enum": exclusive}) | {"minItems": 1, "maxItems": 1}
            note = f"An exclusive option ({', '.join(exclusive)}) stands alone."
            properties[q.key] = {"oneOf": [several, alone], "description": f"{q.text} {note}"}
    return {"type": "object", "properties": properties, "required": list(survey.keys),
            "additionalProperties": False}


def any_answers_schema() -> dict:
    """JSON schema of the answers to any survey: what every survey's answers share, nothing more.

    A survey path takes the answers of whichever survey it names, so its schema cannot list one
    survey's questions; the survey itself (GET /api/v1/surveys/{survey_id}/{version}) does.
    """
    one = {"type": "string", "description": "The key of one option (a single-choice question)."}
    several = _array(STRING) | {"minItems": 1, "uniqueItems": True,
                                "description": "Keys of options (a multi-choice question); an exclusive "
                                               "option stands alone."}
    return {"type": "object", "minProperties": 1, "additionalProperties": {"oneOf": [one, several]},
            "description": "One property per question of the survey named in the path, all required: by "
                           "question key, the key of one option or a list of option keys, as GET "
                           "/api/v1/surveys/{survey_id}/{version} lists them. Answers that do not fit that "
                           "survey are refused with 422, naming the question."}


def example_answers(survey: Survey) -> dict:
    """A complete, valid set of answers to this survey: each question's first option that stands with others."""
    answers: dict[str, Any] = {}
    for q in survey.questions:
        first = next((o.key for o in q.options if not o.exclusive), q.options[0].key)
        answers[q.key] = first if q.type == "single" else [first]
    return answers


def survey_parameters(survey: Survey) -> list[dict]:
    """The path parameters naming one survey; the current survey is the example."""
    return [
        {"name": "survey_id", "in": "path", "required": True, "example": survey.id,
         "schema": {"type": "string", "minLength": 1},
         "description": "The survey's id, as GET /api/v1/surveys lists it. A survey never opened is unknown (404)."},
        {"name": "version", "in": "path", "required": True, "example": survey.version,
         "schema": {"type": "integer", "minimum": 1},
         "description": "The survey's version, a whole number; anything else is no path here (404)."},
    ]


def survey_paths(survey: Survey) -> dict:
    """/api/v1/surveys and each survey's own paths, which work for any survey that has been opened."""
    params = survey_parameters(survey)
    unknown = _error("No survey with this id and version has been opened")
    submit_body = {"type": "object", "required": ["answers"], "additionalProperties": False, "properties": {
        "answers": {"$ref": "#/components/schemas/SurveyAnswers"},
        "invite_code": {"type": "string", "description": "Required by a survey in invite mode (invite_only)."}}}
    example = {"answers": example_answers(survey)}
    return {
        "/api/v1/surveys": {"get": {
            "summary": "Every survey that has been opened, the current one first",
            "responses": {"200": {"description": "The surveys", "content": {"application/json": {
                "schema": _object(["surveys"], surveys=_array({"$ref": "#/components/schemas/SurveyListing"}))}}}}}},
        "/api/v1/surveys/{survey_id}/{version}": {"get": {
            "summary": "One survey: questions and options",
            "parameters": params,
            "responses": {
                "200": {"description": "The survey", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Survey"}}}},
                "404": unknown}}},
        "/api/v1/surveys/{survey_id}/{version}/responses": {"post": {
            "summary": "Submit one clinic's answers to this survey",
            "parameters": params,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": submit_body, "example": example}}},
            "responses": {
                "201": {"description": "Stored; the results key is shown only now", "content": {
                    "application/json": {"schema": {"type": "object", "required": ["results_key"],
                                                    "properties": {"results_key": {"type": "string"}}}}}},
                "400": _error("The body is not valid JSON"),
                "404": unknown,
                "409": _error("This survey is not open: closed by the organisers, or another survey is current"),
                "413": _error("The body is too large"),
                "415": _error("The body is not JSON"),
                "422": _error("Answers that do not fit this survey, or a bad body; errors by question key or field"),
                "429": _error("Too many submissions from this network (one budget with /api/v1/responses)")}}},
        "/api/v1/surveys/{survey_id}/{version}/benchmarks": {"get": {
            "summary": "This survey's latest benchmark snapshot",
            "parameters": params + [KEY_HEADER],
            "responses": {
                "200": {"description": "The benchmark", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Benchmark"}}}},
                "401": _error("Malformed or unknown results key, or a key of another survey (the message names it)"),
                "403": _error("This survey's results are in early access: a results key is needed"),
                "404": unknown}}},
    }


def document(survey: Survey) -> dict:
    """The whole OpenAPI document."""
    cell = {"type": "object", "properties": {
        "key": {"type": "string"}, "count": {"type": ["integer", "null"]},
        "percent": {"type": ["integer", "null"]},
        "ci": _array(INTEGER) | {"minItems": 2, "maxItems": 2}}, "required": ["key", "count", "percent", "ci"]}
    submit_body = {"type": "object", "required": ["answers"], "additionalProperties": False,
                   "properties": {"answers": {"$ref": "#/components/schemas/Answers"}}}
    if survey.invite_only:
        submit_body["properties"]["invite_code"] = {"type": "string"}
        submit_body["required"].append("invite_code")
    else:
        submit_body["properties"]["invite_code"] = {
            "type": "string", "description": "Ignored: this survey is not in invite mode."}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Pulse API: {survey.title}", "version": "1.0.0",
                 "description": "Anonymous survey and benchmark. Nothing here identifies a clinic."},
        "paths": {
            "/api/v1/survey": {"get": {
                "summary": "The survey: questions and options",
                "responses": {"200": {"description": "The survey", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Survey"}}}}}}},
            "/api/v1/responses": {"post": {
                "summary": "Submit one clinic's answers",
                "requestBody": {"required": True, "content": {"application/json": {"schema": submit_body}}},
                "responses": {
                    "201": {"description": "Stored; the results key is shown only now", "content": {
                        "application/json": {"schema": {"type": "object", "required": ["results_key"],
                                                        "properties": {"results_key": {"type": "string"}}}}}},
                    "400": _error("The body is not valid JSON"),
                    "409": _error("The survey is closed"),
                    "413": _error("The body is too large"),
                    "415": _error("The body is not JSON"),
                    "422": _error("Invalid answers; errors by question key or field"),
                    "429": _error("Too many submissions from this network")}}},
            "/api/v1/benchmarks": {"get": {
                "summary": "The latest benchmark snapshot",
                "parameters": [KEY_HEADER],
                "responses": {
                    "200": {"description": "The benchmark", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Benchmark"}}}},
                    "401": _error("Malformed or unknown results key"),
                    "403": _error("Results are in early access: a results key is needed")}}},
            "/api/v1/topics": {
                "get": {
                    "summary": "The latest voting round and its topics",
                    "description": "Topics of the latest round: in random order with votes null while it is open, "
                                   "most approved first with the tally once it is closed, when `round.chosen` "
                                   "names the topic it chose (null while a tie waits for the organisers). With no "
                                   "round yet, the approved topics waiting for one (votes null).",
                    "responses": {"200": {"description": "The round and its topics", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Topics"}}}}}},
                "post": {
                    "summary": "Propose a topic for the next survey (moderated before it is shown)",
                    "parameters": [KEY_HEADER],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["title"], "additionalProperties": False,
                        "properties": {"title": {"type": "string", "minLength": 1, "maxLength": community.TITLE_MAX,
                                                 "pattern": r"\S", "not": {"pattern": community.TITLE_REFUSED},
                                                 "description": "Plain text: not only spaces, no control characters."},
                                       "description": {"type": "string", "maxLength": community.DESCRIPTION_MAX,
                                                       "not": {"pattern": community.DESCRIPTION_REFUSED},
                                                       "description": "Optional plain text; line breaks allowed."}}}}}},
                    "responses": {
                        "201": {"description": "Stored, waiting for moderation", "content": {"application/json": {
                            "schema": {"type": "object", "required": ["id", "status"], "properties": {
                                "id": {"type": "string"}, "status": {"type": "string", "enum": ["pending"]}}}}}},
                        "400": _error("The body is not valid JSON"),
                        "401": _error("No X-Results-Key, or a malformed or unknown one"),
                        "413": _error("The body is too large"),
                        "415": _error("The body is not JSON"),
                        "422": _error("Invalid title or description; errors by field"),
                        "429": _error("Too many proposals from this network or results key")}}},
            "/api/v1/ballot": {"put": {
                "summary": "Cast or replace this results key's approval ballot in the open round",
                "parameters": [KEY_HEADER],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["approve"], "additionalProperties": False,
                    "properties": {"approve": _array(STRING) | {
                        "maxItems": 500, "description": "Ids of every topic this ballot approves (any number)."}}}}}},
                "responses": {
                    "200": {"description": "Stored; it replaces this key's earlier ballot in the round", "content": {
                        "application/json": {"schema": _object(["round", "approve"],
                                                               round={"$ref": "#/components/schemas/Round"},
                                                               approve=_array(STRING))}}},
                    "400": _error("The body is not valid JSON"),
                    "401": _error("No X-Results-Key, or a malformed or unknown one"),
                    "409": _error("No voting round is open"),
                    "413": _error("The body is too large"),
                    "415": _error("The body is not JSON"),
                    "422": _error("A topic not in the open round (rejected, merged or unknown), or a bad body"),
                    "429": _error("Too many ballots from this network")}}},
        } | survey_paths(survey),
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"},
                "errors": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "Answers": answers_schema(survey),
            "SurveyAnswers": any_answers_schema(),
            "SurveyListing": {
                "type": "object", "additionalProperties": False,
                "required": ["id", "version", "title", "status", "weeks", "responses", "topic"],
                "properties": {
                    "id": STRING, "version": INTEGER, "title": STRING,
                    "status": {"type": "string", "enum": ["open", "closed"]},
                    "weeks": _object(["opened", "closed"], opened=WEEK | {"description": "ISO week first opened"},
                                     closed={"oneOf": [WEEK, {"type": "null"}],
                                             "description": "ISO week last closed; null while open"}),
                    "responses": {"type": ["integer", "null"], "minimum": 0,
                                  "description": "The published N; null until results are released and published"},
                    "topic": {"oneOf": [{"type": "null"}, _object(["id", "title"], id=STRING, title=STRING)],
                              "description": "The community topic this survey answers, if the organisers linked one"}}},
            "Survey": _object(
                ["id", "version", "title", "questions"], id=STRING, version=INTEGER, title=STRING,
                invite_only={"type": "boolean"},
                questions=_array(_object(
                    ["key", "type", "text", "options"], key=STRING,
                    type={"type": "string", "enum": ["single", "multi"]}, text=STRING,
                    options=_array(_object(["key", "label"], key=STRING, label=STRING,
                                           exclusive={"type": "boolean"}))))),
            "Cell": cell,
            "Round": {"type": "object", "required": ["id", "status"], "properties": {
                "id": {"type": "integer"}, "status": {"type": "string", "enum": ["open", "closed"]},
                "chosen": {"type": ["string", "null"],
                           "description": "The id of the topic the closed round chose: the most approved, or on a "
                                          "tie the organisers' choice. Null while open or while a tie waits."}}},
            "Topics": {"type": "object", "required": ["round", "topics"], "properties": {
                "round": {"oneOf": [{"allOf": [{"$ref": "#/components/schemas/Round"}, {"required": ["chosen"]}]},
                                    {"type": "null"}]},
                "topics": _array(_object(["id", "title", "description", "votes"], id=STRING, title=STRING,
                                         description=STRING, votes={"type": ["integer", "null"]}))}},
            "Benchmark": {"type": "object",
                          "required": ["survey", "responses", "released", "published", "questions", "index",
                                       "disclosure"],
                          "properties": {
                "survey": {"type": "object", "properties": {"id": STRING, "version": INTEGER}},
                "responses": INTEGER, "released": {"type": "boolean"}, "published": {"type": "boolean"},
                "questions": _array(_object(
                    ["key", "type", "n", "caution", "options", "segments"], key=STRING, type=STRING, n=INTEGER,
                    caution={"type": "boolean"}, options=CELLS,
                    segments=_array({"type": "object",
                                     "properties": {"key": STRING, "n": INTEGER, "options": CELLS}}))),
                "index": {"type": "object"},
                "disclosure": _object(["method", "max_change", "small_counts", "from", "changes"], method=STRING,
                                      max_change=INTEGER, small_counts=STRING, **{"from": INTEGER},
                                      changes=_array(_object(["change", "probability"], change=INTEGER,
                                                             probability={"type": "number"}))),
                "you": {"type": "object", "properties": {
                    "answers": {"type": "object"}, "index": INTEGER,
                    "below": NULLABLE_INTEGER, "same_band": NULLABLE_INTEGER, "above": NULLABLE_INTEGER,
                    "between_percentiles": _array(NULLABLE_INTEGER) | {"minItems": 2, "maxItems": 2},
                    "raise": _array(_object(["question", "options", "points", "percent"], question=STRING,
                                            options=_array(STRING), points=INTEGER, percent=NULLABLE_INTEGER)),
                    "group": {"oneOf": [{"type": "null"}, _object(
                        ["key", "n", "questions"], key=STRING, n=INTEGER,
                        questions=_array({"type": "object", "properties": {
                            "key": STRING, "type": STRING, "n": INTEGER, "caution": {"type": "boolean"},
                            "options": CELLS}}))]}}}}},
        }},
    }
