"""/admin: when a survey opens and closes by itself, and when the open voting round closes.

The forms sit on the survey page and the topics page (templates/admin_schedule/, included
there); each posts here, calls schedules.py and goes back with what happened, or answers the
refusal with its 4xx on the page it came from, the typed times kept in the form.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for

from .. import schedules, wording
from ..admin_auth import admin_required
from ..domain_errors import DomainError
from ..errors import PulseError
from .admin import refused_on_index, topics_page

bp = Blueprint("admin_schedule", __name__)


@bp.post("/admin/schedule")
@admin_required
def survey():
    """Set or clear a survey's opening and closing time (an empty field clears it)."""
    ref = request.form.get("survey", "")
    typed = {"opens": request.form.get("opens", ""), "closes": request.form.get("closes", "")}
    try:
        flash(schedules.schedule_survey(ref, typed["opens"], typed["closes"]), "ok")
    except (PulseError, DomainError) as exc:
        return refused_on_index(exc, schedule_form=typed)
    return redirect(url_for("admin.index", survey=ref or None, _anchor="schedule"), code=303)


@bp.post("/admin/round/schedule")
@admin_required
def round_():
    """Set or clear when the open round closes by itself (an empty field clears it)."""
    typed = {"closes": request.form.get("closes", "")}
    try:
        flash(schedules.schedule_round(typed["closes"]), "ok")
    except (PulseError, DomainError) as exc:
        return topics_page(wording.for_http(exc), schedule_form=typed)
    return redirect(url_for("admin.topics", _anchor="round"), code=303)
