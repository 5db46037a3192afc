"""Templates: internal links through url_for, and wording that comes from the survey definition."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from survey_app import admin_actions, demo, program, snapshots, state, storage
from survey_app.questions import load_survey

from .helpers import ROOT, fill, make_app, post_form

TEMPLATES = Path(__file__).resolve().parent.parent / "survey_app" / "templates"
DATA = Path(__file__).parent / "data"


def test_no_template_writes_an_internal_address_by_hand():
    # url_for, so a route or a mount point changes in one place. The static report links its
    # neighbouring files by relative name, which this does not match.
    for path in TEMPLATES.rglob("*.html"):
        hits = re.findall(r"""\b(?:href|action|src)\s*=\s*["']?/(?!/)[^"'\s>]*""", path.read_text())
        assert not hits, f"{path.relative_to(TEMPLATES)}: {hits}"


def test_links_render_as_before(client):
    html = client.get("/").get_data(as_text=True)
    for href in ("/", "/survey", "/results", "/topics", "/privacy"):
        assert f'href="{href}"' in html, href


def _small_app(db_url, tmp_path: Path, questions: int, **config):
    """An app whose survey is tests/data/good_small.yaml (two questions), or its first question alone."""
    text = (DATA / "good_small.yaml").read_text()
    if questions == 1:
        text = text.split("  - key: b")[0] + text[text.index("index:") :]
    path = tmp_path / "small.yaml"
    path.write_text(text)
    assert len(load_survey(path).questions) == questions
    return make_app(db_url, PULSE_QUESTIONS=str(path), **config)


@pytest.mark.parametrize(
    "questions, lead, start, step",
    [
        (
            8,
            "All eight questions are required.",
            "8 questions · about 3 minutes",
            "<strong>Answer</strong> eight multiple-choice questions about",
        ),
        (
            2,
            "All two questions are required.",
            "2 questions · about 3 minutes",
            "<strong>Answer</strong> two multiple-choice questions about",
        ),
        (
            1,
            "The one question is required.",
            "1 question · about 3 minutes",
            "<strong>Answer</strong> one multiple-choice question about",
        ),
    ],
    ids=["eight", "two", "one"],
)
def test_question_count_comes_from_the_survey(db_url, tmp_path, questions, lead, start, step):
    app = make_app(db_url) if questions == 8 else _small_app(db_url, tmp_path, questions)
    client = app.test_client()
    form = client.get("/survey").get_data(as_text=True)
    assert f'<p class="lead">{lead} There is no free text' in form
    page = client.get("/").get_data(as_text=True)
    assert start in page and step in page
    state.of(app).close()


def _visible_text(html: str) -> str:
    """What a reader sees of a page: no scripts, styles, tags or attributes (utf-8, heights...)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.mark.parametrize("questions, words", [(2, "two questions"), (1, "one question")])
def test_no_page_claims_eight_questions_of_a_survey_with_fewer(db_url, monkeypatch, tmp_path, questions, words):
    """Pages take the number of questions from the survey, never "eight": the landing page, the form,
    and the notice for a form sent back sooner than it can be read."""
    app = _small_app(db_url, tmp_path, questions)
    client = app.test_client()
    for path in ("/", "/survey", "/privacy", "/thanks"):
        text = _visible_text(client.get(path).get_data(as_text=True))
        assert not re.search(r"\b(8|eight)\b", text, re.I), (path, text)
    monkeypatch.setitem(app.config, "PULSE_MIN_FILL_SECONDS", 30)
    refused = post_form(client, {"a": "x"})
    assert refused.status_code == 429
    text = _visible_text(refused.get_data(as_text=True))
    assert f"quicker than anyone can read {words}," in text
    assert not re.search(r"\b(8|eight)\b", text, re.I), text
    state.of(app).close()


@pytest.mark.parametrize("label", [None, "kind of practice"])
def test_segment_heading_and_api_link_on_the_results_page(db_url, tmp_path, survey, label):
    path = tmp_path / "questions.yaml"
    path.write_text(
        (ROOT / "questions.yaml")
        .read_text()
        .replace("segment_label: practice type", f"segment_label: {label or 'practice type'}")
    )
    app = make_app(db_url, PULSE_QUESTIONS=str(path))
    client = app.test_client()
    for answers in demo.synthetic_answers(survey, 60, np.random.default_rng(7)):
        assert client.post("/api/v1/responses", json={"answers": answers}).status_code == 201
    with app.app_context():
        now = program.current_survey()
        snapshots.rebuild(storage.engine(), now, snapshots.disclosure_rules())  # all 60, due or not
        admin_actions.release(now)
    html = client.get("/results").get_data(as_text=True)
    assert re.search(rf"<summary>By {label or 'practice type'} \(\d+ groups\)</summary>", html)
    assert '<a href="/api/v1/surveys/pulse-aftercare/1/benchmarks">JSON from the API</a>' in html
    state.of(app).close()


def test_every_page_has_its_own_meta_description(app, client):
    """Search engines and link previews get a sentence about each page (Lighthouse SEO)."""
    fill(app, client, release=True)
    seen = {}
    for path in ("/", "/survey", "/thanks", "/results", "/results/key", "/topics", "/privacy", "/admin/login"):
        html = client.get(path).get_data(as_text=True)
        found = re.findall(r'<meta name="description" content="([^"]{40,160})">', html)
        assert len(found) == 1, path
        seen[path] = found[0]
    assert len(set(seen.values())) >= 7, seen  # the admin login shares the general one


def test_every_table_region_is_reachable_by_keyboard(app, client, survey):
    """A table that may scroll sideways is a labelled, focusable region with a hint (axe: scrollable-region)."""
    for answers in demo.synthetic_answers(survey, 60, np.random.default_rng(7)):
        assert client.post("/api/v1/responses", json={"answers": answers}).status_code == 201
    with app.app_context():
        now = program.current_survey()
        snapshots.rebuild(storage.engine(), now, snapshots.disclosure_rules())  # all 60, due or not
        admin_actions.release(now)
    html = client.get("/results").get_data(as_text=True)
    regions = re.findall(r'<div class="table-wrap[^"]*"[^>]*>\s*<p class="scroll-hint"', html)
    assert len(regions) == html.count("<table") >= 10
    for tag in re.findall(r'<div class="table-wrap[^"]*"[^>]*>', html):
        assert 'tabindex="0"' in tag and 'role="region"' in tag and re.search(r'aria-label="[^"]{8,}"', tag), tag
    # The practice-type tables stack on a phone: every cell names its group.
    cells = re.findall(r'<td role="cell"[^>]*>', html)
    assert cells and all('data-group="' in cell for cell in cells)


@pytest.mark.parametrize("path", ["/", "/survey", "/privacy", "/topics", "/guide"])
def test_the_privacy_promise_is_said_once_per_page_with_a_link(client, path):
    html = client.get(path).get_data(as_text=True)
    footer = html[html.index('<footer class="site">') :]
    said_in_page = path in ("/", "/survey", "/privacy")
    assert ("Pulse is anonymous" in footer) is not said_in_page
    assert 'href="/privacy"' in html
    main = html[html.index("<main") : html.index("</main>")]
    assert sum(main.count(s) for s in ("Nothing you choose here identifies", "Nothing you give us identifies")) <= 1


@pytest.mark.parametrize(
    "path, title",
    [
        ("/survey", "Survey · The Pulse of Clinical Aftercare · Pulse"),
        ("/guide", "Guide · The Pulse of Clinical Aftercare · Pulse"),
        ("/thanks", "Thank you · The Pulse of Clinical Aftercare · Pulse"),
    ],
)
def test_each_page_title_names_the_page_and_the_survey(client, path, title):
    assert f"<title>{title}</title>" in client.get(path).get_data(as_text=True)
