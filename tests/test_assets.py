"""Static files: content-addressed, compressed, cached for a year; the survey page stays light."""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import replace

from survey_app import assets
from survey_app.pipeline import charts
from survey_app.pipeline.figures import (
    Bin,
    Cell,
    IndexFigures,
    Outcome,
    OutcomeOption,
    Published,
    QuestionFigures,
    Rules,
    Segment,
    SurveyRef,
    You,
)

from .helpers import ROOT, plotly_bundle_js, plotly_package_js


def asset_links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/assets/[^"]+)"', html)


def test_pages_link_assets_by_content_digest(client):
    links = asset_links(client.get("/survey").get_data(as_text=True))
    assert any(link.endswith("/pulse.css") for link in links)
    assert any(link.endswith("/favicon.svg") for link in links)
    for link in links:
        assert re.fullmatch(r"/assets/[0-9a-f]{12}/.+", link)


def test_assets_are_gzipped_and_immutable(client):
    link = next(link for link in asset_links(client.get("/").get_data(as_text=True)) if link.endswith(".css"))
    response = client.get(link, headers={"Accept-Encoding": "gzip, br"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "immutable" in response.headers["Cache-Control"] and "max-age=31536000" in response.headers["Cache-Control"]
    assert b"--brand" in gzip.decompress(response.data)
    plain = client.get(link)
    assert "Content-Encoding" not in plain.headers and b"--brand" in plain.data


def test_stale_or_escaping_paths_are_404(client):
    assert client.get("/assets/000000000000/pulse.css").status_code == 404
    assert client.get("/assets/000000000000/../__init__.py").status_code == 404
    assert client.get("/assets/000000000000/nothing.css").status_code == 404


def test_survey_page_is_light_and_scriptless(client):
    html = client.get("/survey", headers={"Accept-Encoding": "gzip"})
    assert html.headers["Content-Encoding"] == "gzip"  # compression.py
    page = gzip.decompress(html.data)
    links = asset_links(page.decode())
    gzip_ok = {"Accept-Encoding": "gzip"}
    css = client.get(next(link for link in links if link.endswith(".css")), headers=gzip_ok).data
    favicon = client.get(next(link for link in links if link.endswith(".svg")), headers=gzip_ok).data
    total = len(html.data) + len(css) + len(favicon)
    print(f"/survey transfers {total} bytes compressed (page {len(page)} bytes before compression)")
    assert total < 30_000
    assert b"<script" not in page


def test_plotly_js_is_the_pinned_basic_bundle(client):
    """Provenance: the served plotly.js is npm's basic bundle at the pinned version, unchanged."""
    html = client.get("/survey").get_data(as_text=True)  # any page builds the asset table
    assert "plotly" not in html  # the survey page loads no script at all
    with client.application.app_context():
        url = assets.asset_url(assets.PLOTLY)
    served = client.get(url, headers={"Accept-Encoding": "identity"})
    assert served.status_code == 200 and served.mimetype in ("application/javascript", "text/javascript")
    assert served.data == plotly_bundle_js()
    assert hashlib.sha256(served.data).hexdigest() == assets.PLOTLY_SHA256
    assert served.data.startswith(b"/**\n* plotly.js (basic - minified) v" + assets.PLOTLY_VERSION.encode() + b"\n")
    assert f'VERSION = "{assets.PLOTLY_VERSION}"' in (ROOT / "tools" / "vendor_plotly.py").read_text()


def test_plotly_bundle_matches_the_plotly_package():
    """The figure JSON comes from the plotly package: the bundle must be the plotly.js it writes for."""
    package = re.match(rb"/\*\*\n\* plotly\.js v([0-9.]+)\n", plotly_package_js()).group(1).decode()
    assert package == assets.PLOTLY_VERSION, (
        f"plotly ships plotly.js {package}: run tools/vendor_plotly.py for that version and update assets.py"
    )


def test_every_chart_uses_a_trace_type_of_the_bundle(survey):
    """The basic bundle draws bar, scatter and pie only: a new trace type needs another bundle."""
    cell = Cell("within_24h", 10, 50, (30, 70))
    percentiles: dict[str, float | None] = {"10": 5.0, "25": 10.0, "50": 20.0, "75": 30.0, "90": 40.0}
    published = Published(
        survey=SurveyRef(survey.id, survey.version),
        responses=20,
        released=True,
        published=True,
        needed=0,
        rules=Rules(10, 5, 10),
        disclosure=None,
        notes=(),
        segment=Segment(survey.segment, ()),
        questions=(
            QuestionFigures("first_followup", "single", 20, False, True, (cell,), (), ()),
            QuestionFigures("discharge_checks", "multi", 20, False, True, (replace(cell, key="vitals"),), (), ()),
        ),
        index=IndexFigures(20, False, percentiles, (Bin(0, 9, 20, 100, (84, 100)),), ()),
        outcome=Outcome("followup_completion", (OutcomeOption("pct_90_plus", 20, percentiles),)),
    )
    answers = {"first_followup": "within_24h", "discharge_checks": ["vitals"], "followup_completion": "pct_90_plus"}
    you = You(answers, 40, None, None, None, (None, None), (), None)
    figures = charts.figures(survey, published, you)
    assert len(figures) == 4
    used = {trace.get("type", "scatter") for figure in figures.values() for trace in figure["data"]}
    assert used <= assets.PLOTLY_TRACES, used


def test_plotly_is_fetched_only_by_charts_js(client):
    """Pages name plotly.js for charts.js to fetch when a chart comes near; no page loads it up front."""
    for path in ("/", "/survey", "/topics", "/privacy", "/results", "/results/key"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r'<script[^>]*src="[^"]*plotly', html), path
