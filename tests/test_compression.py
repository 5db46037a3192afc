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


def _nonce(response) -> str:
    return response.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]


def _counting(monkeypatch, name):
    """Count the calls of a compression.py helper, still calling it."""
    from survey_app import compression

    calls = []
    real = getattr(compression, name)

    def counted(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(compression, name, counted)
    return calls


def test_the_public_results_page_is_compressed_once_with_a_nonce_per_response(app, client, monkeypatch):
    """Without cookies or a key the page is everyone's: its stretches between nonces are deflated
    once, and each response's gzip carries its own nonce (the one in its CSP header)."""
    fill(app, client, release=True)
    anonymous = app.test_client(use_cookies=False)
    plain = anonymous.get("/results")
    segments = _counting(monkeypatch, "_deflate_segment")
    bodies = []
    for _ in range(3):
        response = anonymous.get("/results", headers={"Accept-Encoding": "br, gzip"})
        assert response.status_code == 200
        assert response.headers["Content-Encoding"] == "gzip"  # joined from kept segments: gzip, not br
        assert "Accept-Encoding" in response.headers["Vary"]
        assert int(response.headers["Content-Length"]) == len(response.data)
        body = gzip.decompress(response.data)
        nonce = _nonce(response)
        assert f'nonce="{nonce}"'.encode() in body
        assert body.replace(nonce.encode(), b"N") == plain.data.replace(_nonce(plain).encode(), b"N")
        bodies.append(body)
    assert len({_nonce_of(b) for b in bodies}) == 3
    pieces = plain.data.count(_nonce(plain).encode()) + 1
    # The first response deflates every stretch; a nonce goes between them as a stored block.
    assert len(segments) == pieces


def _nonce_of(body: bytes) -> bytes:
    return body.split(b'nonce="')[1].split(b'"')[0]


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_public_json_is_compressed_once(app, client, monkeypatch, encoding):
    fill(app, client, release=True)
    anonymous = app.test_client(use_cookies=False)
    plain = anonymous.get("/api/v1/benchmarks").data
    compressed = _counting(monkeypatch, "_compressed")
    first = anonymous.get("/api/v1/benchmarks", headers={"Accept-Encoding": encoding})
    second = anonymous.get("/api/v1/benchmarks", headers={"Accept-Encoding": encoding})
    assert first.headers["Content-Encoding"] == second.headers["Content-Encoding"] == encoding
    assert decoded(first) == decoded(second) == plain
    assert len(compressed) == 1


def test_personal_responses_are_not_kept(app, key_holder, monkeypatch):
    """A request with a cookie or a results key may get a personal page: compressed per response, never kept."""
    results_key = fill(app, key_holder, n=1)[0]
    kept = _counting(monkeypatch, "_compressed")
    segments = _counting(monkeypatch, "_deflate_segment")
    for _ in range(2):
        page = key_holder.get("/results", headers={"Accept-Encoding": "gzip"})
        assert b'id="your-clinic"' in decoded(page)
        api = app.test_client(use_cookies=False).get(
            "/api/v1/benchmarks", headers={"Accept-Encoding": "gzip", "X-Results-Key": results_key}
        )
        assert api.status_code == 200 and b'"you"' in decoded(api)
    assert kept == [] and segments == []
    from survey_app import compression

    assert len(app.extensions[compression.EXTENSION]) == 0


def test_a_page_that_starts_a_session_is_not_kept(app, monkeypatch):
    """The survey form carries a CSRF token made for this visitor (its cookie comes with it): not everyone's."""
    from survey_app import compression

    anonymous = app.test_client(use_cookies=False)
    for _ in range(2):
        response = anonymous.get("/survey", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200 and "Set-Cookie" in response.headers
        assert b"csrf_token" in decoded(response)
    assert len(app.extensions[compression.EXTENSION]) == 0
