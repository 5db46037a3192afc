"""Pages and JSON compressed on the way out (Flask-Compress), except where BREACH could bite.

BREACH reads a secret out of a compressed response by making the victim's browser fetch it
many times with the attacker's guesses reflected beside the secret, and watching the size.
Pulse's secrets in a page are the CSRF token, the results key (/thanks) and a clinic's own
answers (/results with a key). So only responses to GET and HEAD are compressed: no GET page
echoes anything from the request (no query string, no path, no header reaches the body;
tests/test_compression.py checks every page with a marker), while a POST answered with its
form again (a topic proposal refused, a mistyped key) does echo what was typed, and is sent
as it is. Assets have their own precompressed gzip (assets.py) and are left alone here.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_compress import Compress

# What is worth compressing: our pages, the API's JSON and the CSV exports.
MIMETYPES = ["text/html", "application/json", "text/csv", "text/plain"]
# gzip at its default level 6 costs about 1 ms for the largest page (the results with a key).
ALGORITHMS = ["br", "gzip"]
# The request methods whose responses echo nothing from the request (see the module docstring).
SAFE_METHODS = ("GET", "HEAD")

compress = Compress()


def init_app(app: Flask) -> None:
    app.config.update(
        COMPRESS_REGISTER=False, COMPRESS_MIMETYPES=MIMETYPES, COMPRESS_ALGORITHM=ALGORITHMS, COMPRESS_STREAMS=False
    )
    compress.init_app(app)
    app.after_request(_compress)


def _compress(response: Response) -> Response:
    if request.method not in SAFE_METHODS or request.blueprint == "assets":
        return response
    return compress.after_request(response)
