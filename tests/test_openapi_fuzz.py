"""Schemathesis drives the whole API from /api/v1/openapi.json against a real `pulse serve`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from .helpers import FULL_ANSWERS, ROOT, LiveServer, fuzz_examples, request, run_pulse

pytestmark = pytest.mark.slow

EXAMPLES = str(fuzz_examples("PULSE_SCHEMATHESIS_EXAMPLES", ci=40, local=20))
# A fixed seed, so CI runs the same cases every time; set another to explore further.
SEED = os.environ.get("PULSE_SCHEMATHESIS_SEED", "20261127")
CONFIG = Path(__file__).with_name("schemathesis.toml")
COMFORT = ROOT / "surveys" / "patient-comfort.yaml"
COMFORT_ANSWERS = {
    "practice_type": "psychiatry",
    "session_preferences": ["lighting", "music"],
    "settle_before": "min_15_plus",
    "recovery_space": "private_room",
    "settle_after": "when_ready",
    "discomfort_signals": ["withdrawn"],
    "series_completion": "pct_75_89",
}
# Each survey's own paths, as the fuzzer must reach them: a real survey (the document's examples
# name the current one) and unknown ones; each opened survey's own responses path, where the
# current survey takes what its schema describes and the closed one says it is closed.
SURVEY_PATHS = {
    ("GET", re.compile(r"/api/v1/surveys/[^/]+/[^/]+")): {"200", "404"},
    ("POST", re.compile(r"/api/v1/surveys/[^/]+/[^/]+/responses")): {"201", "404"},
    ("GET", re.compile(r"/api/v1/surveys/[^/]+/[^/]+/benchmarks")): {"200", "404"},
    ("GET", re.compile(r"/api/v1/surveys")): {"200"},
    ("POST", re.compile(r"/api/v1/surveys/patient-comfort/1/responses")): {"201", "422"},
    ("POST", re.compile(r"/api/v1/surveys/pulse-aftercare/1/responses")): {"409"},
}


def statuses_seen(har: Path) -> dict:
    """The response statuses of each survey path, from the fuzzer's HAR report."""
    seen: dict = {operation: set() for operation in SURVEY_PATHS}
    for entry in json.loads(har.read_text())["log"]["entries"]:
        path = urllib.parse.urlsplit(entry["request"]["url"]).path
        for method, pattern in SURVEY_PATHS:
            if entry["request"]["method"] == method and pattern.fullmatch(path):
                seen[(method, pattern)].add(str(entry["response"]["status"]))
    return seen


def test_api_matches_its_openapi_document(tmp_path):
    tool = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    server = LiveServer(tmp_path)
    har = tmp_path / "schemathesis.har"
    try:
        status, body = request(server.url + "/api/v1/responses", "POST", {"answers": FULL_ANSWERS})
        assert status == 201
        # A second survey, opened: the first one is closed, and each keeps its own responses path.
        database = server.env["DATABASE_URL"]
        assert run_pulse(database, "survey", "add", str(COMFORT)).exit_code == 0
        assert run_pulse(database, "survey", "open", "patient-comfort@1").exit_code == 0
        status, body = request(server.url + "/api/v1/responses", "POST", {"answers": COMFORT_ANSWERS})
        assert status == 201
        key = json.loads(body)["results_key"]
        result = subprocess.run(
            [
                tool,
                "--config-file",
                str(CONFIG),
                "--no-color",
                "run",
                server.url + "/api/v1/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                EXAMPLES,
                "--seed",
                SEED,
                "-H",
                f"X-Results-Key: {key}",
                "--report",
                "har",
                "--report-har-path",
                str(har),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    summary = "\n".join(result.stdout.splitlines()[-12:])
    print(summary)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "500" not in server.output()
    seen = statuses_seen(har)
    for (method, pattern), wanted in SURVEY_PATHS.items():
        got = seen[(method, pattern)]
        assert wanted <= got, f"{method} {pattern.pattern}: the fuzzer saw only {sorted(got)}"
