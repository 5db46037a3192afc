"""Browser tests: a real `pulse serve` (gunicorn) driven by Debian's headless Chromium."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).parent / "shots"
# Blocked inline styles print nothing to the console, so listen for the browser's own events too.
CSP_LISTENER = ("window.cspViolations = []; document.addEventListener('securitypolicyviolation',"
                " e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`pulse serve` in a subprocess on a free loopback port, with its output kept."""

    def __init__(self, tmp: Path, env: dict | None = None, args: tuple = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"server-{self.port}.log"
        environ = os.environ.copy()
        environ.update({"SECRET_KEY": "browser-test-" + "s" * 40, "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite3'}",
                        "PULSE_MIN_FILL_SECONDS": "0", "PULSE_RATELIMIT_ENABLED": "false"})
        environ.update(env or {})
        self.env = environ
        self.process = subprocess.Popen(
            [sys.executable, "-m", "survey_app", "serve", "--port", str(self.port), *args],
            env=environ, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
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
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def live_server(tmp_path):
    server = LiveServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM:
        if os.environ.get("CI"):
            raise RuntimeError("chromium is missing on CI")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.csp_violations = []
    page.on("console", lambda m: page.csp_violations.append(m.text) if "Refused to" in m.text else None)
    yield page
    context.close()


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True)
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.csp_violations = []
    page.on("console", lambda m: page.csp_violations.append(m.text) if "Refused to" in m.text else None)
    yield page
    context.close()


def csp_violations(page) -> list[str]:
    """Every CSP violation of the current document: console reports and violation events."""
    return list(page.csp_violations) + page.evaluate("window.cspViolations || []")


def shot(page, name: str) -> Path:
    """Save a full-page screenshot for people to look at."""
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
