"""The OpenAPI 3 document of /api/v1, built from the survey so it matches what the API accepts."""
from __future__ import annotations

from typing import Any

from .questions import Survey

KEY_HEADER = {"name": "X-Results-Key", "in": "header", "required": False, "schema": {"type": "string"},
              "description": "The results key shown after submitting."}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def answers_schema(survey: Survey) -> dict:
    """JSON schema of the answers object: one property per question, all required."""
    properties: dict[str, Any] = {}
    for q in survey.questions:
        keys = list(q.option_keys)
        if q.type == "single":
            properties[q.key] = {"type": "string", "enum": keys, "description": q.text}
        else:
            exclusive = [o.key for o in q.options if o.exclusive]
            note = f" An exclusive option ({', '.join(exclusive)}) stands alone." if exclusive else ""
            properties[q.key] = {"type": "array", "items": {"type": "string", "enum": keys},
                                 "minItems": 1, "uniqueItems": True, "description": q.text + note}
    return {"type": "object", "properties": properties, "required": list(survey.keys),
            "additionalProperties": False}


def document(survey: Survey) -> dict:
    """The whole OpenAPI document."""
    cell = {"type": "object", "properties": {
        "key": {"type": "string"}, "count": {"type": ["integer", "null"]},
        "percent": {"type": ["integer", "null"]},
        "ci": {"oneOf": [{"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}, {"type": "null"}]},
        "suppressed": {"type": "boolean"}}, "required": ["key", "count", "percent", "ci", "suppressed"]}
    submit_body = {"type": "object", "required": ["answers"], "additionalProperties": False,
                   "properties": {"answers": {"$ref": "#/components/schemas/Answers"}}}
    if survey.invite_only:
        submit_body["properties"]["invite_code"] = {"type": "string"}
        submit_body["required"].append("invite_code")
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
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"},
                "errors": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "Answers": answers_schema(survey),
            "Survey": {"type": "object", "required": ["id", "version", "title", "questions"], "properties": {
                "id": {"type": "string"}, "version": {"type": "integer"}, "title": {"type": "string"},
                "invite_only": {"type": "boolean"},
                "questions": {"type": "array", "items": {"type": "object", "required": ["key", "type", "text", "options"],
                              "properties": {"key": {"type": "string"}, "type": {"type": "string", "enum": ["single", "multi"]},
                                             "text": {"type": "string"},
                                             "options": {"type": "array", "items": {"type": "object", "required": ["key", "label"],
                                                         "properties": {"key": {"type": "string"}, "label": {"type": "string"},
                                                                        "exclusive": {"type": "boolean"}}}}}}}}},
            "Cell": cell,
            "Benchmark": {"type": "object", "required": ["survey", "responses", "released", "published", "questions", "index"],
                          "properties": {
                "survey": {"type": "object", "properties": {"id": {"type": "string"}, "version": {"type": "integer"}}},
                "responses": {"type": "integer"}, "released": {"type": "boolean"}, "published": {"type": "boolean"},
                "questions": {"type": "array", "items": {"type": "object", "required": ["key", "type", "n", "caution", "options", "segments"],
                              "properties": {"key": {"type": "string"}, "type": {"type": "string"}, "n": {"type": "integer"},
                                             "caution": {"type": "boolean"},
                                             "options": {"type": "array", "items": {"$ref": "#/components/schemas/Cell"}},
                                             "segments": {"type": "array", "items": {"type": "object", "properties": {
                                                 "key": {"type": "string"}, "n": {"type": "integer"},
                                                 "options": {"type": "array", "items": {"$ref": "#/components/schemas/Cell"}}}}}}}},
                "index": {"type": "object"},
                "you": {"type": "object", "properties": {
                    "answers": {"type": "object"}, "index": {"type": "integer"},
                    "lower": {"type": ["integer", "null"]}, "same": {"type": ["integer", "null"]},
                    "higher": {"type": ["integer", "null"]},
                    "missing_practices": {"type": "array", "items": {"type": "object", "properties": {
                        "question": {"type": "string"}, "option": {"type": "string"}}}}}}}},
        }},
    }
