"""A clinic with a results key reads the results on a phone and a desktop, in real Chromium."""

from __future__ import annotations

import io
import json
import urllib.request

import pypdf
import pytest

from ..helpers import FULL_ANSWERS, LiveServer, run_pulse, scroll_through, shot

pytestmark = pytest.mark.browser

DEMO_RESPONSES = 200
# Blocked inline <style> elements (style-src-elem) raise this event but no "Refused to" console line.
RECORD_VIOLATIONS = (
    "window.cspViolations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`pulse serve` over 200 synthetic clinics, plus one real-looking response whose key we hold."""
    tmp = tmp_path_factory.mktemp("results")
    # The database LiveServer(tmp) serves; filled before it starts, so every page shows the demo banner.
    url = f"sqlite:///{tmp / 'live.sqlite3'}"
    for command in (["migrate"], ["demo-data", str(DEMO_RESPONSES), "--seed", "7"]):
        assert run_pulse(url, *command, env={"SECRET_KEY": LiveServer.SECRET}).exit_code == 0
    server = LiveServer(tmp)

    def submit(answers: dict) -> str:
        request = urllib.request.Request(
            server.url + "/api/v1/responses",
            method="POST",
            data=json.dumps({"answers": answers}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return json.load(response)["results_key"]

    server.results_key = submit(FULL_ANSWERS)
    # The longest "what would raise your index": a clinic that earns no point at all.
    server.zero_key = submit(ZERO_POINTS)
    yield server
    server.stop()


ZERO_POINTS = {
    "practice_type": "psychiatry",
    "discharge_checks": ["none"],
    "first_followup": "no_followup",
    "mood_tracking": "never",
    "integration_support": ["none"],
    "digital_tools": ["none"],
    "after_hours": "no_pathway",
    "followup_completion": "not_tracked",
}


def enter_key(page, server, key=None):
    page.goto(server.url + "/results")
    assert page.locator("h1").inner_text() == "Results are in early access"
    page.fill("#results_key", key or server.results_key)
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


@pytest.mark.parametrize("paper", ["A4", "Letter"])
@pytest.mark.parametrize("clinic", ["every-point", "no-point"])
def test_print_view_fits_four_pages_and_cuts_no_chart(demo_server, page, paper, clinic):
    enter_key(page, demo_server, demo_server.results_key if clinic == "every-point" else demo_server.zero_key)
    charts_drawn(page)
    # Every scored change there is (16 entries), the alternatives of one "any" rule on one line each.
    raised = page.locator("ol.raise > li").count()
    assert raised == (0 if clinic == "every-point" else 8)
    # The button (a static script) opens the browser's print dialog.
    page.evaluate("window.print = () => { window.printed = true; }")
    page.click("button[data-print]")
    assert page.evaluate("window.printed") is True
    page.emulate_media(media="print")
    # No chart can be cut across a page: none is printed. Each has a table with the same numbers.
    assert page.evaluate("[...document.querySelectorAll('.chart')].every(c => c.getBoundingClientRect().height === 0)")
    pdf = pypdf.PdfReader(io.BytesIO(page.pdf(format=paper, print_background=True)))
    assert 1 <= len(pdf.pages) <= 4, f"{len(pdf.pages)} pages"
    text = " ".join(" ".join(p.extract_text().split()) for p in pdf.pages)
    # The scorecard, the ranked list and the tables, breakdowns by practice type included.
    assert "Your clinic" in text and "What would raise your index" in text and "Clinics like yours" in text
    assert ("earns every point" in text) is (clinic == "every-point")
    assert text.count("Share of clinics in each group") == page.locator("details.segments").count() >= 7
    assert text.count("Share of clinics choosing each answer") + text.count("Share of clinics doing each") == 8
    assert "Clinics by index" in text and "Index percentiles by answer" in text
    # Not the screen's furniture.
    assert "Print or save as PDF" not in text and "Forget my results key" not in text
    shot(page, f"results-print-{clinic}-{paper}")
