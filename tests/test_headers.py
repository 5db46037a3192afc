"""Security headers on every page, cookies over HTTPS, CSRF on every form POST."""

from __future__ import annotations

import re

import pytest

from survey_app import state

from .helpers import FULL_ANSWERS, answers_to_form, fill, form_tokens, make_app

REQUIRED_CSP = [
    "default-src 'self'",
    "script-src 'self' 'nonce-",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
]
NONCE = re.compile(r"script-src 'self' 'nonce-([A-Za-z0-9_-]+)'")


def nonce_of(response) -> str:
    return NONCE.search(response.headers["Content-Security-Policy"]).group(1)


def assert_scripts_carry_the_nonce(path: str, response) -> None:
    """Every <script> has a src or the response's own nonce (TRUST H1)."""
    nonce = nonce_of(response)
    for tag in re.findall(r"<script\b[^>]*>", response.get_data(as_text=True)):
        assert "src=" in tag or f'nonce="{nonce}"' in tag, (path, tag)


def html_get_routes(app):
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith(("/api/", "/static")):
            yield rule.rule


def test_every_html_page_sends_the_headers(app, client):
    routes = list(html_get_routes(app))
    assert {"/", "/survey", "/thanks", "/privacy"} <= set(routes)
    for path in routes:
        response = client.get(path)
        if response.mimetype != "text/html":
            continue
        csp = response.headers.get("Content-Security-Policy", "")
        for directive in REQUIRED_CSP:
            assert directive in csp, (path, directive)
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "charset=utf-8" in response.headers["Content-Type"]
        assert "Strict-Transport-Security" not in response.headers  # plain HTTP here


def test_every_page_has_a_fresh_nonce_of_at_least_128_bits(app, client):
    for path in html_get_routes(app):
        first, second = client.get(path), client.get(path)
        if first.mimetype != "text/html":
            continue
        assert len(nonce_of(first)) >= 22, path  # 22 base64url characters carry 132 bits
        assert nonce_of(first) != nonce_of(second), path


def test_results_page_scripts_carry_the_nonce_of_their_response(app, client):
    """The public results page is rendered once per snapshot: each response still gets its own nonce."""

    fill(app, client, release=True)
    pages = [client.get("/results") for _ in range(2)]
    assert all('type="application/json"' in page.get_data(as_text=True) for page in pages)
    assert nonce_of(pages[0]) != nonce_of(pages[1])
    for page in pages:
        assert_scripts_carry_the_nonce("/results", page)


def test_no_inline_script_or_handler_in_any_page(app, client):
    for path in html_get_routes(app):
        response = client.get(path)
        html = response.get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            # A nonce only marks data blocks: nothing inline ever runs.
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        if response.mimetype == "text/html":
            assert_scripts_carry_the_nonce(path, response)
        assert not re.search(r"\son[a-z]+\s*=", html), path
        # Absolute URLs only on this site's own host (the Atom feed's links must be absolute).
        assert not re.search(r'(src|href)="(https?:)?//(?!localhost/)', html), path


@pytest.mark.parametrize("path", ["/survey", "/thanks"])
def test_forms_are_not_cached(client, path):
    assert client.get(path).headers["Cache-Control"] == "no-store"


def test_https_cookie_and_hsts(db_url):
    app = make_app(db_url, PULSE_HTTPS=True)
    client = app.test_client()
    response = client.get("/survey", base_url="https://pulse.example")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    for part in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert part in cookie
    assert "Domain" not in cookie
    assert int(re.search(r"max-age=(\d+)", response.headers["Strict-Transport-Security"]).group(1)) >= 31536000
    state.of(app).close()


def test_https_csrf_referrer_check(db_url):
    from werkzeug.datastructures import MultiDict

    app = make_app(db_url, PULSE_HTTPS=True)
    client = app.test_client()
    tokens = form_tokens(client.get("/survey", base_url="https://pulse.example").get_data(as_text=True))
    data = MultiDict(answers_to_form(FULL_ANSWERS) + list(tokens.items()))
    missing = client.post("/survey", data=data, base_url="https://pulse.example")
    assert missing.status_code == 400 and "referrer" in missing.get_data(as_text=True).lower()
    ok = client.post(
        "/survey", data=data, base_url="https://pulse.example", headers={"Referer": "https://pulse.example/survey"}
    )
    assert ok.status_code == 303
    state.of(app).close()


def test_plain_http_cookie_is_not_secure(client):
    cookie = client.get("/survey").headers["Set-Cookie"]
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_every_post_route_is_csrf_protected_or_json_only(app):
    from survey_app.limits import csrf

    for rule in app.url_map.iter_rules():
        if not ({"POST", "PUT", "PATCH", "DELETE"} & rule.methods):
            continue
        view = app.view_functions[rule.endpoint]
        exempt = (
            f"{view.__module__}.{view.__name__}" in csrf._exempt_views
            or rule.endpoint.split(".")[0] in csrf._exempt_blueprints
        )
        if exempt:
            # Exempt only where the body must be JSON: a cross-site form cannot send that.
            assert rule.rule.startswith("/api/"), rule.rule


def test_production_refuses_debug(db_url):
    from survey_app import ConfigError

    with pytest.raises(ConfigError):
        make_app(db_url, DEBUG=True, PULSE_ENV="production")


def test_json_api_refuses_form_bodies(client):
    # Why the API may skip CSRF tokens: it answers 415 to what a cross-site form can send.
    response = client.post("/api/v1/responses", data="answers=x", content_type="text/plain")
    assert response.status_code == 415


def test_https_through_a_trusted_proxy(db_url):
    from werkzeug.datastructures import MultiDict

    app = make_app(db_url, PULSE_HTTPS=True, PULSE_PROXY_HOPS=1)
    client = app.test_client()
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Host": "pulse.example"}
    page = client.get("/survey", headers=proxy)
    assert "Strict-Transport-Security" in page.headers
    assert "Secure" in page.headers["Set-Cookie"]
    tokens = form_tokens(page.get_data(as_text=True))
    response = client.post(
        "/survey",
        data=MultiDict(answers_to_form(FULL_ANSWERS) + list(tokens.items())),
        headers=proxy | {"Referer": "https://pulse.example/survey"},
    )
    assert response.status_code == 303  # Flask-WTF's HTTPS referrer check passes behind the proxy
    state.of(app).close()
