"""The results pages: every survey's own (/results/<id>/<version>), /results for the one most
people want, the early-access gate, the key form, a participant's scorecard, and the comparison
with a survey's earlier wave with a participant's own change."""

from __future__ import annotations

import json
import re

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    get_template_attribute,
    redirect,
    render_template,
    request,
    url_for,
)

from .. import exports, fast_reads, participants, program, program_queries, share, snapshots, state, storage
from ..community import voting as community
from ..domain_errors import NotFound
from ..errors import PulseError
from ..headers import csp_nonce
from ..limits import csrf_token
from ..participants import BadKey
from ..pipeline import waves
from ..presentation import figures_for, results_context, wave_figures, wave_view, week_text
from ..questions import Survey

bp = Blueprint("results", __name__)

# The form field a participant types the key into.
KEY_FIELD = "results_key"
# The own-change form's fields: a key of the earlier wave, and one of this wave when the session has none.
EARLIER_FIELD = "earlier_key"
CURRENT_FIELD = "current_key"
# Where each response's own script nonce goes in the once-rendered public page.
NONCE_SLOT = "__pulse_csp_nonce_slot__"
# Where each response's CSRF token goes in a key holder's once-rendered page (its forms).
CSRF_SLOT = "__pulse_csrf_token_slot__"
SLOTS = re.compile(f"({NONCE_SLOT}|{CSRF_SLOT})".encode())


def _shown() -> Survey:
    """/results: the current survey once its figures are public (or this browser holds a key for
    it), otherwise the most recently opened survey whose figures are, otherwise the current."""
    current_survey = program.current_survey()
    if participants.session_key(current_survey) or _public(current_survey):
        return current_survey
    for entry in program.entries(opened_only=True):
        if not entry.is_current and _public(entry.survey):
            return entry.survey
    return current_survey


def _public(survey: Survey) -> bool:
    """Whether anyone may read this survey's figures: published, and released from early access."""
    published = snapshots.served(survey).published
    return published.published and published.released


def _open_now(survey: Survey) -> bool:
    """Whether /survey serves this survey and takes responses now (only the current survey is
    ever open): the only survey whose pages may send a reader to the form."""
    if program.current_survey() != survey:
        return False
    return program_queries.read_survey_state(storage.reader(), survey.id, survey.version)[0]


def _page(survey: Survey):
    row = participants.participant(survey)
    served = snapshots.served(survey, row)
    released = served.published.released
    if row is None and not released:
        # Still a 403 (the figures are for key holders: clients read the status), but while the
        # survey is open the page leads with the invitation to answer, since the feed's "Survey
        # open" links it for good; once it is closed, the key holders' gate alone.
        open_now = _open_now(survey)
        return render_template("results/gate.html", survey=survey, released=False, open_now=open_now), 403
    now = program.current_survey()
    earlier = program.earlier_wave(survey)
    then_row = participants.participant(earlier) if earlier is not None and row is not None else None
    wave = wave_view(survey, served, earlier, then_row is not None) if earlier is not None else None
    # Without a key the page is the same for everyone until the next snapshot (of this survey or
    # of the earlier wave it is compared with): rendered once, encoded, split where the nonce
    # goes. It has no form, so reading the public results needs no session and sets no cookie;
    # the key form and the own-change form have pages of their own.
    pulse = state.of()
    # The host too: the page's share tags name it (og:url, og:image), and a forged Host header
    # must not leave its host in the copy everyone else is served.
    cache_key = (
        served.survey,
        served.snapshot_id,
        released,
        (now.id, now.version),
        wave and wave.snapshot_id,
        request.host_url,
    )
    parts = pulse.cache.public_pages.get(cache_key) if row is None else None
    if parts is not None:
        return _with_slots(parts)
    # A key holder's page is fixed by the same and their answers (never by who they are: two
    # clinics with the same answers see the same page). A page with the own change is not kept:
    # it joins two responses, which Pulse keeps no link between, not even in memory.
    personal_key = (*cache_key, row.answers, bool(row.in_snapshot)) if row is not None and then_row is None else None
    pieces = pulse.cache.personal_pages.get(personal_key) if personal_key is not None else None
    if pieces is not None:
        return _with_slots(pieces)
    you = snapshots.you_for(survey, row, served) if row is not None else None
    published = served.published
    # A session holding a key of each wave sees its own change at once, computed here and kept nowhere.
    own = _own(survey, earlier, row, then_row) if then_row else None
    n = published.responses
    # A survey other than the current one is closed, and its final snapshot is its last.
    update = {"n": n, "next": snapshots.next_snapshot_at(current_app.config, n), "final": now != survey}
    context = results_context(survey, published, you) | {
        "released": released,
        "current_survey": None if now == survey else now,
        "wave": wave,
        "own": own,
        "update": update,
        "counted": bool(row.in_snapshot) if row is not None else None,
        # Share tags only on public results. The page is rendered once for /results and for the
        # survey's own address, so it names the survey's own address (it stays valid).
        "share_card": share.card(
            survey,
            "results",
            url_for("results.survey_page", survey_id=survey.id, version=survey.version, _external=True),
            is_open=False,
            results="public",
        )
        if released and published.published
        else None,
    }
    if not published.published:
        context["open_now"] = _open_now(survey)
        return render_template("results/waiting.html", ctx=context, **context)
    figures = figures_for(survey, served, you) | wave_figures(survey, wave, served)
    if you is not None:
        blocks = _question_blocks(served, context, figures)
        if personal_key is None:
            return render_template("results/page.html", figures=figures, ctx=context, blocks=blocks, **context)
        pieces = _render_with_slots("results/page.html", figures=figures, ctx=context, blocks=blocks, **context)
        pulse.cache.personal_pages.put(personal_key, pieces)
        return _with_slots(pieces)
    parts = _render_with_slots("results/page.html", figures=figures, ctx=context, **context)
    pulse.cache.put_public_page(cache_key, parts)
    return _with_slots(parts)


