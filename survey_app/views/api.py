"""The JSON API under /api/v1, described by openapi.json."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .. import limits, openapi, participants, snapshots
from ..errors import PulseError, json_object
from ..submissions import accept

bp = Blueprint("api", __name__)


@bp.get("/survey")
def get_survey():
    survey = current_app.config["SURVEY"]
    return jsonify({
        "id": survey.id,
        "version": survey.version,
        "title": survey.title,
        "invite_only": survey.invite_only,
        "questions": [
            {"key": q.key, "type": q.type, "text": q.text,
             "options": [{"key": o.key, "label": o.label, "exclusive": o.exclusive} for o in q.options]}
            for q in survey.questions
        ],
    })


@bp.post("/responses")
@limits.submit
def post_response():
    body = json_object({"answers", "invite_code"})
    survey = current_app.config["SURVEY"]
    if "answers" not in body:
        raise PulseError(422, "The answers are missing.", {"answers": "required"})
    results_key = accept(survey, body["answers"], body.get("invite_code"))
    return jsonify({"results_key": results_key}), 201


@bp.get("/benchmarks")
def get_benchmarks():
    """The latest snapshot as stored; with a valid X-Results-Key, plus the participant's "you"."""
    survey = current_app.config["SURVEY"]
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
    current = snapshots.current(survey, row)
    if row is None:
        # The fast path: the snapshot's stored bytes, no JSON work per request.
        return Response(current.body, mimetype="application/json")
    return jsonify(current.published | {"you": snapshots.you_for(survey, row, current)})


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.document(current_app.config["SURVEY"]))
