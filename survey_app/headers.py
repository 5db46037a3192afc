"""Security headers on every response: CSP, nosniff, referrer policy, HSTS, no-store."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request

# Scripts come only from our own static files; the nonce marks the chart data blocks
# (<script type="application/json">), which never run. plotly.js injects <style> elements at
# run time, so styles (never scripts) may be inline.
CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HSTS = "max-age=31536000; includeSubDomains"
# Pages whose forms carry CSRF tokens or whose content is private: never cached.
NO_STORE_PREFIXES = ("/survey", "/thanks", "/results", "/topics", "/admin", "/api/")


def init_app(app: Flask) -> None:
    app.add_template_global(csp_nonce)
    app.after_request(_add_headers)


def csp_nonce() -> str:
    """This response's script nonce: 128 random bits, new for every response."""
    if "csp_nonce" not in g:
        g.csp_nonce = new_nonce()
    return g.csp_nonce


def new_nonce() -> str:
    """128 random bits, always 22 characters."""
    return secrets.token_urlsafe(16)


def _add_headers(response: Response) -> Response:
    from flask import current_app

    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Not no-referrer: Flask-WTF's HTTPS CSRF check needs a same-origin referrer.
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CSP.format(nonce=csp_nonce())
    if current_app.config.get("PULSE_HTTPS"):
        response.headers["Strict-Transport-Security"] = HSTS
    if request.path.startswith(NO_STORE_PREFIXES) or request.method != "GET":
        response.headers["Cache-Control"] = "no-store"
    return response
