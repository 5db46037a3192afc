"""The survey program in real Chromium: an organiser goes from a closed round to the next survey
open; a participant goes from the archive to an earlier survey's results with their key."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from ..helpers import FULL_ANSWERS, ROOT, clinic, pulse, shot

pytestmark = pytest.mark.browser

PASSWORD = "a long organiser password"
COMFORT = ROOT / "surveys" / "patient-comfort.yaml"


def api(server, method: str, path: str, body=None, key: str | None = None):
    headers = {"Content-Type": "application/json"} | ({"X-Results-Key": key} if key else {})
    request = urllib.request.Request(
        server.url + path, method=method, headers=headers, data=json.dumps(body).encode() if body is not None else None
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def submit(server, answers=FULL_ANSWERS) -> str:
    return api(server, "POST", "/api/v1/responses", {"answers": answers})["results_key"]


def log_in(page, server):
    page.goto(server.url + "/admin/login")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin$"))


def test_organiser_goes_from_a_closed_round_to_the_next_survey_open(live_server, page):
    pulse(live_server, "create-admin", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    voters = [submit(live_server) for _ in range(3)]
    comfort = api(
        live_server, "POST", "/api/v1/topics", {"title": "Patient comfort during and after a session"}, key=voters[0]
    )["id"]
    other = api(live_server, "POST", "/api/v1/topics", {"title": "Measuring outcomes six months on"}, key=voters[0])[
        "id"
    ]
    pulse(live_server, "topics", "approve", comfort)
    pulse(live_server, "topics", "approve", other)
    pulse(live_server, "round", "open")
    for n, key in enumerate(voters):
        api(live_server, "PUT", "/api/v1/ballot", {"approve": [comfort] + ([other] if n == 0 else [])}, key=key)

    # The organiser closes the round in /admin: the community chose the comfort topic.
    log_in(page, live_server)
    page.click("text=Topics and rounds")
    page.click("button[value=close]")
    assert "closed" in page.locator("[role=status]").inner_text()
    assert "Patient comfort during and after a session" in page.locator("main").inner_text()
    shot(page, "program-round-closed")

    # The survey answering it is added on the server, linked to the topic, and opened in /admin.
    added = pulse(live_server, "survey", "add", str(COMFORT), "--topic", comfort)
    assert "patient-comfort@1" in added
    page.goto(live_server.url + "/admin")
    row = page.locator("ul.program li", has_text="patient-comfort@1")
    assert "added" in row.inner_text()
    row.locator("button[value=open]").click()
    status = page.locator("[role=status]").inner_text()
    assert "is current and open for responses" in status and "pulse-aftercare@1 was closed" in status
    assert "current" in page.locator("ul.program li", has_text="patient-comfort@1").inner_text()
    shot(page, "program-next-survey-open")

    # Everyone now sees the comfort survey, and which round chose it.
    page.goto(live_server.url + "/")
    assert page.locator("h1").inner_text() == "The Pulse of Patient Comfort"
    assert "Chosen by the community in round 1" in page.locator(".chosen").inner_text()
    page.click("text=Start the survey")
    assert page.locator("fieldset").count() == len(api(live_server, "GET", "/api/v1/survey")["questions"]) == 7
    listing = api(live_server, "GET", "/api/v1/surveys")["surveys"]
    assert [(s["id"], s["status"]) for s in listing] == [("patient-comfort", "open"), ("pulse-aftercare", "closed")]
    assert listing[0]["topic"] == {"id": comfort, "title": "Patient comfort during and after a session"}


def test_participant_goes_from_the_archive_to_an_earlier_surveys_results(live_server, new_page):
    keys = [submit(live_server, clinic(i)) for i in range(16)]
    pulse(live_server, "snapshot", "--full")
    pulse(live_server, "release")
    pulse(live_server, "survey", "add", str(COMFORT))
    pulse(live_server, "survey", "open", "patient-comfort")

    for width in (390, 1280):
        page = new_page(width)
        page.goto(live_server.url + "/")
        page.click("text=Every survey and its results")
        page.wait_for_url(re.compile(r".*/surveys$"))
        rows = page.locator("table.archive tbody tr")
        assert rows.count() == 2
        assert "current" in rows.nth(0).inner_text() and "Patient Comfort" in rows.nth(0).inner_text()
        assert "16" in rows.nth(1).inner_text()  # its published N
        shot(page, f"surveys-{width}")
        page.click("table.archive >> text=The Pulse of Clinical Aftercare")
        page.wait_for_url(re.compile(r".*/results/pulse-aftercare/1$"))
        assert "results of an earlier survey" in page.locator("main").inner_text()
        assert page.locator("h1").inner_text() == "The Pulse of Clinical Aftercare"

    # Their key of the earlier survey opens "your clinic" there, whichever survey is current.
    page.goto(live_server.url + "/results/key")
    page.fill("#results_key", keys[0])
    page.click(".key-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/results/pulse-aftercare/1$"))
    assert page.locator("#your-clinic").count() == 1
    shot(page, "program-earlier-results-with-key")


def test_admin_fits_a_phone_with_a_long_topic_in_the_drop_down(live_server, new_page):
    pulse(live_server, "create-admin", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    key = submit(live_server)
    long_title = "How clinics prepare patients at home for the hours after a session, and who they can call"
    topic = api(live_server, "POST", "/api/v1/topics", {"title": long_title}, key=key)["id"]
    pulse(live_server, "topics", "approve", topic)
    page = new_page(390)
    log_in(page, live_server)
    assert long_title in page.locator("select#topic").inner_text()
    # Nothing wider than the phone: the drop-down keeps to the screen's width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("select#topic").bounding_box()
    assert box["x"] + box["width"] <= 390
