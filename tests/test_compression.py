"""Responses compressed where it is safe (GET pages, JSON), never where BREACH could read a secret."""

from __future__ import annotations

import gzip

import brotli
import pytest

from survey_app.participants import SESSION_KEYS

from .helpers import fill

# A marker no page has any reason to contain: if a page echoed the request, it would show up.
MARKER = "zq7breachmarker"
# Every page a participant reads (with a key, /results/key sends them on to /results), and JSON.
PAGES = [
    "/",
    "/survey",
    "/thanks",
    "/results",
    "/topics",
    "/privacy",
    "/admin/login",
    "/api/v1/benchmarks",
    "/api/v1/survey",
]


def decoded(response) -> bytes:
    encoding = response.headers.get("Content-Encoding")
    if encoding == "br":
        return brotli.decompress(response.data)
    if encoding == "gzip":
        return gzip.decompress(response.data)
    assert encoding is None, encoding
    return response.data


@pytest.fixture
def key_holder(app, client):
    """A client whose session holds a results key, on released results."""
    results_key = fill(app, client, release=True)[0]
    with client.session_transaction() as session:
        session[SESSION_KEYS] = {"pulse-aftercare@1": results_key}
    return client


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_pages_and_json_are_compressed(key_holder, encoding):
    for path in PAGES:
        response = key_holder.get(path, headers={"Accept-Encoding": encoding})
        assert response.status_code == 200, path
        assert response.headers.get("Content-Encoding") == encoding, path
        assert "Accept-Encoding" in response.headers["Vary"], path
        plain = key_holder.get(path)
        assert "Content-Encoding" not in plain.headers
        if path == "/results":
            assert b'id="your-clinic"' in decoded(response)
            print(f"/results with a key: {len(plain.data)} bytes, {len(response.data)} as {encoding}")


def test_no_get_page_echoes_the_request(app, key_holder):
    """BREACH needs the attacker's guess beside the secret in one compressed body: no GET page has it."""
    anonymous = app.test_client()
    for client, path in [(key_holder, p) for p in PAGES] + [(anonymous, p) for p in PAGES + ["/results/key"]]:
        response = client.get(
            f"{path}?q={MARKER}&done={MARKER}&expired={MARKER}",
            headers={"Accept-Encoding": "gzip", "X-Guess": MARKER, "Referer": MARKER, "Cookie-Guess": MARKER},
        )
        assert MARKER.encode() not in decoded(response), path


def test_responses_to_posts_are_not_compressed(key_holder):
    """A refused form is answered with what was typed (a guess beside the CSRF token): never compressed."""
    response = key_holder.post("/results", data={"results_key": MARKER}, headers={"Accept-Encoding": "gzip, br"})
    assert response.status_code in (400, 401)
    assert "Content-Encoding" not in response.headers
    response = key_holder.post("/api/v1/responses", json={"answers": {}}, headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in response.headers


def test_assets_keep_their_own_precompressed_gzip(client):
    html = decoded(client.get("/", headers={"Accept-Encoding": "br, gzip"})).decode()
    link = next(part.split('"')[0] for part in html.split('href="')[1:] if "/pulse.css" in part.split('"')[0])
    response = client.get(link, headers={"Accept-Encoding": "br, gzip"})
    assert response.headers["Content-Encoding"] == "gzip"  # assets.py's own, not compressed twice
    assert b"--brand" in gzip.decompress(response.data)
