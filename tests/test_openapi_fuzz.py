"""Schemathesis drives the whole API from /api/v1/openapi.json against a real `pulse serve`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import FULL_ANSWERS, LiveServer, request

pytestmark = pytest.mark.slow

EXAMPLES = os.environ.get("PULSE_SCHEMATHESIS_EXAMPLES", "40")
# A fixed seed, so CI runs the same cases every time; set another to explore further.
SEED = os.environ.get("PULSE_SCHEMATHESIS_SEED", "20261127")
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_api_matches_its_openapi_document(tmp_path):
    tool = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    server = LiveServer(tmp_path)
    try:
        status, body = request(server.url + "/api/v1/responses", "POST", {"answers": FULL_ANSWERS})
        assert status == 201
        key = json.loads(body)["results_key"]
        result = subprocess.run(
            [tool, "--config-file", str(CONFIG), "--no-color", "run", server.url + "/api/v1/openapi.json",
             "--checks", "all", "--max-examples", EXAMPLES, "--seed", SEED, "-H", f"X-Results-Key: {key}"],
            capture_output=True, text=True, timeout=600)
    finally:
        server.stop()
    summary = "\n".join(result.stdout.splitlines()[-12:])
    print(summary)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "500" not in server.output()
