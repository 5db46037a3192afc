"""The two reads clients repeat most, answered again without Flask while nothing they were made from changed.

`GET /results` and `GET /api/v1/benchmarks` are, between two commits to the database, the same
bytes for the same request, apart from each page's CSP nonce: the views already keep what they
are made of (the snapshot, the rendered page) and only put them together per request. What
Flask itself costs around that (the request context, the session, the hooks, the response
object) was most of their time. So this WSGI middleware keeps each such response, split where
its nonce goes, and serves it again, with a fresh nonce, to the next request that would make
exactly the same one:

- **The same request.** GET, one of the two paths, no query, no X-Results-Key or Authorization
  header (those go to Flask each time), and the same Cookie (kept only as a keyed hash, as the
  results keys are: the session that holds a key is told apart without keeping it), Accept-
  Encoding, Host and forwarding headers.
- **Nothing changed.** The view says its response is made only from the database (it calls
  `keep()`), and the response set no cookie. SQLite: no other connection has committed since
  (`PRAGMA data_version` on this thread's probe connection, which never writes, read before
  Flask made the response; storage.probe_version). PostgreSQL: the listener is listening and has
  heard nothing since (the cache epochs), and the view read nothing the listener does not cover.
- **Nothing due.** The scheduler has looked within its poll and nothing is due (schedules.py),
  a key holder's CSRF token is still the one csrf_token() would put in the page (limits.py), the
  session cookie is not past its lifetime, and the copy is at most MAX_AGE_SECONDS old (as old
  as the demo banner's own check).

Anything else goes to Flask, which answers as before and leaves a copy for the next request.
A page gzipped around its nonce is kept as compression.py made it: deflate segments of the
stretches between nonces, and the next response's nonce goes between them as a stored block.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

from flask import Flask, current_app, g, request

from . import compression, headers, limits, state, storage

PATHS = frozenset({"/results", "/api/v1/benchmarks"})
# What a view leaves in the WSGI environ for the middleware, and what the middleware leaves for the view.
MARK = "pulse.fast_reads.mark"
CANDIDATE = "pulse.fast_reads.candidate"
# Responses kept per server thread (SQLite's data_version is per connection, so per thread).
KEPT_PER_THREAD = 8
# A kept response is served for at most this long: what a page shows that changes without a
# commit (the demo banner's check, __init__.DEMO_CHECK_SECONDS) is never older than on the Flask path.
MAX_AGE_SECONDS = 30.0
# The request headers a kept response is told apart by, besides the path and the cookie.
VARY = (
    "HTTP_ACCEPT_ENCODING",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "wsgi.url_scheme",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
)
EXTENSION = "pulse_fast_reads"

_monotonic = time.monotonic
_wall = time.time


@dataclass(frozen=True)
class Mark:
    """What the view says about its response: the nonce in it, and until when it holds."""

    nonce: str | None
    until: float  # time.monotonic(): MAX_AGE_SECONDS
    csrf_until: float  # limits.csrf_clock(): the page's CSRF token's last reuse
    until_wall: float  # time.time(): the session cookie's end

    def holds(self) -> bool:
        return _monotonic() < self.until and limits.csrf_clock() < self.csrf_until and _wall() < self.until_wall


@dataclass
class Kept:
    status: str
    headers: list[tuple[str, list[str]]]  # each value split where the nonce goes
    parts: list[bytes]  # the body split where the nonce goes (before compression)
    token: tuple
    mark: Mark
    segments: list[bytes] | None = None  # gzip: the deflate segments of the parts (compression.py)

    def serve(self, start_response: Callable) -> Iterable[bytes]:
        nonce = headers.new_nonce()
        body = nonce.encode().join(self.parts)
        if self.segments is not None:
            body = compression.gzip_around_nonce(self.segments, nonce.encode(), body)
        out = [
            (name, str(len(body)) if name.lower() == "content-length" else nonce.join(value))
            for name, value in self.headers
        ]
        start_response(self.status, out)
        return [body]


def keep() -> None:
    """Called by a view whose response, until the database changes, is the same for the same
    request apart from the page's CSP nonce (see the module docstring)."""
    environ = request.environ
    if not environ.get(CANDIDATE):
        return
    pulse = state.of()
    if pulse.watch is not None and "db" in g:
        return  # PostgreSQL: this response read the database directly, not only what the listener covers
    csrf_until = float("inf")
    if current_app.config["WTF_CSRF_FIELD_NAME"] in g:  # the page holds a CSRF token
        kept_until = limits.csrf_token_kept_until()
        if kept_until is None:
            return
        csrf_until = kept_until
    until_wall = float("inf")
    if current_app.config["SESSION_COOKIE_NAME"] in request.cookies:
        expires = current_app.session_interface.expires_at(current_app, request)
        if expires is None:
            return
        until_wall = expires
    environ[MARK] = Mark(g.get("csp_nonce"), _monotonic() + MAX_AGE_SECONDS, csrf_until, until_wall)


