"""The topics and ballot endpoints of /api/v1 (described in openapi.json)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from .. import participants, program
from ..community import voting as community
from ..errors import PulseError, json_object
from ..limits import ballot_limit, propose_key_limit, propose_limit

bp = Blueprint("topics_api", __name__)


def _participant(survey=None) -> str:
    """The ballot hash of the X-Results-Key header (a key of this survey, if given); 401 without a valid one."""
    return participants.voter(request.headers.get(participants.HEADER), survey)


@bp.get("/topics")
def list_topics():
    view = community.topics_view()
    return jsonify({"round": view.round, "topics": view.topics})


@bp.post("/topics")
@propose_limit
@propose_key_limit
def propose():
    _participant()
    body = json_object({"title", "description"})
    topic_id = community.propose(body.get("title", ""), body.get("description", ""))
    return jsonify({"id": topic_id, "status": "pending"}), 201


@bp.put("/ballot")
@ballot_limit
def ballot():
    ballot_hash = _participant(program.current_survey())
    body = json_object({"approve"})
    if "approve" not in body:
        raise PulseError(422, "The ballot needs attention.", {"approve": "required"})
    round_id, approved = community.cast_ballot(ballot_hash, body["approve"])
    return jsonify({"round": {"id": round_id, "status": "open"}, "approve": approved})
