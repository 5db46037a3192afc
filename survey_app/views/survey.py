"""The survey form, its submission and the thank-you page with the results key."""

from __future__ import annotations

from flask import Blueprint, current_app, get_template_attribute, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from .. import limits, participants, program, program_queries, share, snapshots, storage, wording
from ..domain_errors import DomainError
from ..forms import answers_from_form, seconds_since_served, stamp_served, survey_form
from ..questions import INVITE_FIELD, SERVED_FIELD
from ..submissions import accept

bp = Blueprint("survey", __name__)


def _render(form, errors=None, status=200, notice=None):
    survey = program.current_survey()
    db = storage.reader()
    is_open, _ = program_queries.read_survey_state(db, survey.id, survey.version)
    answered = participants.participant(survey) is not None
    # Share tags on the page itself only (a 200), not on an answer refused: said as the survey is.
    share_card = None
    if status == 200:
        results = "none" if is_open else share.results_state(snapshots.served(survey).published)
        url = url_for("survey.form", _external=True)
        share_card = share.card(survey, "survey", url, is_open=is_open, results=results)
    return render_template(
        "survey/form.html",
        survey=survey,
        form=form,
        errors=errors or {},
        notice=notice,
        is_open=is_open,
        answered=answered,
        share_card=share_card,
    ), status


@bp.get("/survey")
def form():
    survey = program.current_survey()
    f = survey_form(survey, formdata=None)
    f.served.data = stamp_served(current_app.config["SECRET_KEY"])
    return _render(f)


@bp.post("/survey")
@limits.submit
def submit():
    survey = program.current_survey()
    f = survey_form(survey, request.form)
    secret = current_app.config["SECRET_KEY"]
    age = seconds_since_served(secret, request.form.get(SERVED_FIELD))
    if age is None:
        f.served.data = stamp_served(secret)
        return _render(f, {SERVED_FIELD: "The form's timing field is missing or altered; please submit again."}, 400)
    if age < float(current_app.config["PULSE_MIN_FILL_SECONDS"]):
        n = len(survey.questions)  # in words as the pages write it: "eight questions", "one question"
        count = f"{get_template_attribute('_macros.html', 'in_words')(n)} question{'s' if n != 1 else ''}"
        return _render(
            f,
            status=429,
            notice=(
                f"That was quicker than anyone can read {count}, so nothing was saved. "
                "Please check your answers and submit again."
            ),
        )
    answers, errors = answers_from_form(survey, request.form)
    if errors:
        return _render(f, errors, 422)
    try:
        results_key = accept(survey, answers, request.form.get(INVITE_FIELD))
    except DomainError as refused:
        exc = wording.for_http(refused)
        return _render(f, exc.errors, exc.status, notice=exc.message)
    # The one cookie entry a participant gets besides the CSRF nonce: their key, under its survey.
    participants.remember(survey.id, survey.version, results_key)
    return redirect(url_for("survey.thanks"), code=303)


@bp.get("/thanks")
def thanks():
    survey = program.current_survey()
    row = participants.participant(survey)
    published = snapshots.served(survey, row).published
    n = published.responses if published.published else 0
    # "Did my answer count?": the snapshot's N and when the next one comes, never a live count.
    counted = {
        "published": published.published,
        "n": n,
        "in_figures": bool(row and row.in_snapshot),
        "next": snapshots.next_snapshot_at(current_app.config, n),
        "threshold": snapshots.disclosure_rules().release_threshold,
    }
    key = participants.session_key(survey) if row is not None else None
    return render_template(
        "survey/thanks.html",
        survey=survey,
        results_key=key,
        released=snapshots.released_now(survey),
        counted=counted,
        on_device=key is not None and participants.device_key() == key,
    )


@bp.post("/thanks/remember")
def remember_on_device():
    """Keep this survey's key in a cookie of its own for 90 days (chosen on the thanks page), or stop."""
    survey = program.current_survey()
    key = participants.session_key(survey)
    response = redirect(url_for("survey.thanks") + "#remember", code=303)
    if request.form.get("remember") == "no":
        if participants.device_key() is not None:
            participants.drop_from_device(response)
    elif key is not None:
        participants.keep_on_device(response, key)
    return response


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError):
    """An expired or missing token on the survey form: show the form again with the answers kept."""
    survey = program.current_survey()
    f = survey_form(survey, request.form)
    f.served.data = request.form.get(SERVED_FIELD) or stamp_served(current_app.config["SECRET_KEY"])
    return _render(
        f,
        status=400,
        notice=(
            f"Your answers are still here, but the form's security token was not accepted "
            f"({exc.description.rstrip('.')}). Nothing was saved: please submit again."
        ),
    )
