"""/feed.atom: the survey program's events as an Atom feed (RFC 4287), linked from every page's head."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, render_template, url_for

from .. import program_events

bp = Blueprint("feed", __name__)


def _link(target: tuple) -> str:
    if target[0] == "results":
        return url_for("results.survey_page", survey_id=target[1], version=target[2], _external=True)
    return url_for("topics.index", _external=True)


def _stamp(day: dt.date) -> str:
    # The day the organisers acted, at midnight UTC: events keep no finer time.
    return f"{day.isoformat()}T00:00:00Z"


@bp.get("/feed.atom")
def atom():
    entries = program_events.feed_entries()
    updated = entries[0].day if entries else dt.datetime.now(dt.timezone.utc).date()
    body = render_template(
        "feed/feed.xml",
        entries=[(e, _link(e.target), _stamp(e.day)) for e in entries],
        updated=_stamp(updated),
        self_url=url_for("feed.atom", _external=True),
        home=url_for("pages.index", _external=True),
    )
    return Response(body, mimetype="application/atom+xml")
