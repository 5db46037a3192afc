"""The results page: the early-access gate, the charts with their tables, and a participant's scorecard."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, render_template, request, session, url_for

from .. import exports, keys, participants, snapshots, state
from ..headers import csp_nonce
from ..participants import SESSION_KEY, BadKey
from ..presentation import figures_for, results_context

bp = Blueprint("results", __name__)

# The form field a participant types the key into.
KEY_FIELD = "results_key"
# Where each response's own script nonce goes in the once-rendered public page.
NONCE_SLOT = "__pulse_csp_nonce_slot__"


def _page(row):
    survey = current_app.config["SURVEY"]
    current = snapshots.current(survey, row)
    released = bool(current.published.get("released"))
    if row is None and not released:
        return render_template("results/gate.html", survey=survey, released=False), 403
    # Without a key the page is the same for everyone until the next snapshot: rendered once,
    # encoded, split where the nonce goes. It has no form, so reading the public results needs
    # no session and sets no cookie; the key form has a page of its own.
    pulse = state.of()
    cache_key = (current.survey, current.snapshot_id, released)
    parts = pulse.public_pages.get(cache_key) if row is None else None
    if parts is not None:
        return _with_nonce(parts)
    you = snapshots.you_for(survey, row, current) if row is not None else None
    published = current.published
    context = results_context(survey, published, you) | {"released": released}
    if not published.get("published"):
        return render_template("results/waiting.html", ctx=context, **context)
    if you is not None:
        return render_template("results/page.html", figures=figures_for(survey, current, you), ctx=context, **context)
    html = render_template("results/page.html", figures=figures_for(survey, current, None), ctx=context,
                           csp_nonce=lambda: NONCE_SLOT, **context)
    parts = html.encode().split(NONCE_SLOT.encode())
    with pulse.lock:
        pulse.public_pages.clear()  # only the newest snapshot's page is ever asked for again
        pulse.public_pages[cache_key] = parts
    return _with_nonce(parts)


def _with_nonce(parts: list[bytes]) -> Response:
    """The once-rendered public page with this response's script nonce put in."""
    return Response(csp_nonce().encode().join(parts), mimetype="text/html")


@bp.get("/results")
def page():
    return _page(participants.participant(current_app.config["SURVEY"]))


@bp.get("/results/aggregates.csv")
def aggregates_csv():
    """The published aggregates as CSV (the file `pulse export` writes), on the same terms as the page."""
    survey = current_app.config["SURVEY"]
    row = participants.participant(survey)
    current = snapshots.current(survey, row)
    if row is None and not current.published.get("released"):
        return render_template("results/gate.html", survey=survey, released=False), 403
    return Response(exports.aggregates_csv(survey, current.published), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename={survey.id}-v{survey.version}-aggregates.csv"})


@bp.get("/results/key")
def key_page():
    """The key form: on a page of its own, so that reading the public results needs no session."""
    survey = current_app.config["SURVEY"]
    if participants.participant(survey) is not None:
        return redirect(url_for("results.page"), code=303)
    return render_template("results/gate.html", survey=survey, released=snapshots.released_now(survey))


@bp.post("/results")
def enter_key():
    """Check a typed key; on success keep it in the signed session and show the results."""
    survey = current_app.config["SURVEY"]
    try:
        participants.checked(survey, request.form.get(KEY_FIELD, ""))
    except BadKey as exc:
        # The same answer for a malformed and an unknown key: no hint whether a key exists. The
        # typed key stays in the field (escaped), so one wrong character is not 26 to type again.
        return render_template("results/gate.html", survey=survey, error=exc.message,
                               typed=request.form.get(KEY_FIELD, "")[:participants.TYPED_MAX],
                               released=snapshots.released_now(survey)), 401
    session[SESSION_KEY] = keys.normalize(request.form[KEY_FIELD])
    return redirect(url_for("results.page"), code=303)


@bp.post("/results/forget")
def forget_key():
    """Forget the key in this browser (a shared computer); the key itself still works."""
    session.pop(SESSION_KEY, None)
    return redirect(url_for("results.page"), code=303)