class FastReads:
    """The WSGI middleware in front of the Flask app (create_app installs it)."""

    def __init__(self, app: Flask, wsgi_app: Callable):
        self.app = app
        self.wsgi_app = wsgi_app
        self.enabled = True
        self.served = 0  # responses served from a kept copy (tests read it)
        self._local = threading.local()
        # The Cookie header is kept only as this hash: a worker's memory holds no session or key.
        self._salt = os.urandom(16)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        key = self._key(environ) if self.enabled else None
        if key is None:
            return self.wsgi_app(environ, start_response)
        pulse = state.of(self.app)
        try:
            token = _token(pulse)
        except Exception:  # noqa: BLE001 - the database is away: Flask answers (and says so)
            token = None
        if token is None:
            return self.wsgi_app(environ, start_response)
        kept = self._kept()
        entry = kept.get(key)
        if entry is not None:
            if entry.token == token and entry.mark.holds() and _quiet(pulse):
                kept.move_to_end(key)
                self.served += 1
                return entry.serve(start_response)
            del kept[key]
        return self._made_and_kept(environ, start_response, key, token, kept)

    def _made_and_kept(self, environ, start_response, key, token, kept) -> Iterable[bytes]:
        environ[CANDIDATE] = True
        seen: list = []

        def noting(status, response_headers, exc_info=None):
            seen[:] = [status, response_headers]
            return start_response(status, response_headers, exc_info)

        result = self.wsgi_app(environ, noting)
        mark = environ.get(MARK)
        if mark is None or not seen or not seen[0].startswith("200 "):
            return result
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        entry = _entry(seen[0], seen[1], body, mark, token, environ.get(compression.AROUND_NONCE))
        if entry is not None:
            kept[key] = entry
            while len(kept) > KEPT_PER_THREAD:
                kept.popitem(last=False)
        return [body]

    def _key(self, environ: dict) -> tuple | None:
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or environ.get("PATH_INFO") not in PATHS
            or environ.get("QUERY_STRING")
            or "HTTP_X_RESULTS_KEY" in environ
            or "HTTP_AUTHORIZATION" in environ
        ):
            return None
        cookie = environ.get("HTTP_COOKIE")
        digest = hashlib.blake2b(cookie.encode("latin-1"), key=self._salt, digest_size=16).digest() if cookie else None
        return (
            environ["PATH_INFO"],
            digest,
            "HTTP_X_FORWARDED_FOR" in environ,  # a request without it is noted once (limits.note_unforwarded)
            *(environ.get(name) for name in VARY),
        )

    def _kept(self) -> OrderedDict:
        kept = getattr(self._local, "kept", None)
        if kept is None:
            kept = self._local.kept = OrderedDict()
        return kept


def _token(pulse: state.PulseState) -> tuple | None:
    """What must be unchanged for a kept response to hold; None when that cannot be known now."""
    epochs = (pulse.cache.program_epoch, pulse.cache.snapshots_epoch)
    if pulse.watch is not None:
        return epochs if pulse.watch.listening() else None
    version = storage.probe_version(pulse.probe)
    return None if version is None else (*version, *epochs)


def _quiet(pulse: state.PulseState) -> bool:
    return pulse.schedule is not None and pulse.schedule.quiet()


def _entry(
    status: str, response_headers: list, body: bytes, mark: Mark, token: tuple, around_nonce: tuple | None
) -> Kept | None:
    """The response split where its nonce goes; None when it is not to be kept."""
    names = {name.lower() for name, _ in response_headers}
    if "set-cookie" in names:
        return None
    nonce = mark.nonce
    if nonce is None:
        split_headers = [(name, [value]) for name, value in response_headers]
        return Kept(status, split_headers, [body], token, mark)
    split_headers = [(name, value.split(nonce)) for name, value in response_headers]
    if "content-encoding" not in names:
        return Kept(status, split_headers, body.split(nonce.encode()), token, mark)
    # The nonce is inside the compressed bytes: kept only as compression.py made it, in pieces.
    segments, parts = around_nonce or (None, None)
    if segments is None:
        return None
    return Kept(status, split_headers, list(parts), token, mark, segments)


def install(app: Flask) -> None:
    """Put the middleware in front of the app's WSGI callable (outside ProxyFix: it keys on the raw
    headers); not when a rate limit applies to every request, which must each be counted."""
    if limits.checks_every_request(app):
        return
    fast = FastReads(app, app.wsgi_app)
    app.wsgi_app = fast  # type: ignore[method-assign]
    app.extensions[EXTENSION] = fast


def of(app: Flask) -> FastReads | None:
    return app.extensions.get(EXTENSION)
