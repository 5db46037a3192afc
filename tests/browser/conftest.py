"""Browser tests: a real `pulse serve` (gunicorn) driven by Debian's headless Chromium."""

from __future__ import annotations

import os
import shutil

import pytest

from ..helpers import LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# Blocked inline styles print nothing to the console, so listen for the browser's own events too.
CSP_LISTENER = (
    "window.cspViolations = []; document.addEventListener('securitypolicyviolation',"
    " e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


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
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.csp_violations = []
    page.on("console", lambda m: page.csp_violations.append(m.text) if "Refused to" in m.text else None)
    yield page
    context.close()


# The two widths every page is checked at: a 390-px phone and a 1280-px desktop.
VIEWPORTS = {
    390: {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True},
    1280: {"viewport": {"width": 1280, "height": 900}},
}


@pytest.fixture
def new_page(browser):
    """A factory: new_page(width) gives a fresh browser context's page at 390 or 1280 px, with CSP listeners."""
    contexts = []

    def make(width: int):
        context = browser.new_context(**VIEWPORTS[width])
        context.add_init_script(CSP_LISTENER)
        contexts.append(context)
        page = context.new_page()
        page.csp_violations = []
        page.on("console", lambda m: page.csp_violations.append(m.text) if "Refused to" in m.text else None)
        return page

    yield make
    for context in contexts:
        context.close()
