"""Helpers the tests share: a configured app, filling the survey, live servers, row counts.

Fixtures live in conftest.py; plain functions and classes live here, so that no test module
imports another (or a conftest).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from importlib import resources
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from survey_app import admin_actions, create_app, program, snapshots, state, storage
from survey_app.cli import main
from survey_app.models import Response

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-" + "x" * 40
# Redis database 7 for a run in one process; under pytest-xdist each worker its own (gw0: 7, gw1: 8, ...),
# since the redis_db fixture empties it. Redis has databases 0 to 15.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = f"redis://127.0.0.1:6379/{7 + _WORKER % 9}"
# Clients of a live server connect from this loopback address, so it can be told apart from the server's own.
CLIENT_ADDRESS = "127.0.0.55"
SHOTS = Path(__file__).parent / "browser" / "shots"
# A clinic that does none of the scored practices: index 0, every change on its "raise" list.
NO_PRACTICE = {
    "practice_type": "psychiatry",
    "discharge_checks": ["none"],
    "first_followup": "no_followup",
    "mood_tracking": "never",
    "integration_support": ["none"],
    "digital_tools": ["none"],
    "after_hours": "no_pathway",
    "followup_completion": "not_tracked",
}
FULL_ANSWERS = {
    "practice_type": "psychiatry",
    "discharge_checks": ["vitals", "emotional_checkin"],
    "first_followup": "within_24h",
    "mood_tracking": "every_touchpoint",
    "integration_support": ["group_integration", "peer_community"],
    "digital_tools": ["mood_app"],
    "after_hours": "on_call",
    "followup_completion": "pct_90_plus",
}

# CI (CI=true) runs the fuzz tests at full strength; elsewhere they try fewer examples, so the whole
# suite stays a matter of minutes. The environment variable a test names sets the number either way.
ON_CI = bool(os.environ.get("CI"))


def fuzz_examples(variable: str, ci: int, local: int) -> int:
    """How many examples a fuzz test tries: `variable` if set, else `ci` on CI and `local` elsewhere."""
    return int(os.environ.get(variable) or (ci if ON_CI else local))


# Every PostgreSQL app's snapshot listener (not the apps: those may be collected), stopped
# by the pg_database fixture before it drops the database.
WATCHES: list = []
# Every schedule timer made in this process (tests/conftest.py registers each as it is made, and
# stops those a test made when it ends): a timer left running would act on the next test's
# schedules in the same database, however the app that owns it was made.
SCHEDULERS: list = []


def make_app(db_url, **config):
    """A Pulse app for tests on this database: no fill time, no rate limits, rebuilds at once."""
    settings = {
        "TESTING": True,
        "SECRET_KEY": SECRET,
        "DATABASE_URL": db_url,
        "PULSE_MIN_FILL_SECONDS": 0,
        "PULSE_SNAPSHOT_MIN_INTERVAL": 0,
        "RATELIMIT_ENABLED": False,
        "PULSE_QUESTIONS": str(ROOT / "questions.yaml"),
    }
    settings.update(config)
    app = create_app(settings)
    if state.of(app).watch is not None:
        WATCHES.append(state.of(app).watch)
    return app


def row_count(app, model=Response) -> int:
    """Rows of a table (responses by default), read through the app's own engine."""
    with app.app_context():
        return storage.reader().scalar(select(func.count()).select_from(model))


# ------------------------------------------------------------------ answering


def form_tokens(html: str) -> dict:
    """The hidden inputs of a page's form (CSRF token, served stamp), as a browser sends them."""
    return dict(re.findall(r'<input[^>]*?name="(csrf_token|served)"[^>]*?value="([^"]*)"', html)) | {
        name: value for value, name in re.findall(r'<input[^>]*?value="([^"]*)"[^>]*?name="(csrf_token|served)"', html)
    }


def answers_to_form(answers: dict) -> list[tuple[str, str]]:
    """Answers as form fields (a multi-choice question repeats its name)."""
    pairs = []
    for key, value in answers.items():
        for item in [value] if isinstance(value, str) else value:
            pairs.append((key, item))
    return pairs


def submit_api(client, answers=None, **extra):
    """POST one response to the API (FULL_ANSWERS unless told otherwise)."""
    body = {"answers": FULL_ANSWERS if answers is None else answers} | extra
    return client.post("/api/v1/responses", json=body)


