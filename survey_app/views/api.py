"""The JSON API under /api/v1, described by openapi.json.

Every survey has its own paths, /surveys/<id>/<version>/...; the older /survey, /responses and
/benchmarks act on the current survey. Bodies are read and written through api_models.py, the
models the document is generated from.
"""

from __future__ import annotations

from functools import lru_cache

from flask import Blueprint, Response, current_app, jsonify, request

from .. import api_document, fast_reads, limits, participants, program, schedules, snapshots
from .. import api_models as models
from ..errors import PulseError, json_object
from ..questions import Survey
from ..submissions import accept_valid

bp = Blueprint("api", __name__)


def read(model: type[models.Body]):
    """The request's body as `model`: PulseError 415, 400 or 422 naming the field otherwise."""
    try:
        return model.parse(json_object(model.fields()))
    except models.Refused as exc:
        raise PulseError(422, exc.message, exc.errors) from None


def answer(body: models.BaseModel, status: int = 200):
    return jsonify(body.model_dump(mode="json", by_alias=True, exclude_unset=True)), status


@lru_cache(maxsize=64)
def _survey_body(survey: Survey) -> dict:
    """A survey's body, made once per worker: a stored definition never changes (its schedule,
    which does, is filled in per request)."""
    return models.Survey.of(survey, models.Schedule(opens=None, closes=None)).model_dump(mode="json")


def _survey_json(survey: Survey):
    schedule = models.Schedule.of(*schedules.of(survey))
    return jsonify(_survey_body(survey) | {"schedule": schedule.model_dump(mode="json")})


@bp.get("/survey")
def get_survey():
    return _survey_json(program.current_survey())


@bp.get("/surveys")
def list_surveys():
    """Every survey that has been opened, the current one first."""
    return answer(models.SurveyList(surveys=[_listed(e) for e in program.entries(opened_only=True)]))


def _listed(entry: program.Entry) -> models.SurveyListing:
    published = snapshots.published_n(entry.survey)
    return models.SurveyListing(
        id=entry.survey.id,
        version=entry.survey.version,
        title=entry.survey.title,
        status="open" if entry.is_open else "closed",
        weeks=models.Weeks(opened=entry.opened_week, closed=None if entry.is_open else entry.closed_week),
        responses=published,
        topic=entry.topic,
        schedule=models.Schedule.of(entry.opens_at, entry.closes_at),
    )


@bp.get("/surveys/<survey_id>/<int:version>")
def get_survey_version(survey_id: str, version: int):
    return _survey_json(program.opened(survey_id, version))


@bp.post("/responses")
@limits.submit
def post_response():
    return _post_response(program.current_survey())


@bp.post("/surveys/<survey_id>/<int:version>/responses")
@limits.submit
def post_survey_response(survey_id: str, version: int):
    return _post_response(program.opened(survey_id, version))


def _post_response(survey: Survey):
    body = read(models.submission_model(survey))
    return answer(models.ResultsKey(results_key=accept_valid(survey, body.answers, body.invite_code)), 201)


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
        fast_reads.keep()
        return Response(served.body, mimetype="application/json")
    you = snapshots.you_for(survey, row, served).to_json()
    # The stored bytes with "you" added as the object's last member: the snapshot itself is not
    # written out again per request (it is most of the body).
    body = served.body.rstrip()[:-1] + b',"you":' + current_app.json.dumps(you).encode() + b"}"
    return Response(body, mimetype="application/json")


@bp.get("/openapi.json")
def openapi_document():
    opened = [e.survey for e in program.entries(opened_only=True)]
    return jsonify(api_document.document(program.current_survey(), opened))
