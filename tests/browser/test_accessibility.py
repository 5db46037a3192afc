"""WCAG 2.2 AA in a real browser: axe-core on every page, the survey by keyboard alone."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ..helpers import FULL_ANSWERS, csp_violations, shot

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(os.environ.get("PULSE_AXE_JS", ROOT / ".ci" / "axe" / "node_modules" / "axe-core" / "axe.min.js"))
PAGES = ["/", "/survey", "/thanks", "/results", "/results/key", "/topics", "/privacy", "/admin"]


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
    result = page.evaluate("""() => axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})""")
    return [f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}" for v in result["violations"]
            if v["impact"] in ("serious", "critical")]


def submit_survey(page, url):
    page.goto(url + "/survey")
    for key, value in FULL_ANSWERS.items():
        for option in [value] if isinstance(value, str) else value:
            page.check(f"#q-{key} input[value='{option}']")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/thanks$"))


def test_every_page_has_no_serious_axe_violation(live_server, page, axe_source):
    submit_survey(page, live_server.url)  # so /thanks and /results show a participant's view
    found, blocked = {}, {}
    for path in PAGES:
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        if csp := csp_violations(page):
            blocked[path] = csp
        if violations := serious_violations(page, axe_source):
            found[path] = violations
    print(f"axe-core: {len(PAGES)} pages checked, {sum(map(len, found.values()))} serious or critical violations, "
          f"{sum(map(len, blocked.values()))} CSP violations")
    assert found == {}
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
