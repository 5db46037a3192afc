"""The results page: the early-access gate, the charts with their tables, and a participant's scorecard."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict

from flask import Blueprint, Response, current_app, redirect, render_template, request, session, url_for

from .. import benchmark, charts, keys, participants, snapshots
from ..headers import csp_nonce
from ..participants import SESSION_KEY, BadKey
from ..questions import as_tuple

bp = Blueprint("results", __name__)

# The form field a participant types the key into.
KEY_FIELD = "results_key"
# Built figures per (database, snapshot, participant's answers): charts are not rebuilt per request.
FIGURE_CACHE_SIZE = 256
_figures: OrderedDict[tuple, dict] = OrderedDict()
_figures_lock = threading.Lock()


def released_now(survey) -> bool:
    """Whether results are public, as the latest snapshot says.

    Releasing stores a new snapshot, and every snapshot reads the release state in the same
    transaction that stores it, so the newest snapshot is never behind a release; and there is
    no way back to early access. Reading it here saves a query on every page and API call.
    """
    return bool(snapshots.current(survey).published.get("released"))


def participant(survey):
    """The response row of the key this request carries (header or session), or None.

    A session key that no longer matches (another database, a new round) is dropped, not an error.
    """
    key = participants.presented_key()
    if not key:
        return None
    try:
        return checked(survey, key)
    except BadKey:
        session.pop(SESSION_KEY, None)
        return None


def checked(survey, key: str):
    """The response of this key in this survey version; BadKey if malformed, unknown or another round's."""
    row = participants.response_for(key)
    if (row.survey_id, row.survey_version) != (survey.id, survey.version):
        raise BadKey()
    return row


def you_for(survey, row, current: snapshots.Current) -> dict:
    """The participant's own view, computed per request from their answers and the snapshot tally."""
    return benchmark.you(survey, json.loads(row.answers), current.tally, bool(row.in_snapshot),
                         snapshots.rules_from_config(current_app.config))


def page_context(survey, published: dict, you: dict | None) -> dict:
    """What the results templates need besides the published dict: labels, your answers, thresholds."""
    answers = (you or {}).get("answers") or {}
    groups = {g["key"]: g for g in published.get("segment", {}).get("groups", [])}

    def group_label(key: str) -> str:
        members = groups.get(key, {}).get("members", [key])
        if len(members) == 1:
            return charts.label_of(survey, survey.segment, members[0])
        return "Other groups combined"

    return {
        "survey": survey, "p": published, "you": you,
        "label": lambda q, o: charts.label_of(survey, q, o),
        "mine": {q.key: as_tuple(answers.get(q.key)) for q in survey.questions},
        "group_label": group_label,
        "merged": [g for g in groups.values() if len(g["members"]) > 1],
        "caution_n": benchmark.CAUTION_N, "caution_width": benchmark.CAUTION_WIDTH,
        "interval": charts.interval_text, "you_mark": charts.YOU_MARK,
    }


# The rendered page for visitors without a key, per worker: one entry, the latest snapshot's,
# encoded, split where each response's own script nonce goes. It has no form, so reading the
# public results needs no session and sets no cookie; the key form has a page of its own.
_public_pages: dict[tuple, list[bytes]] = {}
NONCE_SLOT = "__pulse_csp_nonce_slot__"


def figures_for(survey, current: snapshots.Current, you: dict | None) -> dict:
    """The page's figures, from this worker's cache when the snapshot and answers are the same."""
    answers = json.dumps((you or {}).get("answers"), sort_keys=True)
    cache_key = (current_app.config["DATABASE_URL"], current.snapshot_id, answers, (you or {}).get("index"))
    with _figures_lock:
        if cache_key in _figures:
            _figures.move_to_end(cache_key)
            return _figures[cache_key]
    built = charts.figures(survey, current.published, you)
    with _figures_lock:
        _figures[cache_key] = built
        while len(_figures) > FIGURE_CACHE_SIZE:
            _figures.popitem(last=False)
    return built


def _page(row):
    survey = current_app.config["SURVEY"]
    current = snapshots.current(survey, row)
    released = bool(current.published.get("released"))
    if row is None and not released:
        return render_template("results/gate.html", survey=survey, released=False), 403
    # Without a key the page is the same for everyone until the next snapshot: rendered once.
    cache_key = (current_app.config["DATABASE_URL"], current.snapshot_id, released)
    parts = _public_pages.get(cache_key) if row is None else None
    if parts is not None:
        return _with_nonce(parts)
    you = you_for(survey, row, current) if row is not None else None
    published = current.published
    context = page_context(survey, published, you) | {"released": released}
    if not published.get("published"):
        return render_template("results/waiting.html", ctx=context, **context)
    if you is not None:
        return render_template("results/page.html", figures=figures_for(survey, current, you), ctx=context, **context)
    html = render_template("results/page.html", figures=figures_for(survey, current, None), ctx=context,
                           csp_nonce=lambda: NONCE_SLOT, **context)
    parts = html.encode().split(NONCE_SLOT.encode())
    with _figures_lock:
        _public_pages.clear()  # only the newest snapshot's page is ever asked for again
        _public_pages[cache_key] = parts
    return _with_nonce(parts)


def _with_nonce(parts: list[bytes]) -> Response:
    """The once-rendered public page with this response's script nonce put in."""
    return Response(csp_nonce().encode().join(parts), mimetype="text/html")


@bp.get("/results")
def page():
    return _page(participant(current_app.config["SURVEY"]))


@bp.get("/results/key")
def key_page():
    """The key form: on a page of its own, so that reading the public results needs no session."""
    survey = current_app.config["SURVEY"]
    if participant(survey) is not None:
        return redirect(url_for("results.page"), code=303)
    return render_template("results/gate.html", survey=survey, released=released_now(survey))


@bp.post("/results")
def enter_key():
    """Check a typed key; on success keep it in the signed session and show the results."""
    survey = current_app.config["SURVEY"]
    try:
        checked(survey, request.form.get(KEY_FIELD, ""))
    except BadKey as exc:
        # The same answer for a malformed and an unknown key: no hint whether a key exists.
        return render_template("results/gate.html", survey=survey, error=exc.message,
                               released=released_now(survey)), 401
    session[SESSION_KEY] = keys.normalize(request.form[KEY_FIELD])
    return redirect(url_for("results.page"), code=303)


@bp.post("/results/forget")
def forget_key():
    """Forget the key in this browser (a shared computer); the key itself still works."""
    session.pop(SESSION_KEY, None)
    return redirect(url_for("results.page"), code=303)