def post_form(client, answers, tokens=None):
    """Submit the survey form as a browser does: the answers plus the page's hidden inputs."""
    if tokens is None:
        tokens = form_tokens(client.get("/survey").get_data(as_text=True))
    return client.post("/survey", data=MultiDict(answers_to_form(answers) + list(tokens.items())))


def clinic(i: int) -> dict:
    """Response i of 16: one clinic of another practice type, small and near-unanimous cells."""
    return FULL_ANSWERS | {
        "practice_type": "other" if i == 15 else "psychiatry",
        "discharge_checks": ["vitals"] + (["emotional_checkin"] if i < 5 else []) + (["ride_home"] if i < 2 else []),
        "first_followup": "within_24h" if i < 9 else "within_48h",
        "mood_tracking": "every_touchpoint",
        "integration_support": ["group_integration"],
        "digital_tools": ["mood_app"],
        "after_hours": "on_call" if i < 11 else "crisis_line",
        "followup_completion": "pct_90_plus",
    }


def fill(app, client, n: int = 16, release: bool = False) -> list[str]:
    """n clinics through the API, a snapshot that counts them all, and their results keys."""
    results_keys = []
    for i in range(n):
        response = submit_api(client, clinic(i))
        assert response.status_code == 201
        results_keys.append(response.json["results_key"])
    with app.app_context():
        # Straight to the pipeline: a test fixture may build a snapshot the growth rule would not yet.
        snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
        if release:
            admin_actions.release(program.current_survey())
    return results_keys


def plotly_package_js() -> bytes:
    """plotly.js as the installed plotly package ships it (the full bundle its figure JSON is written for)."""
    return resources.files("plotly").joinpath("package_data/plotly.min.js").read_bytes()


def plotly_bundle_js() -> bytes:
    """The plotly.js Pulse serves: the basic bundle committed by tools/vendor_plotly.py."""
    return (ROOT / "survey_app" / "static" / "vendor" / "plotly-basic.min.js").read_bytes()


def wal_commits(copy: Path, scratch: Path) -> list[Path]:
    """A copied SQLite database as it stood after each commit its copied WAL holds (first: none).

    What an attacker with a copy of the files can do: replay the WAL one commit at a time.
    """
    wal_file = copy.with_name(copy.name + "-wal")
    wal = wal_file.read_bytes() if wal_file.exists() else b""
    ends = [0]
    if len(wal) > 32:
        frame = 24 + struct.unpack(">I", wal[8:12])[0]
        for start in range(32, len(wal) - frame + 1, frame):
            # Frames carry the header's salt; after SQLite restarts the WAL from its beginning, the
            # older frames beyond the new ones carry an older salt and are no longer part of it.
            if wal[start + 8 : start + 16] != wal[16:24]:
                break
            # A frame whose "database size after commit" is set ends a commit.
            if struct.unpack(">I", wal[start + 4 : start + 8])[0]:
                ends.append(start + frame)
    states = []
    for n, end in enumerate(ends):
        at = scratch / f"commit-{n}"
        at.mkdir(parents=True)
        shutil.copy(copy, at / copy.name)
        if end:
            (at / (copy.name + "-wal")).write_bytes(wal[:end])
        states.append(at / copy.name)
    return states


