"""Fetch the plotly.js bundle Pulse serves: npm's `plotly.js-basic-dist-min`, pinned, checked, unchanged.

Pulse draws only bar and scatter traces (survey_app/pipeline/charts.py), which the "basic"
bundle holds (with pie) at a quarter of the full bundle's size. The tarball comes from the npm
registry through `npm pack`, is checked against the integrity pinned here, and its
plotly-basic.min.js and LICENSE are copied unchanged into survey_app/static/vendor/.
tests/test_assets.py checks the committed file against PLOTLY_SHA256 in survey_app/assets.py
and its version against the plotly.js inside the installed `plotly` package, whose figure
JSON it draws. To move to a new version (after upgrading plotly):

    python tools/vendor_plotly.py 4.1.1 sha512-…   # the version and its npm `dist.integrity`

then put the sha256 it prints into survey_app/assets.py. Needs npm; never run by the app.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "plotly.js-basic-dist-min"
VERSION = "4.1.1"
# `npm view plotly.js-basic-dist-min@4.1.1 dist.integrity`
INTEGRITY = "sha512-1oNF8PeQx2hv/y7tqEVWKD3JGwn/MGEMQ8mL9HUwsaqG9FGy/OU5FHUHvzqbqxN4mnwZGI9abTiE775C4kkjMQ=="
VENDOR = Path(__file__).resolve().parent.parent / "survey_app" / "static" / "vendor"
FILES = {"package/plotly-basic.min.js": "plotly-basic.min.js", "package/LICENSE": "plotly-basic.LICENSE"}


def main(version: str = VERSION, integrity: str = INTEGRITY) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", f"{PACKAGE}@{version}", "--pack-destination", tmp], check=True, capture_output=True
        )
        tarball = next(Path(tmp).glob("*.tgz"))
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if digest != integrity:
            sys.exit(f"{tarball.name}: integrity {digest} is not the pinned {integrity}")
        VENDOR.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as tar:
            for member, name in FILES.items():
                (VENDOR / name).write_bytes(tar.extractfile(member).read())
    bundle = (VENDOR / "plotly-basic.min.js").read_bytes()
    print(f"{PACKAGE}@{version}: {len(bundle)} bytes, sha256 {hashlib.sha256(bundle).hexdigest()}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
