"""The organisers' area: login, the survey's state and results, moderation and voting rounds."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for

from .. import admin_actions, admin_auth, exports, limits, program, report, snapshots, wording
from ..admin_auth import admin_required
from ..community import voting as community
from ..domain_errors import DomainError
from ..errors import PulseError, error_response

bp = Blueprint("admin", __name__)


@bp.get("/admin/login")
def login():
    if admin_auth.current_admin() is not None:
        return redirect(url_for("admin.index"))
    return render_template(
        "admin/login.html", expired=bool(request.args.get("expired")), out=bool(request.args.get("out"))
    )


@bp.post("/admin/login")
@limits.held_across_midnight(
    admin_auth.LOGIN_LIMIT, "admin-login", methods=["POST"], deduct_when=admin_auth.failed_login
)
def login_post():
    if admin_auth.log_in(
        request.form.get("username", ""), request.form.get("password", ""), request.form.get("code", "")
    ):
        return redirect(url_for("admin.index"), code=303)
    return render_template(
        "admin/login.html", error=admin_auth.FAILED, username=request.form.get("username", "")[:64]
    ), 401


@bp.post("/admin/logout")
def logout():
    admin_auth.log_out()
    return redirect(url_for("admin.login", out=1), code=303)


def _survey():
    """The survey an admin page or form acts on: ?survey= or the form's survey field, else the current one."""
    return admin_actions.chosen(request.values.get("survey") or None)


def _back(survey=None):
    target = url_for("admin.index", survey=program.ref(survey)) if survey is not None else url_for("admin.index")
    return redirect(target, code=303)


@bp.get("/admin")
@admin_required
def index():
    try:
        survey = _survey()
    except (PulseError, DomainError) as exc:
        refused = wording.for_http(exc)
        return error_response(refused.status, refused.message)
    return _index_page(survey)


def _index_page(survey, error: PulseError | None = None, schedule_form: dict[str, str] | None = None):
    """The organisers' page for `survey`; with a refusal, answered with its 4xx and the refusal
    above the forms (nothing was changed), and the schedule form keeps what was typed in it."""
    entries = program.entries(counts=True)
    topic = next((e.topic for e in entries if e.survey == survey), None)
    return render_template(
        "admin/index.html",
        o=admin_actions.overview(survey) | {"topic": topic},
        program=entries,
        topics=community.linkable_topics(),
        proxy_warning=limits.proxy_warning(),
        error=error,
        schedule_form=schedule_form,
    ), error.status if error else 200


def refused_on_index(exc: PulseError | DomainError, schedule_form: dict[str, str] | None = None):
    """A refused action of the organisers' page: the page again, for the survey the form named
    when that survey exists (else the current one), answered with the refusal's own 4xx."""
    try:
        survey = _survey()
    except (PulseError, DomainError):
        survey = admin_actions.chosen(None)
    return _index_page(survey, wording.for_http(exc), schedule_form)


@bp.get("/admin/export.csv")
@admin_required
def export_csv():
    """The aggregate CSV of the latest snapshot, the same file `pulse export` writes."""
    survey = _survey()
    text = exports.aggregates_csv(survey, snapshots.served(survey).published)
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={survey.id}-v{survey.version}-aggregates.csv"},
    )


@bp.get("/admin/report.zip")
@admin_required
def report_zip():
    """The static report (HTML, plotly.js, CSV, JSON) as one zip, as `pulse report` writes it."""
    survey = _survey()
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        paths = report.write_report(survey, snapshots.served(survey).published, tmp)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in paths:
                archive.write(path, Path(path).name)
    return Response(
        buffer.getvalue(),
        mimetype="application/zip",
        headers={"Content-Disposition": f"attachment; filename={survey.id}-v{survey.version}-report.zip"},
    )


@bp.post("/admin/survey")
@admin_required
def survey_state():
    """Open a survey (making it current and closing the one before) or close the current one."""
    action = request.form.get("action")
    try:
        if action == "open":
            flash(program.open_survey(request.form.get("survey") or program.ref(program.current_survey())), "ok")
        elif action == "close":
            flash(program.close_survey(), "ok")
        else:
            raise PulseError(422, "Choose open or close.", {"action": "open or close"})
    except (PulseError, DomainError) as exc:
        return refused_on_index(exc)
    return _back()


@bp.post("/admin/survey/topic")
@admin_required
def survey_topic():
    """Link a survey to the topic it answers (topic ids differ between databases: not in the file)."""
    try:
        survey = _survey()
        flash(program.link_topic(survey.id, survey.version, request.form.get("topic") or None), "ok")
    except (PulseError, DomainError) as exc:
        return refused_on_index(exc)
    return _back(survey)


@bp.post("/admin/release")
@admin_required
def release():
    try:
        survey = _survey()
        flash(admin_actions.release(survey), "ok")
    except (PulseError, DomainError) as exc:
        return refused_on_index(exc)
    return _back(survey)


@bp.post("/admin/snapshot")
@admin_required
def snapshot():
    try:
        survey = _survey()
        n = admin_actions.rebuild_snapshot(survey)
    except (PulseError, DomainError) as exc:
        return refused_on_index(exc)
    if n is None:
        return refused_on_index(PulseError(409, "Another rebuild is running; try again in a moment."))
    flash(f"The published figures of {program.ref(survey)} now count {n} responses.", "ok")
    return _back(survey)


def topics_page(error: PulseError | None = None, schedule_form: dict[str, str] | None = None):
    """The topics page; with a refusal, answered with its 4xx (nothing changed), the round's
    schedule form keeping what was typed in it."""
    status = error.status if error else 200
    return render_template(
        "admin/topics.html",
        queue=community.moderation_queue(),
        round=community.round_summary(),
        error=error,
        schedule_form=schedule_form,
    ), status


@bp.get("/admin/topics")
@admin_required
def topics():
    return topics_page()


@bp.post("/admin/topics/<topic_id>")
@admin_required
def moderate(topic_id: str):
    try:
        message = community.moderate(topic_id, request.form.get("action", ""), request.form.get("into") or None)
    except (PulseError, DomainError) as exc:
        return topics_page(wording.for_http(exc))
    flash(message, "ok")
    return redirect(url_for("admin.topics"), code=303)


@bp.get("/admin/tally.csv")
@admin_required
def tally_csv():
    text = exports.tally_csv(community.round_summary())
    if text is None:
        return error_response(404, "No round has closed yet, so there is no tally to download.")
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=pulse-tally.csv"})


@bp.post("/admin/round")
@admin_required
def round_():
    action = request.form.get("action")
    try:
        if action == "open":
            message = community.open_round()
        elif action == "close":
            message = wording.round_closed(community.close_round())
        elif action == "choose":
            message = community.choose(request.form.get("topic", ""))
        else:
            raise PulseError(422, "Choose open, close or choose.", {"action": "open, close or choose"})
    except (PulseError, DomainError) as exc:
        return topics_page(wording.for_http(exc))
    flash(message.splitlines()[0], "ok")
    return redirect(url_for("admin.topics"), code=303)