def _question_blocks(served: snapshots.ServedSnapshot, context: dict, figures: dict) -> dict[str, str]:
    """Each question's section of a key holder's page, rendered once per snapshot for each answer.

    A section shows the published figures with the participant's own answer and group marked,
    nothing else of theirs: most of a key holder's page is the same for everyone who gave the
    same answer to that question, so it is kept rather than rendered again per request.
    """
    block = get_template_attribute("results/_blocks.html", "question_block")
    cache = state.of().cache.blocks
    you = context["you"]
    group = you.group.key if you is not None and you.group is not None else None
    sections = {}
    for number, q in enumerate(context["p"].questions, start=1):
        chart = figures.get(f"chart-{q.key}")
        height = chart["layout"]["height"] if chart else None
        key = (served.survey, served.snapshot_id, q.key, number, context["mine"].get(q.key), group, height)
        section = cache.get(key)
        if section is None:
            section = block(q, number, context, figures)  # escaped as it renders: Markup already
            cache.put(key, section)
        sections[q.key] = section
    return sections


def _render_with_slots(template: str, **context) -> list[bytes]:
    """A page rendered with slots where this response's CSP nonce and CSRF token go (set in g,
    where every template and macro reads them), split there: the slots' names at odd places."""
    g.csp_nonce, g.csrf_token = NONCE_SLOT, CSRF_SLOT
    try:
        html = render_template(template, **context)
    finally:
        del g.csp_nonce, g.csrf_token  # the response's own are made when asked for
    return SLOTS.split(html.encode())


def _with_slots(pieces: list[bytes]) -> Response:
    """A once-rendered page with this response's nonce and CSRF token put in its slots (a page
    without a form has no token slot, so no session is started for it)."""
    slots = set(pieces[1::2])
    fill = {NONCE_SLOT.encode(): csp_nonce().encode()}
    if CSRF_SLOT.encode() in slots:
        fill[CSRF_SLOT.encode()] = csrf_token().encode()
    response = Response(b"".join(fill[p] if i % 2 else p for i, p in enumerate(pieces)), mimetype="text/html")
    fast_reads.keep()  # the same page for the same request until the database changes
    return response


@bp.get("/results")
def page():
    return _page(_shown())


@bp.get("/results/<survey_id>/<int:version>")
def survey_page(survey_id: str, version: int):
    return _page(program.opened(survey_id, version))


@bp.get("/results/aggregates.csv")
def aggregates_csv():
    """The aggregates of the survey /results shows."""
    return _csv(_shown())


@bp.get("/results/<survey_id>/<int:version>/aggregates.csv")
def survey_csv(survey_id: str, version: int):
    """The published aggregates as CSV (the file `pulse export` writes), on the same terms as the page."""
    return _csv(program.opened(survey_id, version))


def _csv(survey: Survey):
    row = participants.participant(survey)
    served = snapshots.served(survey, row)
    if row is None and not served.published.released:
        return render_template("results/gate.html", survey=survey, released=False, open_now=_open_now(survey)), 403
    return Response(
        exports.aggregates_csv(survey, served.published),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename={survey.id}-v{survey.version}-aggregates.csv"},
    )


@bp.get("/results/key")
def key_page():
    """The key form: on a page of its own, so that reading the public results needs no session."""
    survey = _shown()
    if participants.participant(survey) is not None:
        return redirect(url_for("results.survey_page", survey_id=survey.id, version=survey.version), code=303)
    return render_template(
        "results/gate.html",
        survey=survey,
        released=snapshots.released_now(survey),
        open_now=_open_now(survey),
        held=_held(),
    )


def _held() -> list[Survey]:
    """The surveys this browser holds a key for (their results are a click away)."""
    found = []
    for ref in participants.session_keys():
        survey_id, _, version = ref.partition("@")
        try:
            found.append(program.opened(survey_id, int(version)))
        except (ValueError, NotFound):  # a key of a survey this database does not show: left out
            continue
    return found


