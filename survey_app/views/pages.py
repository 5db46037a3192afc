"""The landing page and the privacy page."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from .. import privacy, snapshots

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    return render_template("pages/index.html", survey=current_app.config["SURVEY"])


@bp.get("/privacy")
def privacy_page():
    return render_template("pages/privacy.html", survey=current_app.config["SURVEY"],
                           facts=privacy.facts(current_app.config, snapshots.rules()))
