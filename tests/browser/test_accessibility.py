"""WCAG 2.2 AA in a real browser: axe-core on every page, the survey by keyboard alone."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from ..helpers import LiveServer, clinic, csp_violations, pulse, scroll_through, shot, wait_until
from ..helpers import request as http
from .conftest import VIEWPORTS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(os.environ.get("PULSE_AXE_JS", ROOT / ".ci" / "axe" / "node_modules" / "axe-core" / "axe.min.js"))
PAGES = ["/", "/survey", "/thanks", "/results", "/results/key", "/guide", "/topics", "/privacy", "/admin/login"]
# With a key in the session (/results/key then sends the reader on to /results).
KEY_PAGES = ["/thanks", "/results", "/guide", "/topics"]
ADMIN_PAGES = ["/admin", "/admin/topics", "/admin/editor", "/admin/participation", "/admin/share"]
PASSWORD = "correct horse battery staple"
# A proposal as long as a title may be: the merge list in /admin/topics must still fit a phone.
LONG_TITLE = "Lighting, music and a quiet recovery space after a session: what helps patients settle " + "x" * 30


@pytest.fixture(scope="module")
def axe_source():
    if not AXE.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"axe-core missing at {AXE}: .ci/run installs it")
        pytest.skip(f"axe-core not installed at {AXE} (npm install --prefix .ci/axe axe-core@4)")
    return AXE.read_text()


def serious_violations(page, axe_source) -> list[str]:
    # Injected through the driver, not a <script> tag, so the page's CSP stays enforced.
    page.evaluate(axe_source)
    # resultTypes: axe details the violations only (it still runs every rule): about a third faster on /results.
    result = page.evaluate("""() => axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}, resultTypes: ['violations']})""")
    return [
        f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def start_community(tmp) -> LiveServer:
    """`pulse serve` with 16 clinics (published, in early access), two proposed topics and an organiser."""
    server = LiveServer(tmp)
    pulse(server, "create-admin", "ada", stdin=f"{PASSWORD}\n")
    keys = []
    for i in range(16):
        status, body = http(server.url + "/api/v1/responses", "POST", {"answers": clinic(i)})
        assert status == 201, body
        keys.append(json.loads(body)["results_key"])
    server.results_key = keys[0]
    # The first snapshot is built by the catch-up check about a second after the first response.
    wait_until(
        lambda: (
            '"published":true'
            in http(server.url + "/api/v1/benchmarks", headers={"X-Results-Key": keys[0]})[1].decode()
        )
    )
    for title in (LONG_TITLE, "Music during and after sessions"):
        status, body = http(
            server.url + "/api/v1/topics",
            "POST",
            {"title": title, "description": "Why it matters"},
            headers={"X-Results-Key": keys[1]},
        )
        assert status == 201, body
    return server


# One server per state a reader meets (module-scoped: each xdist worker that runs one of the
# state's tests starts it once). The released one is released by an organiser in the browser.
@pytest.fixture(scope="module")
def early_access(tmp_path_factory):
    server = start_community(tmp_path_factory.mktemp("early"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def released(tmp_path_factory, browser):
    server = start_community(tmp_path_factory.mktemp("released"))
    context = browser.new_context(**VIEWPORTS[1280])
    organiser = context.new_page()
    log_in(organiser, server.url)
    with organiser.expect_navigation():  # the form's POST and its redirect, not the page already loaded
        organiser.click("text=Release results to everyone")
    assert '"released":true' in http(server.url + "/api/v1/benchmarks")[1].decode()
    context.close()
    yield server
    server.stop()


# Boxes whose words must stay inside them (the percentile cards say "Median" and "not shown").
SPILLING = """() => [...document.querySelectorAll('dl.percentiles div, dl.percentiles dt, dl.percentiles dd')]
    .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.trim())"""


def log_in(page, url):
    page.goto(url + "/admin/login")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin$"))


def enter_key(page, url, key):
    page.goto(url + "/results/key")
    page.fill("#results_key", key)
    page.click(".key-form button[type=submit]")
    page.wait_for_selector("#your-clinic")


@pytest.mark.parametrize("who", ["no key", "key", "organiser"])
@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("release", ["early access", "released"])
def test_every_page_has_no_serious_axe_violation_and_fits_the_screen(
    release, width, who, request, new_page, axe_source
):
    """axe-core finds nothing serious, no page is wider than the screen and the CSP blocks
    nothing, in every state a reader meets: each width, with and without a key or as an
    organiser, before and after the release (one test each, so that workers share them out)."""
    server = request.getfixturevalue("early_access" if release == "early access" else "released")
    paths = {"no key": PAGES, "key": KEY_PAGES, "organiser": ADMIN_PAGES}[who]
    found, wide, blocked = {}, {}, {}
    page = new_page(width)
    if who == "key":
        enter_key(page, server.url, server.results_key)
    elif who == "organiser":
        log_in(page, server.url)

    for path in paths:
        page.goto(server.url + path)  # waits for the load event: every script has run
        scroll_through(page)  # the charts are drawn as they come near: draw them all
        if (scroll_width := page.evaluate("document.documentElement.scrollWidth")) > width:
            wide[path] = scroll_width
        if spilt := page.evaluate(SPILLING):
            wide[path + ": text past its box"] = spilt
        if violations := serious_violations(page, axe_source):
            found[path] = violations
        if csp := csp_violations(page):
            blocked[path] = csp
        if (path, width, who, release) == ("/results", 390, "key", "released"):
            shot(page, "results-key-released-390")  # the kept page, with this response's nonce and token
    print(
        f"axe-core at {width} px, {who}, {release}: {len(paths)} pages, {sum(map(len, found.values()))} "
        f"serious or critical violations, {len(wide)} wider than the screen, "
        f"{sum(map(len, blocked.values()))} CSP violations"
    )
    assert found == {}
    assert wide == {}
    assert blocked == {}


def test_survey_with_error_has_no_serious_axe_violation(live_server, page, axe_source):
    page.goto(live_server.url + "/survey")
    page.click("button[type=submit]")
    assert page.locator(".error-summary[role=alert]").is_visible()
    assert serious_violations(page, axe_source) == []


def test_survey_by_keyboard_alone(live_server, page):
    page.goto(live_server.url + "/survey")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    # Each radio group is one tab stop (arrows choose); each checkbox is its own stop (space ticks).
    page.focus("#q-practice_type input")
    chosen = 0
    for _ in range(120):
        element = page.evaluate("""() => { const e = document.activeElement;
            return {type: e.type || e.tagName, name: e.name || '', value: e.value || '', checked: !!e.checked}; }""")
        if element["type"] == "radio" and not element["checked"]:
            page.keyboard.press("Space")
            chosen += 1
        elif element["type"] == "checkbox" and element["value"] in ("vitals", "peer_community", "mood_app"):
            page.keyboard.press("Space")
            chosen += 1
        elif element["type"] == "submit":
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", "focus is not visible on the submit button"
            shot(page, "survey-keyboard-focus")
            page.keyboard.press("Enter")
            break
        page.keyboard.press("Tab")
    page.wait_for_url(re.compile(r".*/thanks$"))
    assert chosen == 8
