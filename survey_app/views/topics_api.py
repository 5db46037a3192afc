"""The topics and ballot endpoints of /api/v1 (described in openapi.json)."""

from __future__ import annotations

from flask import Blueprint, request

from .. import api_models as models
from .. import participants, program
from ..community import voting as community
from ..limits import ballot_limit, propose_key_limit, propose_limit
from .api import answer, read

bp = Blueprint("topics_api", __name__)


def _participant(survey=None) -> str:
    """The ballot hash of the X-Results-Key header (a key of this survey, if given); 401 without a valid one."""
    return participants.voter(request.headers.get(participants.HEADER), survey)


@bp.get("/topics")
def list_topics():
    view = community.topics_view()
    round_ = None if view.round is None else models.Round.listed(view.round, view.closes_at)
    return answer(models.Topics(round=round_, topics=view.topics))


@bp.post("/topics")
@propose_limit
@propose_key_limit
def propose():
    _participant()
    body = read(models.Proposal)
    return answer(models.ProposalStored(id=community.propose(body.title, body.description), status="pending"), 201)


@bp.put("/ballot")
@ballot_limit
def ballot():
    ballot_hash = _participant(program.current_survey())
    body = read(models.Ballot)
    round_id, approved = community.cast_ballot(ballot_hash, body.approve)
    return answer(models.BallotStored(round=models.Round(id=round_id, status="open"), approve=approved))
