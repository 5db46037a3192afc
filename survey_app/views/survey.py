"""The survey form, its submission and the thank-you page with the results key."""
from __future__ import annotations

from flask import Blueprint, current_app, get_template_attribute, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from .. import limits, participants, program, program_queries, snapshots, storage, wording
from ..domain_errors import DomainError
from ..forms import answers_from_form, seconds_since_served, stamp_served, survey_form
from ..submissions import accept

bp = Blueprint("survey", __name__)


def _render(form, errors=None, status=200, notice=None):
    survey = program.current_survey()
    db = storage.reader()
    is_open, _ = program_queries.read_survey_state(db, survey.id, survey.version)
    return render_template("survey/form.html", survey=survey, form=form, errors=errors or {},
                           notice=notice, is_open=is_open), status


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
    age = seconds_since_served(secret, request.form.get("served"))
    if age is None:
        f.served.data = stamp_served(secret)
        return _render(f, {"served": "The form's timing field is missing or altered; please submit again."}, 400)
    if age < float(current_app.config["PULSE_MIN_FILL_SECONDS"]):
        n = len(survey.questions)  # in words as the pages write it: "eight questions", "one question"
        count = f"{get_template_attribute('_macros.html', 'in_words')(n)} question{'s' if n != 1 else ''}"
        return _render(f, status=429, notice=(
            f"That was quicker than anyone can read {count}, so nothing was saved. "
            "Please check your answers and submit again."))
    answers, errors = answers_from_form(survey, request.form)
    if errors:
        return _render(f, errors, 422)
    try:
        results_key = accept(survey, answers, request.form.get("invite_code"))
    except DomainError as refused:
        exc = wording.for_http(refused)
        return _render(f, exc.errors, exc.status, notice=exc.message)
    # The one cookie entry a participant gets besides the CSRF nonce: their key, under its survey.
    participants.remember(survey.id, survey.version, results_key)
    return redirect(url_for("survey.thanks"), code=303)


@bp.get("/thanks")
def thanks():
    survey = program.current_survey()
    return render_template("survey/thanks.html", survey=survey, results_key=participants.session_key(survey),
                           released=snapshots.released_now(survey))


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError):
    """An expired or missing token on the survey form: show the form again with the answers kept."""
    survey = program.current_survey()
    f = survey_form(survey, request.form)
    f.served.data = request.form.get("served") or stamp_served(current_app.config["SECRET_KEY"])
    return _render(f, status=400, notice=(
        f"Your answers are still here, but the form's security token was not accepted "
        f"({exc.description.rstrip('.')}). Nothing was saved: please submit again."))
