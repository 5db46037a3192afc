"""Static files at content-addressed URLs: gzip-compressed, cached for a year, immutable.

`asset_url("pulse.css")` gives /assets/<digest>/pulse.css. The digest changes with the
content, so browsers may keep a file forever; plotly.js then costs one compressed download
per visitor instead of one per page. plotly.js is npm's `plotly.js-basic-dist-min` (bar, scatter
and pie: the traces Pulse draws), copied unchanged by tools/vendor_plotly.py from the registry
tarball it checks; tests/test_assets.py holds the committed file to PLOTLY_SHA256 and its version
to the plotly.js inside the installed `plotly` package, whose figure JSON it draws.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, request

from . import state

ONE_YEAR = 31_536_000
# Text types worth compressing; images such as PNG are compressed already.
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")

bp = Blueprint("assets", __name__)

# plotly.js, basic bundle (tools/vendor_plotly.py): 1.2 MB, 0.4 MB gzipped, where the full
# bundle in the plotly package is 4.8 MB and 1.5 MB.
PLOTLY = "vendor/plotly-basic.min.js"
PLOTLY_VERSION = "4.1.1"
PLOTLY_SHA256 = "99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba"
# The trace types the basic bundle draws; charts.py must stay within them.
PLOTLY_TRACES = frozenset({"bar", "scatter", "pie"})


@dataclass(frozen=True)
class Asset:
    digest: str
    mimetype: str
    raw: bytes
    gzipped: bytes | None


def _path(filename: str) -> Path | None:
    """The file behind an asset name, under the static folder."""
    root = Path(current_app.static_folder).resolve()
    try:
        path = (root / filename).resolve()
        # is_file() raises too on a name the file system refuses (too long: ENAMETOOLONG).
        return path if root in path.parents and path.is_file() else None
    except (OSError, ValueError):  # a NUL byte or a name the file system refuses
        return None


def read(filename: str) -> bytes:
    """The bytes of an asset, as served (for the static report, which copies plotly.js)."""
    return _load(filename).raw


def _load(filename: str) -> Asset:
    """The asset for a file, read and compressed once per app."""
    assets = state.of().assets
    cached = assets.get(filename)
    if cached is not None:
        return cached
    path = _path(filename)
    if path is None:
        abort(404)
    raw = path.read_bytes()
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    gzipped = gzip.compress(raw, 6, mtime=0) if mimetype.startswith(COMPRESSIBLE) else None
    asset = Asset(hashlib.sha256(raw).hexdigest()[:12], mimetype, raw, gzipped)
    assets[filename] = asset  # a race only computes the same asset twice
    return asset


def asset_url(filename: str) -> str:
    """The content-addressed URL of a static file."""
    return f"/assets/{_load(filename).digest}/{filename}"


def plotly_url() -> str:
    """The content-addressed URL of plotly.js (charts.js fetches it when a chart comes near)."""
    return asset_url(PLOTLY)


@bp.get("/assets/<digest>/<path:filename>")
def serve(digest: str, filename: str):
    asset = _load(filename)
    if digest != asset.digest:
        abort(404)  # an old URL: the page that asked for it is out of date
    gzip_ok = asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", "")
    response = Response(asset.gzipped if gzip_ok else asset.raw, mimetype=asset.mimetype)
    if gzip_ok:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    response.headers["ETag"] = f'"{asset.digest}"'
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(asset_url)
    app.add_template_global(plotly_url)
