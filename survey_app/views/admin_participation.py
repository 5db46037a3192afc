"""The organisers' participation panel, invite codes and share kit (under /admin).

Participation shows counts only (per ISO week, the only time a response keeps); invite codes are
made by admin_actions.make_invites, as `pulse invites N` makes them, and leave only as the
downloaded CSV (never logged, never shown again); the share kit's QR codes encode the survey's
absolute URL on this site's own host.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request, url_for

from .. import admin_actions, exports, program, share, wording
from ..admin_auth import admin_required
from ..domain_errors import Conflict, DomainError
from ..errors import PulseError, error_response
from ..questions import Survey

bp = Blueprint("admin_participation", __name__)


def _survey() -> Survey:
    """?survey= or the form's survey field (ID or ID@VERSION), else the current survey."""
    return admin_actions.chosen(request.values.get("survey") or None)


def _refused(exc: PulseError | DomainError):
    refused = wording.for_http(exc)
    return error_response(refused.status, refused.message, refused.errors)


def _link(survey: Survey) -> tuple[str, bool]:
    """The absolute URL to share, and whether it is the form: /survey serves only the current
    survey while it is open; any other survey is shared by its results page once they are public.
    Conflict (admin_actions.share_target) when no link would work for the public yet."""
    if admin_actions.share_target(survey) == "form":
        return url_for("survey.form", _external=True), True
    return url_for("results.survey_page", survey_id=survey.id, version=survey.version, _external=True), False


@bp.get("/admin/participation")
@admin_required
def participation():
    try:
        survey = _survey()
    except (PulseError, DomainError) as exc:
        return _refused(exc)
    return render_template(
        "admin/participation.html",
        p=admin_actions.participation_of(survey),
        program=program.entries(),
        max_invites=admin_actions.MAX_INVITES,
    )


@bp.post("/admin/invites")
@admin_required
def invites():
    """New invite codes as a CSV download: the only copy there will ever be."""
    try:
        survey = _survey()
        raw = request.form.get("n", "").strip()
        n = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 7 else -1
        codes = admin_actions.make_invites(survey, n)
    except (PulseError, DomainError) as exc:
        return _refused(exc)
    return Response(
        exports.invites_csv(survey, codes),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={survey.id}-invite-codes.csv"},
    )


@bp.get("/admin/share")
@admin_required
def share_kit():
    try:
        survey = _survey()
    except (PulseError, DomainError) as exc:
        return _refused(exc)
    try:
        url, is_form = _link(survey)
    except Conflict as exc:
        # The kit itself is fine to show: it says why there is nothing to share yet, and hands out nothing.
        return render_template(
            "admin/share.html",
            survey=survey,
            ref=program.ref(survey),
            why=wording.message(exc),
            program=program.entries(),
        )
    return render_template(
        "admin/share.html",
        survey=survey,
        ref=program.ref(survey),
        url=url,
        is_form=is_form,
        announcement=share.announcement(survey, url, answering=is_form),
        program=program.entries(),
    )


def _qr(kind: str, mimetype: str):
    try:
        survey = _survey()
        url = _link(survey)[0]
    except (PulseError, DomainError) as exc:
        return _refused(exc)  # 404 for an unknown survey, 409 when no link works yet: never a QR of a dead link
    image = share.qr_svg(url) if kind == "svg" else share.qr_png(url)
    headers = {}
    if request.args.get("download"):
        headers["Content-Disposition"] = f"attachment; filename={survey.id}-v{survey.version}-qr.{kind}"
    return Response(image, mimetype=mimetype, headers=headers)


@bp.get("/admin/share/qr.svg")
@admin_required
def qr_svg():
    return _qr("svg", "image/svg+xml")


@bp.get("/admin/share/qr.png")
@admin_required
def qr_png():
    return _qr("png", "image/png")
