"""The landing page and the privacy page."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, url_for

from .. import participants, privacy, program, schedules, share, snapshots
from ..community import voting as community

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    survey = program.current_survey()
    entry = program.entry(survey)
    voting = upcoming = None
    if not entry.is_open:
        upcoming = schedules.next_opening()
        # Between surveys: say when results are out and what the community is voting on.
        view = community.topics_view()
        voting = view if view.round and view.round["status"] == "open" else None
    chosen = community.round_that_chose(entry.topic["id"]) if entry.topic else None
    published = snapshots.served(survey).published
    return render_template(
        "pages/index.html",
        survey=survey,
        entry=entry,
        voting=voting,
        chosen=chosen,
        upcoming=upcoming,
        published=published,
        answered=participants.participant(survey) is not None,
        share_card=share.card(
            survey,
            "landing",
            url_for("pages.index", _external=True),
            is_open=entry.is_open,
            results=share.results_state(published),
        ),
    )


@bp.get("/privacy")
def privacy_page():
    return render_template(
        "pages/privacy.html",
        survey=program.current_survey(),
        facts=privacy.facts(current_app.config, snapshots.disclosure_rules()),
    )
