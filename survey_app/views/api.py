"""The JSON API under /api/v1, described by openapi.json.

Every survey has its own paths, /surveys/<id>/<version>/...; the older /survey, /responses and
/benchmarks act on the current survey.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .. import limits, openapi, participants, program, snapshots
from ..errors import PulseError, json_object
from ..questions import Survey
from ..submissions import accept

bp = Blueprint("api", __name__)


def _survey_json(survey: Survey) -> dict:
    return {
        "id": survey.id,
        "version": survey.version,
        "title": survey.title,
        "invite_only": survey.invite_only,
        "questions": [
            {"key": q.key, "type": q.type, "text": q.text,
             "options": [{"key": o.key, "label": o.label, "exclusive": o.exclusive} for o in q.options]}
            for q in survey.questions
        ],
    }


@bp.get("/survey")
def get_survey():
    return jsonify(_survey_json(program.current_survey()))


@bp.get("/surveys")
def list_surveys():
    """Every survey that has been opened, the current one first."""
    return jsonify({"surveys": [_listed(e) for e in program.entries(opened_only=True)]})


def _listed(entry: program.Entry) -> dict:
    published = snapshots.published_n(entry.survey)
    return {"id": entry.survey.id, "version": entry.survey.version, "title": entry.survey.title,
            "status": "open" if entry.is_open else "closed",
            "weeks": {"opened": entry.opened_week, "closed": None if entry.is_open else entry.closed_week},
            "responses": published, "topic": entry.topic}


@bp.get("/surveys/<survey_id>/<int:version>")
def get_survey_version(survey_id: str, version: int):
    return jsonify(_survey_json(program.opened(survey_id, version)))


@bp.post("/responses")
@limits.submit
def post_response():
    return _post_response(program.current_survey())


@bp.post("/surveys/<survey_id>/<int:version>/responses")
@limits.submit
def post_survey_response(survey_id: str, version: int):
    return _post_response(program.opened(survey_id, version))


def _post_response(survey: Survey):
    body = json_object({"answers", "invite_code"})
    if "answers" not in body:
        raise PulseError(422, "The answers are missing.", {"answers": "required"})
    if "invite_code" in body and not isinstance(body["invite_code"], str):
        # Refused even by a survey that needs no code, which ignores a code given as text.
        raise PulseError(422, "The invite code must be text.", {"invite_code": "must be text"})
    results_key = accept(survey, body["answers"], body.get("invite_code"))
    return jsonify({"results_key": results_key}), 201


@bp.get("/benchmarks")
def get_benchmarks():
    return _benchmarks(program.current_survey())


@bp.get("/surveys/<survey_id>/<int:version>/benchmarks")
def get_survey_benchmarks(survey_id: str, version: int):
    return _benchmarks(program.opened(survey_id, version))


def _benchmarks(survey: Survey):
    """The latest snapshot as stored; with a valid X-Results-Key, plus the participant's "you"."""
    row = None
    if participants.HEADER in request.headers:
        try:
            # The row is read before the snapshot: a rebuild in between can then at worst leave
            # the participant among the "others", never subtract a response the snapshot lacks.
            row = participants.checked(survey, request.headers[participants.HEADER])
        except participants.BadKey as exc:
            raise PulseError(401, exc.message) from None
    elif not snapshots.released_now(survey):
        raise PulseError(403, "Results are in early access: send your results key in the X-Results-Key header.")
    served = snapshots.served(survey, row)
    if row is None:
        # The fast path: the snapshot's stored bytes, no JSON work per request.
        return Response(served.body, mimetype="application/json")
    return jsonify(served.published | {"you": snapshots.you_for(survey, row, served)})


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.document(program.current_survey()))
