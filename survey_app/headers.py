"""Security headers on every response: CSP, nosniff, referrer policy, HSTS, no-store."""
from __future__ import annotations

from flask import Flask, Response, request

# Scripts come only from our own static files; plotly.js injects <style> elements at run time,
# so styles (never scripts) may be inline.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HSTS = "max-age=31536000; includeSubDomains"
# Pages whose forms carry CSRF tokens or whose content is private: never cached.
NO_STORE_PREFIXES = ("/survey", "/thanks", "/results", "/topics", "/admin", "/api/")


def init_app(app: Flask) -> None:
    app.after_request(_add_headers)


def _add_headers(response: Response) -> Response:
    from flask import current_app

    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Not no-referrer: Flask-WTF's HTTPS CSRF check needs a same-origin referrer.
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CSP
    if current_app.config.get("PULSE_HTTPS"):
        response.headers["Strict-Transport-Security"] = HSTS
    if request.path.startswith(NO_STORE_PREFIXES) or request.method != "GET":
        response.headers["Cache-Control"] = "no-store"
    return response
