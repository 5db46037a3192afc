"""A clinic with a results key reads the results on a phone and a desktop, in real Chromium."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from ..helpers import FULL_ANSWERS, LiveServer, scroll_through, shot

pytestmark = pytest.mark.browser

DEMO_RESPONSES = 200
# Blocked inline <style> elements (style-src-elem) raise this event but no "Refused to" console line.
RECORD_VIOLATIONS = ("window.cspViolations = [];"
                     "document.addEventListener('securitypolicyviolation',"
                     " e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`pulse serve` over 200 synthetic clinics, plus one real-looking response whose key we hold."""
    tmp = tmp_path_factory.mktemp("results")
    # The database LiveServer(tmp) serves; filled before it starts, so every page shows the demo banner.
    env = os.environ | {"SECRET_KEY": "browser-test-" + "s" * 40, "DATABASE_URL": f"sqlite:///{tmp / 'live.sqlite3'}"}
    for command in (["migrate"], ["demo-data", str(DEMO_RESPONSES), "--seed", "7"]):
        subprocess.run([sys.executable, "-m", "survey_app", *command], env=env, check=True, capture_output=True)
    server = LiveServer(tmp)
    request = urllib.request.Request(server.url + "/api/v1/responses", method="POST",
                                     data=json.dumps({"answers": FULL_ANSWERS}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        server.results_key = json.load(response)["results_key"]
    yield server
    server.stop()


def enter_key(page, server):
    page.goto(server.url + "/results")
    assert page.locator("h1").inner_text() == "Results are in early access"
    page.fill("#results_key", server.results_key)
    page.click(".key-form button[type=submit]")
    page.wait_for_selector("#your-clinic")


def charts_drawn(page) -> tuple[int, int]:
    """(chart containers on the page, those plotly has drawn an SVG into), once the reader has scrolled past all."""
    scroll_through(page)
    return page.evaluate("""() => {
        const charts = [...document.querySelectorAll('.chart')];
        return [charts.length, charts.filter(c => c.querySelector('.main-svg')).length];
    }""")


@pytest.mark.parametrize("device", ["page", "phone"])
def test_key_holder_sees_every_chart_without_csp_violations(demo_server, device, request):
    page = request.getfixturevalue(device)
    page.add_init_script(RECORD_VIOLATIONS)
    enter_key(page, demo_server)
    total, drawn = charts_drawn(page)
    assert total >= 9 and drawn == total
    # "Your clinic" appears on the charts as a labelled marker, not only as a colour.
    assert page.locator(".chart text", has_text="your answer").count() >= 1
    assert page.locator(".score-number").inner_text() == "100"
    assert page.locator(".demo-banner").is_visible()
    assert "not clinical guidance" in page.locator("#your-clinic").inner_text()
    if device == "phone":
        # Nothing wider than the phone: no sideways scrolling of the page itself.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, f"results-{'desktop' if device == 'page' else 'phone'}")
    assert page.csp_violations == []
    assert page.evaluate("window.cspViolations") == []


def test_results_read_without_javascript(demo_server, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(demo_server.url + "/results")
    page.fill("#results_key", demo_server.results_key)
    page.click(".key-form button[type=submit]")
    page.wait_for_selector("#your-clinic")
    table = page.locator("#q-first_followup table").first
    assert "Within 24 hours" in table.inner_text() and "your answer" in table.inner_text()
    assert page.locator(".chart").first.is_hidden()
    context.close()


def test_wrong_key_is_refused_with_a_message(demo_server, phone):
    phone.goto(demo_server.url + "/results")
    phone.fill("#results_key", "AAAA-BBBB-CCCC")
    with phone.expect_navigation() as navigation:
        phone.click(".key-form button[type=submit]")
    assert navigation.value.status == 401
    assert phone.locator("#results_key-error").inner_text() == "That results key is not valid."


def test_charts_wait_until_they_come_near(demo_server, phone):
    """Tables first: plotly.js is fetched only when a chart nears the viewport, then each chart is drawn."""
    scripts = []
    phone.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    enter_key(phone, demo_server)
    phone.wait_for_load_state("networkidle")
    below = phone.evaluate("""() => [...document.querySelectorAll('.chart')]
        .filter(c => c.getBoundingClientRect().top > 2 * innerHeight).length""")
    assert below >= 5  # most charts are far below the first screen of a phone
    undrawn = phone.evaluate("document.querySelectorAll('.chart:not([data-drawn])').length")
    assert undrawn >= below - 1
    # The box each chart will take is there before it is drawn: nothing below it jumps.
    box = phone.locator("#" + phone.locator(".chart:not([data-drawn])").last.get_attribute("id"))
    height = box.bounding_box()["height"]
    assert height >= 200
    box.scroll_into_view_if_needed()
    box.locator(".main-svg").first.wait_for(state="attached")
    assert abs(box.bounding_box()["height"] - height) < 2
    assert sum("plotly" in url for url in scripts) == 1


def test_chart_labels_keep_clear_of_each_other_on_a_phone(demo_server, phone):
    """At 390 px: "your clinic" sits above the histogram, and axis titles below their tick labels."""
    enter_key(phone, demo_server)
    scroll_through(phone)
    boxes = phone.evaluate("""() => {
        const box = e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom}; };
        const plot = id => box(document.querySelector(`#${id} .nsewdrag`));
        const you = [...document.querySelectorAll('#chart-index .annotation')]
            .find(a => a.textContent.includes('Your clinic:'));
        const labels = [...document.querySelectorAll('#chart-index .annotation')]
            .filter(a => a !== you).map(box);
        const axis = id => ({ticks: Math.max(...[...document.querySelectorAll(`#${id} .xtick text`)]
            .map(t => box(t).bottom)), title: box(document.querySelector(`#${id} .g-xtitle text`)).top});
        return {plot: plot('chart-index'), you: box(you), labels,
                outcome: axis('chart-outcome'), index: axis('chart-index')};
    }""")
    assert boxes["you"]["bottom"] <= boxes["plot"]["top"], boxes  # not on the bars
    for label in boxes["labels"]:  # nor on the percentile labels
        assert label["bottom"] <= boxes["you"]["top"] + 1 or label["top"] >= boxes["you"]["bottom"] - 1, boxes
    for chart in ("outcome", "index"):
        assert boxes[chart]["title"] >= boxes[chart]["ticks"], (chart, boxes)


def test_a_wide_table_scrolls_by_keyboard_and_says_so(demo_server, phone):
    """At 390 px the percentiles-by-answer table is wider than the screen: its hint shows, arrows scroll it."""
    enter_key(phone, demo_server)
    wide = phone.locator("#outcome .table-wrap")
    narrow = phone.locator("#q-first_followup .chart-and-table .table-wrap")
    assert wide.evaluate("e => e.scrollWidth > e.clientWidth")
    assert narrow.evaluate("e => e.scrollWidth <= e.clientWidth")
    assert wide.locator(".scroll-hint").is_visible() and not narrow.locator(".scroll-hint").is_visible()
    assert wide.get_attribute("role") == "region" and wide.get_attribute("aria-label")
    wide.focus()
    for _ in range(12):
        phone.keyboard.press("ArrowRight")
    assert wide.evaluate("e => e.scrollLeft") > 0
    wide.evaluate("e => { e.scrollLeft = e.scrollWidth; }")
    wide.locator(".scroll-hint").wait_for(state="hidden")  # at its end: nothing more to the right
    # The practice-type tables stack instead of scrolling.
    phone.locator("#q-first_followup details.segments summary").click()
    by_group = phone.locator("#q-first_followup details.segments .table-wrap")
    assert by_group.evaluate("e => e.scrollWidth <= e.clientWidth")