@bp.post("/results")
def enter_key():
    """Check a typed key of any survey; on success keep it in the signed session and show that survey's results."""
    typed = request.form.get(KEY_FIELD, "")
    try:
        row = participants.response_for(typed)
        survey = program.opened(row.survey_id, row.survey_version)
    except (BadKey, NotFound):
        # The same answer for a malformed and an unknown key: no hint whether a key exists. The
        # typed key stays in the field (escaped), so one wrong character is not 26 to type again.
        survey = _shown()
        return render_template(
            "results/gate.html",
            survey=survey,
            error=BadKey.message,
            typed=typed[: participants.TYPED_MAX],
            released=snapshots.released_now(survey),
            open_now=_open_now(survey),
            held=_held(),
        ), 401
    participants.remember(survey.id, survey.version, typed)
    return redirect(url_for("results.survey_page", survey_id=survey.id, version=survey.version), code=303)


@bp.post("/results/forget")
def forget_key():
    """Forget a survey's key in this browser (a shared computer); the key itself still works."""
    ref = request.form.get("survey", "")
    survey_id, _, version = ref.partition("@")
    if survey_id and version.isdigit():
        participants.forget(ref)
        return redirect(url_for("results.survey_page", survey_id=survey_id, version=int(version)), code=303)
    participants.forget()
    return redirect(url_for("results.page"), code=303)


def _waves_of(survey_id: str, version: int) -> tuple[Survey, Survey]:
    """A survey and its earlier wave; 404 when it has none."""
    survey = program.opened(survey_id, version)
    earlier = program.earlier_wave(survey)
    if earlier is None:
        raise PulseError(404, f"{survey.title} version {version} has no earlier wave to compare with.")
    return survey, earlier


@bp.get("/results/<survey_id>/<int:version>/change")
def change_page(survey_id: str, version: int):
    """The own-change form: a key of the earlier wave (and of this one, when the session holds none)."""
    survey, earlier = _waves_of(survey_id, version)
    row, then_row = participants.participant(survey), participants.participant(earlier)
    # A session holding a key of each wave needs no form.
    own = _own(survey, earlier, row, then_row) if row and then_row else None
    return render_template(
        "results/change.html", survey=survey, earlier=earlier, own=own, errors={}, typed={}, needs_current=row is None
    )


@bp.post("/results/<survey_id>/<int:version>/change")
def own_change(survey_id: str, version: int):
    """A participant's own change between two waves, from a key of each.

    The two keys meet only in this request's memory: nothing is stored, logged or put in the
    session, so Pulse keeps no link between them. A bad key is a 401 naming its field.
    """
    survey, earlier = _waves_of(survey_id, version)
    errors: dict[str, str] = {}
    typed = {name: request.form.get(name, "")[: participants.TYPED_MAX] for name in (EARLIER_FIELD, CURRENT_FIELD)}
    row = participants.participant(survey)
    needs_current = row is None
    if needs_current:
        row = _typed_row(survey, CURRENT_FIELD, errors)
    then_row = _typed_row(earlier, EARLIER_FIELD, errors)
    if errors:
        return render_template(
            "results/change.html",
            survey=survey,
            earlier=earlier,
            own=None,
            errors=errors,
            typed=typed,
            needs_current=needs_current,
        ), 401
    return render_template(
        "results/change.html",
        survey=survey,
        earlier=earlier,
        own=_own(survey, earlier, row, then_row),
        errors={},
        typed={},
        needs_current=False,
    )


def _own(survey: Survey, earlier: Survey, row, then_row) -> dict:
    """A participant's own change from their response in each wave (pipeline/waves.py)."""
    return waves.own_change(earlier, json.loads(then_row.answers), survey, json.loads(row.answers))


def _typed_row(survey: Survey, field: str, errors: dict[str, str]):
    """The response of the key typed in `field` for this survey; None with errors[field] set otherwise."""
    label = f"Your results key from wave {survey.version}"
    typed = request.form.get(field, "").strip()
    if not typed:
        errors[field] = f"{label}: enter it to see your change."
        return None
    try:
        return participants.checked(survey, typed)
    except BadKey as exc:  # malformed, unknown, or of another survey (whose holder knows which)
        errors[field] = f"{label}: {exc.message}"
        return None


@bp.get("/surveys")
def archive():
    """Every survey that has been opened: its weeks, its published N, its topic, a link to its results."""
    chosen = {c["topic"]["id"]: c for c in community.chosen_topics()}
    rows = [
        {
            "entry": e,
            "responses": snapshots.published_n(e.survey),
            "chosen": chosen.get(e.topic["id"]) if e.topic else None,
        }
        for e in program.entries(opened_only=True)
    ]
    return render_template("results/archive.html", rows=rows, week_text=week_text)
