"""/admin: when a survey opens and closes by itself, and when the open voting round closes.

The forms sit on the survey page and the topics page (templates/admin_schedule/, included
there); each posts here, calls schedules.py and goes back with what happened, or the refusal.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for

from .. import schedules, wording
from ..admin_auth import admin_required
from ..domain_errors import DomainError
from ..errors import PulseError

bp = Blueprint("admin_schedule", __name__)


@bp.post("/admin/schedule")
@admin_required
def survey():
    """Set or clear a survey's opening and closing time (an empty field clears it)."""
    ref = request.form.get("survey", "")
    try:
        flash(schedules.schedule_survey(ref, request.form.get("opens", ""), request.form.get("closes", "")), "ok")
    except (PulseError, DomainError) as exc:
        flash(_said(exc), "error")
    return redirect(url_for("admin.index", survey=ref or None, _anchor="schedule"), code=303)


@bp.post("/admin/round/schedule")
@admin_required
def round_():
    """Set or clear when the open round closes by itself (an empty field clears it)."""
    try:
        flash(schedules.schedule_round(request.form.get("closes", "")), "ok")
    except (PulseError, DomainError) as exc:
        flash(_said(exc), "error")
    return redirect(url_for("admin.topics", _anchor="round"), code=303)


def _said(exc: PulseError | DomainError) -> str:
    """The refusal in one line, naming the field it is about."""
    refused = wording.for_http(exc)
    fields = "; ".join(f"{field}: {problem}" for field, problem in refused.errors.items())
    return f"{refused.message} ({fields})" if fields else refused.message
