"""/guide: every practice a survey scores, why it matters, and how many clinics do it.

What the seed promised ("common aftercare strategies ... see how your approach measures up"):
the actions and reasons of the survey file, with the community's published shares once results
are out (to key holders in early access, to everyone once released), and with a key the
clinic's own "you do this" / "not yet", ordered by the points it could gain.
"""

from __future__ import annotations

import json

from flask import Blueprint, render_template

from .. import participants, program, snapshots
from ..presentation import guide_context
from ..questions import Survey

bp = Blueprint("guide", __name__)


@bp.get("/guide")
def current():
    return _page(program.current_survey())


@bp.get("/guide/<survey_id>/<int:version>")
def survey_guide(survey_id: str, version: int):
    return _page(program.opened(survey_id, version))


def _page(survey: Survey):
    row = participants.participant(survey)
    published = snapshots.served(survey, row).published
    released = published.released
    shares = published.published and (released or row is not None)
    answers = json.loads(row.answers) if row is not None else None
    context = guide_context(survey, published if shares else None, answers, shares)
    return render_template(
        "guide/page.html", released=released, published=published, current_survey=program.current_survey(), **context
    )
