"""/topics: the voting round, a ballot of checkboxes and the proposal form (no JavaScript needed)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from .. import participants, program, wording
from ..community import voting as community
from ..domain_errors import DomainError
from ..errors import PulseError
from ..limits import KEY_FIELD, ballot_limit, propose_key_limit, propose_limit

bp = Blueprint("topics", __name__)

DONE = {
    "proposed": "Thank you: your topic was sent to the organisers. It appears here once they approve it.",
    "voted": "Your ballot is saved. You can change it until the round closes.",
}


def _session_ballot_hash() -> str | None:
    """The ballot hash of the key this browser session holds, if it is a valid one."""
    key = participants.session_key(program.current_survey())
    if not key:
        return None
    try:
        return participants.voter(key, program.current_survey())
    except PulseError:
        return None


def _render(status: int = 200, form: str | None = None, error: PulseError | None = None, **kept):
    ballot_hash = _session_ballot_hash()
    view = community.topics_view(ballot_hash)
    done = DONE.get(request.args.get("done", "")) if request.method == "GET" else None
    return render_template(
        "topics/index.html",
        view=view,
        has_key=ballot_hash is not None,
        done=done,
        form=form,
        error=error,
        errors=error.errors if error else {},
        kept=kept,
        title_max=community.TITLE_MAX,
        description_max=community.DESCRIPTION_MAX,
    ), status


@bp.get("/topics")
def index():
    return _render()


@bp.post("/topics/propose")
@propose_limit
@propose_key_limit
def propose():
    # Browsers send a textarea's line breaks as CRLF but count each as one character.
    title, description = request.form.get("title", ""), request.form.get("description", "").replace("\r\n", "\n")
    try:
        participants.voter(participants.presented_key(KEY_FIELD))
        community.propose(title, description)
    except (PulseError, DomainError) as refused:
        exc = wording.for_http(refused)
        return _render(
            exc.status,
            "propose",
            exc,
            title=title[:2000],
            description=description[:4000],
            results_key=request.form.get(KEY_FIELD, "")[: participants.TYPED_MAX],
        )
    return redirect(url_for("topics.index", done="proposed", _anchor="status"), code=303)


@bp.post("/topics/ballot")
@ballot_limit
def ballot():
    approve = request.form.getlist("approve")
    # Without a key of the current survey, a key this browser holds of another survey is checked,
    # so that the answer says whose key it is rather than that no key was given.
    key = participants.presented_key(KEY_FIELD, program.current_survey()) or participants.presented_key()
    try:
        ballot_hash = participants.voter(key, program.current_survey())
        community.cast_ballot(ballot_hash, approve)
    except (PulseError, DomainError) as refused:
        exc = wording.for_http(refused)
        return _render(
            exc.status,
            "ballot",
            exc,
            approve=set(approve),
            results_key=request.form.get(KEY_FIELD, "")[: participants.TYPED_MAX],
        )
    # A typed key is kept in the session, as the results page's key form does, so the page
    # after the redirect can show the ballot just cast.
    if participants.session_key(program.current_survey()) != key:
        participants.remember(program.current_survey().id, program.current_survey().version, key)
    return redirect(url_for("topics.index", done="voted", _anchor="status"), code=303)
