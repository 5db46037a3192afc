"""Static files at content-addressed URLs: gzip-compressed, cached for a year, immutable.

`asset_url("vendor/plotly.min.js")` gives /assets/<digest>/vendor/plotly.min.js. The digest
changes with the content, so browsers may keep a file forever; plotly.js (4.8 MB) then costs
one compressed download per visitor instead of one per page.
"""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, request

ONE_YEAR = 31_536_000
# Text types worth compressing; images such as PNG are compressed already.
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")

bp = Blueprint("assets", __name__)


@dataclass(frozen=True)
class Asset:
    digest: str
    mimetype: str
    raw: bytes
    gzipped: bytes | None


_assets: dict[str, Asset] = {}
_lock = threading.Lock()


def _load(filename: str) -> Asset:
    """The asset for a file under the static folder, read and compressed once per process."""
    cached = _assets.get(filename)
    if cached is not None:
        return cached
    root = Path(current_app.static_folder).resolve()
    path = (root / filename).resolve()
    if root not in path.parents or not path.is_file():
        abort(404)
    raw = path.read_bytes()
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    gzipped = gzip.compress(raw, 6, mtime=0) if mimetype.startswith(COMPRESSIBLE) else None
    asset = Asset(hashlib.sha256(raw).hexdigest()[:12], mimetype, raw, gzipped)
    with _lock:
        _assets[filename] = asset
    return asset


def asset_url(filename: str) -> str:
    """The content-addressed URL of a static file."""
    return f"/assets/{_load(filename).digest}/{filename}"


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
