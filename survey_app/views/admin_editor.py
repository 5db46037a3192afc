"""The survey editor in /admin: a survey's YAML typed, pasted, uploaded or started from a stored
survey; "Check" (the start-up messages and a preview of the real form) and "Save" (as `pulse
survey add`). editor.py does the work; this blueprint reads the request and says the outcome."""

from __future__ import annotations

import functools
import re
from importlib import resources

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge

from .. import admin_auth, editor, program, wording
from ..admin_auth import admin_required
from ..community import voting as community
from ..domain_errors import DomainError
from ..errors import error_response
from ..forms import survey_form
from ..questions import TEXT_MAX, SurveyError, survey_text

bp = Blueprint("admin_editor", __name__)

# The whole request: the text and a file of TEXT_MAX each, and the form's other fields.
REQUEST_MAX = 2 * TEXT_MAX + 16 * 1024
TOO_LARGE = (
    f"That is too large for a survey: the text and the file may hold at most {TEXT_MAX // 1024} KB "
    "each (the surveys Pulse ships are about 11 KB). Nothing was checked or saved."
)
NOTHING = "Paste or type a survey's YAML, choose a file, or start from a stored survey: there was nothing to check."
GUIDE = "writing-a-survey.md"


@bp.url_value_preprocessor
def _limit_size(endpoint, values):
    # Runs before every before_request function, so before the CSRF check reads the form: a body
    # larger than this is refused (413) without being read.
    request.max_content_length = REQUEST_MAX


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc):
    admin = admin_auth.current_admin()
    if admin is None:
        return error_response(413)
    g.admin = admin
    return _page(message=TOO_LARGE, status=413)  # the form is not read: its text is lost


@bp.errorhandler(CSRFError)
def _token_refused(exc: CSRFError):
    """The form's token expired (an hour of writing) or is missing: the text back, nothing done."""
    text = request.form.get("text", "")
    if admin_auth.current_admin() is None:
        return _login_keeping(text, status=400)  # the token's refusal first, as on every form
    g.admin = admin_auth.current_admin()
    return _page(
        text=text,
        message=(
            f"The form's security token was not accepted ({exc.description.rstrip('.')}). "
            "Nothing was checked or saved: your text is below, press Check or Save again."
        ),
        status=400,
        topic=request.form.get("topic", ""),
    )


def _login_keeping(text: str, status: int = 401):
    """The login page for an organiser whose session ended while writing, with the text to copy:
    a session's end must not take an hour's work with it. (Only the poster's own text comes back.)"""
    return render_template("admin/login.html", expired=True, kept=text[:TEXT_MAX]), status


def _keeps_the_text(view):
    """admin_required for the editor's post: with no live session, the login page keeps the text."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if admin_auth.current_admin() is None:
            return _login_keeping(request.form.get("text", ""))
        return view(*args, **kwargs)

    return wrapper


def _page(
    text: str = "",
    checked: editor.Checked | None = None,
    message: str | None = None,
    status: int = 200,
    topic: str = "",
):
    preview = None
    if checked is not None and checked.survey is not None:
        # The participants' form, unfilled; the preview never posts, so it needs no CSRF token.
        preview = survey_form(checked.survey, formdata=None, meta={"csrf": False})
    refusal = None
    if checked is not None and checked.stored == "changed":
        refusal = program.stored_survey_differs(checked.source, program.ref(checked.survey))
    return render_template(
        "admin/editor.html",
        text=checked.text if checked is not None else text,
        checked=checked,
        preview=preview,
        refusal=refusal,
        message=message,
        surveys=program.entries(),
        topics=community.linkable_topics(),
        topic=topic,
        chosen=request.args.get("from", ""),
    ), status


def _file_name(name: str) -> str:
    """How messages name an uploaded file: its name without folders or control characters."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:100] or "the uploaded file"


@bp.get("/admin/editor")
@admin_required
def page():
    """The editor, empty or started from a stored survey (?from=ID or ID@VERSION)."""
    chosen = request.args.get("from", "").strip()
    if not chosen:
        return _page()
    try:
        return _page(text=editor.start_from(chosen))
    except DomainError as exc:
        refused = wording.for_http(exc)
        return _page(message=refused.message, status=refused.status)
    except SurveyError as exc:  # a stored text whose version is not a plain top-level key
        return _page(message=str(exc), status=409)


@bp.post("/admin/editor")
@_keeps_the_text
@admin_required
def submit():
    """Check the survey (its messages and a preview), or save it as `pulse survey add` does."""
    action, topic = request.form.get("action", "check"), request.form.get("topic", "")
    if action not in ("check", "save"):
        return _page(text=request.form.get("text", ""), message="Choose Check or Save.", status=422, topic=topic)
    upload = request.files.get("file")
    if upload is not None and upload.filename:  # an uploaded file wins over the text area
        source = _file_name(upload.filename)
        data = upload.stream.read(TEXT_MAX + 1)
        if len(data) > TEXT_MAX:
            return _page(message=TOO_LARGE, status=413, topic=topic)
        if not data:  # a file chosen by mistake must not wipe what the text area holds
            message = f"{source} is empty: nothing was checked or saved. The text below is as you left it."
            return _page(text=request.form.get("text", ""), message=message, status=422, topic=topic)
        try:
            text = survey_text(data, source)
        except SurveyError as exc:  # not text: the message `pulse survey add` gives such a file
            return _page(checked=editor.Checked("", source, error=str(exc)), status=422, topic=topic)
    else:
        text, source = request.form.get("text", ""), editor.PASTED
        if not text.strip():
            return _page(message=NOTHING, status=422, topic=topic)
    checked = editor.check(text, source)
    if checked.survey is None:
        return _page(checked=checked, status=422, topic=topic)
    if action == "check":
        return _page(checked=checked, topic=topic)
    try:
        stored = editor.save(text, source, topic or None)
    except DomainError as exc:
        refused = wording.for_http(exc)
        return _page(checked=checked, message=refused.message, status=refused.status, topic=topic)
    flash(wording.survey_stored(stored, web=True), "ok")
    return redirect(url_for("admin.index", survey=program.ref(stored.survey)), code=303)


@bp.get("/admin/editor/guide")
@admin_required
def guide():
    """docs/writing-a-survey.md (shipped with the package), as preformatted text."""
    text = (resources.files("survey_app") / GUIDE).read_text(encoding="utf-8")
    return render_template("admin/editor_guide.html", text=text)