# ------------------------------------------------------------------ live servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`pulse serve` in a subprocess on a free loopback port, with its output kept."""

    SECRET = "browser-test-" + "s" * 40

    def __init__(self, tmp: Path, env: dict | None = None, args: tuple = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"server-{self.port}.log"
        environ = os.environ.copy()
        environ.update(
            {
                "SECRET_KEY": self.SECRET,
                "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite3'}",
                "PULSE_MIN_FILL_SECONDS": "0",
                "PULSE_RATELIMIT_ENABLED": "false",
            }
        )
        environ.update(env or {})
        self.env = environ
        self.process = subprocess.Popen(
            [sys.executable, "-m", "survey_app", "serve", "--port", str(self.port), *args],
            env=environ,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/", timeout=1)
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"pulse serve did not start:\n{self.log.read_text()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server and its workers at once: SIGKILL to its process group. A graceful stop
        took about a second per server (the worker, then gunicorn's master, wait out their loops);
        tests/test_faults.py tests the graceful stop itself. Killing only gunicorn's master would
        leave its workers polling the database the next test uses."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # start_new_session: its group is its own
        except ProcessLookupError:
            pass
        self.process.wait(15)


def request(url, method="GET", body=None, headers=None):
    """One HTTP request from CLIENT_ADDRESS: (status, body)."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(
        parsed.hostname, parsed.port, timeout=30, source_address=(CLIENT_ADDRESS, 0)
    )
    data = json.dumps(body).encode() if body is not None else None
    headers = dict(headers or {})
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, parsed.path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until(condition, timeout: float = 15.0, every: float = 0.05):
    """Poll until condition() is truthy; its value. Fails after `timeout` seconds, never sleeps blindly."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {getattr(condition, '__name__', condition)}")
        time.sleep(every)


# ------------------------------------------------------------------ browsers


def fill_survey(page, answers):
    """Tick a clinic's answers on the survey form in a browser page."""
    for key, value in answers.items():
        for option in [value] if isinstance(value, str) else value:
            page.check(f"#q-{key} input[value='{option}']")


def csp_violations(page) -> list[str]:
    """Every CSP violation of the current document: console reports and violation events."""
    return list(page.csp_violations) + page.evaluate("window.cspViolations || []")


def scroll_through(page) -> None:
    """Scroll every chart into view, as a reader does, and wait until plotly has drawn each one."""
    # In the page, not a driver round trip per chart: each chart brought into view for two frames,
    # then frames until plotly has drawn every one (at most 15 s).
    drawn = page.evaluate("""async () => {
        const frame = () => new Promise(resolve => requestAnimationFrame(resolve));
        const charts = [...document.querySelectorAll('.chart[id]')];
        for (const chart of charts) {
            chart.scrollIntoView({block: 'center'});
            await frame();
            await frame();
        }
        const until = performance.now() + 15000;
        while (!charts.every(c => c.querySelector('.main-svg')) && performance.now() < until) await frame();
        return charts.filter(c => !c.querySelector('.main-svg')).map(c => c.id);
    }""")
    assert drawn == [], f"charts not drawn: {drawn}"
    page.evaluate("window.scrollTo(0, 0)")


def shot(page, name: str) -> Path:
    """Save a full-page screenshot for people to look at."""
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def docs_shot(page, name: str, height: int | None = None, start: str | None = None) -> Path:
    """The full page in shots/, and the picture for docs/: `height` CSS pixels of the page (from
    the top, or from the element `start`; the whole page without a height). It goes into docs/
    only when PULSE_DOCS_SHOTS is set (else beside the first as `name`-docs.png), so a test run
    never rewrites the tracked pictures behind anyone's back."""
    shot(page, name)
    path = ROOT / "docs" / f"{name}.png" if os.environ.get("PULSE_DOCS_SHOTS") else SHOTS / f"{name}-docs.png"
    if height is None:
        page.screenshot(path=str(path), full_page=True)
        return path
    top = (
        page.evaluate(f"document.querySelector({start!r}).getBoundingClientRect().top + window.scrollY - 16")
        if start
        else 0
    )
    width = page.viewport_size["width"]
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": top, "width": width, "height": height})
    return path


# ------------------------------------------------------------------ the command line and organisers


ADMIN_PASSWORD = "correct horse battery"


def run_pulse(db_url, *args, input=None, env=None):
    """`pulse ARGS` in this process, on this database, with the tests' SECRET_KEY."""
    environ = {"SECRET_KEY": SECRET, "DATABASE_URL": db_url, "PULSE_QUESTIONS": str(ROOT / "questions.yaml")}
    environ.update(env or {})
    return CliRunner().invoke(main, list(args), env=environ, input=input, catch_exceptions=False)


def pulse(server: LiveServer, *args: str, stdin: str | None = None) -> str:
    """`pulse ARGS` on a live server's database and settings, in this process (a subprocess would
    pay a second of imports each time); its standard output. A non-zero exit fails the test."""
    env = {k: v for k, v in server.env.items() if k in ("SECRET_KEY", "DATABASE_URL") or k.startswith("PULSE_")}
    result = CliRunner().invoke(main, list(args), env=env, input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def admin_login(client, username="ada", password=ADMIN_PASSWORD, code=""):
    """Log in at /admin/login as a browser does (with the form's CSRF token)."""
    tokens = form_tokens(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"username": username, "password": password, "code": code, **tokens})
