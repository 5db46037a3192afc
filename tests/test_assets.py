"""Static files: content-addressed, compressed, cached for a year; the survey page stays light."""
from __future__ import annotations

import gzip
import re
from pathlib import Path

from survey_app import assets

from .helpers import plotly_package_js


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
    page = html.data
    links = asset_links(page.decode())
    gzip_ok = {"Accept-Encoding": "gzip"}
    css = client.get(next(link for link in links if link.endswith(".css")), headers=gzip_ok).data
    favicon = client.get(next(link for link in links if link.endswith(".svg")), headers=gzip_ok).data
    total = len(gzip.compress(page)) + len(css) + len(favicon)
    print(f"/survey transfers {total} bytes compressed (page {len(page)} bytes before compression)")
    assert total < 30_000
    assert b"<script" not in page


def test_plotly_js_is_the_installed_plotly_packages_own(client):
    """Provenance: plotly.js is served from the plotly package, not a copy of unknown origin."""
    html = client.get("/survey").get_data(as_text=True)  # any page builds the asset table
    assert "plotly" not in html  # the survey page loads no script at all
    with client.application.app_context():
        url = assets.asset_url(assets.PLOTLY)
    served = client.get(url, headers={"Accept-Encoding": "identity"})
    assert served.status_code == 200 and served.mimetype in ("application/javascript", "text/javascript")
    assert served.data == plotly_package_js()
    # The plotly.js inside plotly 7.x; charts.js is written against its API (setup.cfg pins plotly<8).
    assert re.search(rb"plotly\.js v[3-9]\.", served.data[:200])
    assert not (Path(client.application.static_folder) / "vendor").exists()  # no vendored copy beside it
