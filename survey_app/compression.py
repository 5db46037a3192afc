"""Pages and JSON compressed on the way out (Flask-Compress), except where BREACH could bite.

BREACH reads a secret out of a compressed response by making the victim's browser fetch it
many times with the attacker's guesses reflected beside the secret, and watching the size.
Pulse's secrets in a page are the CSRF token, the results key (/thanks) and a clinic's own
answers (/results with a key). So only responses to GET and HEAD are compressed: no GET page
echoes anything from the request (no query string, no path, no header reaches the body;
tests/test_compression.py checks every page with a marker), while a POST answered with its
form again (a topic proposal refused, a mistyped key) does echo what was typed, and is sent
as it is. Assets have their own precompressed gzip (assets.py) and are left alone here.

A body that is the same for everyone until the next snapshot (the public results page, the
published benchmarks) is compressed once, not per request: what a request without cookies and
without a results key gets cannot be personal, so its compressed form is kept, by content, in a
small per-worker cache. The public results page differs per response only in its CSP nonce:
its gzip form is kept as one deflate segment per stretch between nonces, and each response
puts its own nonce's segment between them (a client that accepts gzip gets gzip for it, even
one that would prefer brotli; brotli streams cannot be joined like that).
"""

from __future__ import annotations

import struct
import zlib

import brotli
from flask import Flask, Response, current_app, g, request, session
from flask_compress import Compress
from flask_compress.flask_compress import _choose_algorithm

from .state import LruCache

# What is worth compressing: our pages, the API's JSON and the CSV exports.
MIMETYPES = ["text/html", "application/json", "text/csv", "text/plain"]
# gzip at its default level 6 costs about 1 ms for the largest page (the results with a key).
ALGORITHMS = ["br", "gzip"]
# The request methods whose responses echo nothing from the request (see the module docstring).
SAFE_METHODS = ("GET", "HEAD")
# Shorter bodies are sent as they are (Flask-Compress's own threshold).
MIN_SIZE = 500
# Bodies kept compressed per worker: a public page and a JSON document per survey shown, and a few more.
CACHED_BODIES = 32
EXTENSION = "pulse_compressed"
# Where a page compressed around its nonce leaves its (segments, stretches) in the WSGI environ.
AROUND_NONCE = "pulse.compression.around_nonce"
# What a client sends when the response may be personal: a session or device cookie, or a results key.
PERSONAL_HEADERS = ("Cookie", "X-Results-Key", "Authorization")

compress = Compress()


def init_app(app: Flask) -> None:
    app.config.update(
        COMPRESS_REGISTER=False, COMPRESS_MIMETYPES=MIMETYPES, COMPRESS_ALGORITHM=ALGORITHMS, COMPRESS_STREAMS=False
    )
    compress.init_app(app)
    app.extensions[EXTENSION] = LruCache(CACHED_BODIES)
    app.after_request(_compress)


def _compress(response: Response) -> Response:
    if request.method not in SAFE_METHODS or request.blueprint == "assets":
        return response
    if "Accept-Encoding" not in request.headers:
        return response  # a client that takes no encoding: nothing to do, nor to keep
    if _same_for_everyone(response) and _from_cache(response):
        return response
    return compress.after_request(response)


def _same_for_everyone(response: Response) -> bool:
    """Whether the response is one worth keeping compressed: public (nothing in the request could
    have made it personal, and it sets no cookie) and whole (a body of bytes, not yet encoded)."""
    return (
        200 <= response.status_code < 300
        and response.mimetype in MIMETYPES
        and not response.is_streamed
        and "Content-Encoding" not in response.headers
        and "Set-Cookie" not in response.headers
        and not session.modified  # a cookie to come (a CSRF token in the page): not the same for anyone else
        and not any(name in request.headers for name in PERSONAL_HEADERS)
    )


def _from_cache(response: Response) -> bool:
    """Put the kept compressed form of the body in the response; False when it is not to be kept
    (too short, no encoding accepted, or a page with a nonce for a client without gzip)."""
    body = response.get_data()
    accepted = request.headers.get("Accept-Encoding", "")
    if len(body) < MIN_SIZE or not accepted:
        return False
    nonce = g.get("csp_nonce")
    cache: LruCache = current_app.extensions[EXTENSION]
    if nonce is not None and nonce.encode() in body:
        if _choose_algorithm(("gzip",), accepted) is None:
            return False
        parts = tuple(body.split(nonce.encode()))
        segments = cache.get(("nonced", parts))
        if segments is None:
            segments = [_deflate_segment(part, current_app.config["COMPRESS_LEVEL"]) for part in parts]
            cache.put(("nonced", parts), segments)
        _send(response, "gzip", gzip_around_nonce(segments, nonce.encode(), body))
        # fast_reads.py keeps this page as these pieces, and puts the next response's nonce between them.
        request.environ[AROUND_NONCE] = (segments, parts)
        return True
    algorithm = _choose_algorithm(compress.enabled_algorithms, accepted)
    if algorithm is None:
        return False
    compressed = cache.get((algorithm, body))
    if compressed is None:
        compressed = _compressed(body, algorithm)
        cache.put((algorithm, body), compressed)
    _send(response, algorithm, compressed)
    return True


def _compressed(body: bytes, algorithm: str) -> bytes:
    """The body compressed at Flask-Compress's levels: a body seen once costs what it did before."""
    config = current_app.config
    if algorithm == "br":
        return brotli.compress(body, quality=config["COMPRESS_BR_LEVEL"], lgwin=config["COMPRESS_BR_WINDOW"])
    return _gzip_member([_deflate_segment(body, config["COMPRESS_LEVEL"])], body)


def _send(response: Response, algorithm: str, compressed: bytes) -> None:
    """The response with a compressed body, its headers as Flask-Compress sets them."""
    response.set_data(compressed)
    response.headers["Content-Encoding"] = algorithm
    response.headers["Content-Length"] = str(len(compressed))
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = "Accept-Encoding"
    elif "accept-encoding" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Accept-Encoding"


# ------------------------------------------------------------------ gzip from deflate segments

# A gzip member's header: deflate, no flags, no time, no extra flags, an unknown system (RFC 1952).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# The last, empty deflate block that ends the stream.
_FINAL_BLOCK = b"\x03\x00"


def _deflate_segment(data: bytes, level: int) -> bytes:
    """Raw deflate blocks of `data` alone, ending on a byte boundary and not final: segments made
    like this, one after another, decompress to their data one after another."""
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)


def _gzip_member(segments: list[bytes], data: bytes) -> bytes:
    """A gzip member of deflate segments whose data, together, is `data`."""
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return b"".join([_GZIP_HEADER, *segments, _FINAL_BLOCK, trailer])


def gzip_around_nonce(segments: list[bytes], nonce: bytes, body: bytes) -> bytes:
    """gzip of `body`: the kept segments of the stretches between its nonces, with the nonce as a
    stored (uncompressed) deflate block between each two: random bytes do not compress, and a
    stored block costs no compressor (whose state alone took longer to make than the page's crc)."""
    between = _stored_block(nonce)
    joined = [segments[0]]
    for segment in segments[1:]:
        joined += [between, segment]
    return _gzip_member(joined, body)


def _stored_block(data: bytes) -> bytes:
    """A non-final stored deflate block of `data` (under 64 KiB), starting and ending on a byte
    boundary as the segments do (RFC 1951, 3.2.4)."""
    return b"\x00" + struct.pack("<HH", len(data), len(data) ^ 0xFFFF) + data
