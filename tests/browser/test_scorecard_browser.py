"""Issue 21 in a real browser: the scorecard comes first on a phone, a returning clinic is
greeted, and the guide reads on a phone and prints in at most 3 pages."""

from __future__ import annotations

import io
import json
import re
import urllib.request

import pypdf
import pytest

from ..helpers import LiveServer, fill_survey, run_pulse, shot
from .conftest import VIEWPORTS

pytestmark = pytest.mark.browser

# A clinic that does some of the practices: a verdict, and changes to suggest.
SOME_POINTS = {
    "practice_type": "psychiatry",
    "discharge_checks": ["vitals"],
    "first_followup": "within_week",
    "mood_tracking": "occasionally",
    "integration_support": ["external_referral"],
    "digital_tools": ["none"],
    "after_hours": "crisis_line",
    "followup_completion": "pct_50_74",
}


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`pulse serve` over 200 synthetic clinics (a published snapshot), and one clinic's key."""
    tmp = tmp_path_factory.mktemp("scorecard")
    url = f"sqlite:///{tmp / 'live.sqlite3'}"
    for command in (["migrate"], ["demo-data", "200", "--seed", "7"]):
        assert run_pulse(url, *command, env={"SECRET_KEY": LiveServer.SECRET}).exit_code == 0
    server = LiveServer(tmp)
    request = urllib.request.Request(
        server.url + "/api/v1/responses",
        method="POST",
        data=json.dumps({"answers": SOME_POINTS}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        server.results_key = json.load(response)["results_key"]
    yield server
    server.stop()


def enter_key(page, server):
    page.goto(server.url + "/results/key")
    page.fill("#results_key", server.results_key)
    page.click(".key-form button[type=submit]")
    page.wait_for_selector("#your-clinic")


def bottom(page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    return box["y"] + box["height"]


def test_on_a_phone_the_verdict_and_the_first_action_come_first(demo_server, phone):
    enter_key(phone, demo_server)
    assert phone.viewport_size == {"width": 390, "height": 844}
    verdict = phone.locator("#your-clinic .verdict")
    assert "clinics score" in verdict.inner_text()
    # Measured from the top of the page, before any scrolling.
    assert phone.evaluate("window.scrollY") == 0
    assert bottom(phone, "#your-clinic .verdict") < 700
    first = phone.locator("ol.top-actions > li").first
    assert first.bounding_box()["y"] < 1000
    assert phone.locator("ol.top-actions > li").count() == 3
    # The reason is behind a disclosure: closed, and opened by a tap.
    why = first.locator("details.why")
    assert not why.evaluate("d => d.open")
    why.locator("summary").click()
    assert why.locator("p").is_visible() and len(why.locator("p").inner_text()) > 40
    # The caveats are one line whose link leads to the box at the end; Print is at the end.
    phone.click(".caveats a[href='#about-figures']")
    assert phone.evaluate("location.hash") == "#about-figures"
    print_y = phone.locator("button[data-print]").evaluate("b => b.getBoundingClientRect().top + scrollY")
    about_y = phone.locator("#about-figures").evaluate("h => h.getBoundingClientRect().top + scrollY")
    assert print_y > about_y
    phone.evaluate("window.scrollTo(0, 0)")
    shot(phone, "scorecard-390")


def test_on_a_desktop_the_scorecard_fits_the_first_screen(demo_server, page):
    enter_key(page, demo_server)
    assert bottom(page, "ol.top-actions > li") < 900
    shot(page, "scorecard-1280")


def test_a_returning_clinic_is_greeted_and_its_key_kept_on_the_device_when_chosen(demo_server, browser):
    phone = browser.new_context(**VIEWPORTS[390])
    page = phone.new_page()
    page.goto(demo_server.url + "/survey")
    fill_survey(page, SOME_POINTS)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/thanks$"))
    key = page.locator("#results-key-value").input_value()
    # Did my answer count? Said plainly: stored; the published N and when it next updates.
    counted = page.locator("section.counted").inner_text()
    assert "Yes: your answer is stored." in counted and "responses; they update at" in counted
    assert "computed from your answers now" in counted
    # Nothing is kept beyond the browser session until the participant chooses it.
    assert [c["name"] for c in phone.cookies() if c["expires"] != -1] == []
    page.click("text=Remember my key on this device")
    page.wait_for_selector("text=This device remembers your key for 90 days")
    kept = [c for c in phone.cookies() if c["expires"] != -1]
    assert [(c["name"], c["value"], c["httpOnly"]) for c in kept] == [("pulse_key", key, True)]
    shot(page, "thanks-remember-390")
    # The browser is closed (session cookies go) and opened again days later: the device cookie stays.
    phone.close()
    later = browser.new_context(**VIEWPORTS[390])
    later.add_cookies(kept)
    page = later.new_page()
    page.goto(demo_server.url + "/")
    answered = page.locator(".answered")
    assert "You have answered this survey." in answered.inner_text()
    # It leads the page: above the fold on a phone, before the privacy promise.
    assert answered.bounding_box()["y"] + answered.bounding_box()["height"] < 844
    assert page.locator("text=Start the survey").count() == 0
    assert page.locator(".answered a", has_text="Answer for another clinic").count() == 1
    page.goto(demo_server.url + "/survey")
    assert "You have answered this survey." in page.locator(".answered").inner_text()
    page.click(".answered a.button")
    page.wait_for_selector("#your-clinic")
    assert page.locator(".score-number").inner_text() == "28"
    later.close()


@pytest.mark.parametrize("paper", ["A4", "Letter"])
@pytest.mark.parametrize("who", ["anyone", "key"])
def test_the_guide_reads_on_a_phone_and_prints_in_three_pages(demo_server, new_page, paper, who):
    page = new_page(390)
    if who == "key":
        enter_key(page, demo_server)
    page.goto(demo_server.url + "/guide")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("li.practice").count() == 22
    assert page.locator("section.guide-question").count() == 6
    # Early access: shares for key holders only.
    assert (page.locator(".practice .share").count() >= 20) is (who == "key")
    if who == "key":
        assert page.locator(".practice .status").count() == 22
        assert (
            page.locator(".practice .status.todo").first.bounding_box()["y"]
            < page.locator(".practice .status.done").first.bounding_box()["y"]
        )
    page.emulate_media(media="print")
    pdf = pypdf.PdfReader(io.BytesIO(page.pdf(format=paper, print_background=True)))
    assert 1 <= len(pdf.pages) <= 3, f"{len(pdf.pages)} pages"
    text = " ".join(" ".join(p.extract_text().split()) for p in pdf.pages)
    assert "Re-check blood pressure and heart rate before each patient leaves" in text
    assert "Print or save as PDF" not in text
