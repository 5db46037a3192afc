"""The results pages: every survey's own (/results/<id>/<version>), /results for the one most
people want, the early-access gate, the key form, and a participant's scorecard."""
from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for

from .. import exports, participants, program, snapshots, state
from ..community import rules as community
from ..errors import PulseError
from ..headers import csp_nonce
from ..participants import BadKey
from ..presentation import figures_for, results_context
from ..questions import Survey

bp = Blueprint("results", __name__)

# The form field a participant types the key into.
KEY_FIELD = "results_key"
# Where each response's own script nonce goes in the once-rendered public page.
NONCE_SLOT = "__pulse_csp_nonce_slot__"


def _shown() -> Survey:
    """/results: the current survey once its figures are published (or this browser holds a key
    for it), otherwise the most recently opened survey whose figures are, otherwise the current."""
    current = program.current()
    if participants.session_key(current) or snapshots.current(current).published.get("published"):
        return current
    for entry in program.entries(opened_only=True):
        if not entry.current and snapshots.current(entry.survey).published.get("published"):
            return entry.survey
    return current


def _page(survey: Survey):
    row = participants.participant(survey)
    current = snapshots.current(survey, row)
    released = bool(current.published.get("released"))
    if row is None and not released:
        return render_template("results/gate.html", survey=survey, released=False), 403
    now = program.current()
    # Without a key the page is the same for everyone until the next snapshot: rendered once,
    # encoded, split where the nonce goes. It has no form, so reading the public results needs
    # no session and sets no cookie; the key form has a page of its own.
    pulse = state.of()
    cache_key = (current.survey, current.snapshot_id, released, (now.id, now.version))
    parts = pulse.public_pages.get(cache_key) if row is None else None
    if parts is not None:
        return _with_nonce(parts)
    you = snapshots.you_for(survey, row, current) if row is not None else None
    published = current.published
    context = results_context(survey, published, you) | {
        "released": released, "current_survey": None if now == survey else now}
    if not published.get("published"):
        return render_template("results/waiting.html", ctx=context, **context)
    if you is not None:
        return render_template("results/page.html", figures=figures_for(survey, current, you), ctx=context, **context)
    html = render_template("results/page.html", figures=figures_for(survey, current, None), ctx=context,
                           csp_nonce=lambda: NONCE_SLOT, **context)
    parts = html.encode().split(NONCE_SLOT.encode())
    with pulse.lock:
        # Only each survey's newest snapshot is ever asked for again.
        for old in [k for k in pulse.public_pages if k[0] == current.survey]:
            del pulse.public_pages[old]
        pulse.public_pages[cache_key] = parts
    return _with_nonce(parts)


def _with_nonce(parts: list[bytes]) -> Response:
    """The once-rendered public page with this response's script nonce put in."""
    return Response(csp_nonce().encode().join(parts), mimetype="text/html")


@bp.get("/results")
def page():
    return _page(_shown())


@bp.get("/results/<survey_id>/<int:version>")
def survey_page(survey_id: str, version: int):
    return _page(program.opened(survey_id, version))


@bp.get("/results/aggregates.csv")
def aggregates_csv():
    """The aggregates of the survey /results shows."""
    return _csv(_shown())


@bp.get("/results/<survey_id>/<int:version>/aggregates.csv")
def survey_csv(survey_id: str, version: int):
    """The published aggregates as CSV (the file `pulse export` writes), on the same terms as the page."""
    return _csv(program.opened(survey_id, version))


def _csv(survey: Survey):
    row = participants.participant(survey)
    current = snapshots.current(survey, row)
    if row is None and not current.published.get("released"):
        return render_template("results/gate.html", survey=survey, released=False), 403
    return Response(exports.aggregates_csv(survey, current.published), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename={survey.id}-v{survey.version}-aggregates.csv"})


@bp.get("/results/key")
def key_page():
    """The key form: on a page of its own, so that reading the public results needs no session."""
    survey = _shown()
    if participants.participant(survey) is not None:
        return redirect(url_for("results.survey_page", survey_id=survey.id, version=survey.version), code=303)
    return render_template("results/gate.html", survey=survey, released=snapshots.released_now(survey),
                           held=_held())


def _held() -> list[Survey]:
    """The surveys this browser holds a key for (their results are a click away)."""
    found = []
    for ref in participants.session_keys():
        survey_id, _, version = ref.partition("@")
        try:
            found.append(program.opened(survey_id, int(version)))
        except (ValueError, PulseError):  # a key of a survey this database does not show: left out
            continue
    return found


@bp.post("/results")
def enter_key():
    """Check a typed key of any survey; on success keep it in the signed session and show that survey's results."""
    typed = request.form.get(KEY_FIELD, "")
    try:
        row = participants.response_for(typed)
        survey = program.opened(row.survey_id, row.survey_version)
    except (BadKey, PulseError):
        # The same answer for a malformed and an unknown key: no hint whether a key exists. The
        # typed key stays in the field (escaped), so one wrong character is not 26 to type again.
        survey = _shown()
        return render_template("results/gate.html", survey=survey, error=BadKey.message,
                               typed=typed[:participants.TYPED_MAX],
                               released=snapshots.released_now(survey), held=_held()), 401
    participants.remember(survey.id, survey.version, typed)
    return redirect(url_for("results.survey_page", survey_id=survey.id, version=survey.version), code=303)


@bp.post("/results/forget")
def forget_key():
    """Forget a survey's key in this browser (a shared computer); the key itself still works."""
    ref = request.form.get("survey", "")
    survey_id, _, version = ref.partition("@")
    if survey_id and version.isdigit():
        participants.forget(ref)
        return redirect(url_for("results.survey_page", survey_id=survey_id, version=int(version)), code=303)
    participants.forget()
    return redirect(url_for("results.page"), code=303)


@bp.get("/surveys")
def archive():
    """Every survey that has been opened: its weeks, its published N, its topic, a link to its results."""
    chosen = {c["topic"]["id"]: c for c in community.chosen_topics()}
    rows = [{"entry": e, "responses": snapshots.published_n(e.survey),
             "chosen": chosen.get(e.topic["id"]) if e.topic else None} for e in program.entries(opened_only=True)]
    return render_template("results/archive.html", rows=rows)
