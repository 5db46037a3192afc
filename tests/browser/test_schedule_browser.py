"""Schedules in real Chromium: an organiser schedules a survey to open a few seconds later on a
phone, and it opens by itself, with nobody pressing a button or loading a page."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest

from ..helpers import ROOT, csp_violations, pulse, shot, wait_until

pytestmark = pytest.mark.browser

PASSWORD = "a long organiser password"
COMFORT = ROOT / "surveys" / "patient-comfort.yaml"


def current_survey(server) -> tuple[str, bool]:
    """(the current survey's id, whether it is open), read from the database file, not over HTTP."""
    path = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT survey_id, is_open FROM survey_states WHERE current").fetchone()


def test_organiser_schedules_a_survey_on_a_phone_and_it_opens_by_itself(live_server, new_page):
    pulse(live_server, "create-admin", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    pulse(live_server, "survey", "add", str(COMFORT))
    page = new_page(390)
    page.goto(live_server.url + "/admin/login")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin$"))
    page.goto(live_server.url + "/admin?survey=patient-comfort@1")

    # A typo first: the page says what is wrong, and nothing is scheduled.
    page.fill("#schedule-opens", "tomorow")
    page.click("text=Save the schedule")
    assert "is not a time" in page.locator("[role=alert]").inner_text()
    assert "Nothing is scheduled" in page.locator("#schedule ~ p").first.inner_text()

    # Then a time a few seconds ahead (PULSE_TIMEZONE is UTC here), by keyboard.
    due = int(time.time()) + 6
    page.fill("#schedule-opens", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(due)))
    page.focus("#schedule-closes")
    page.keyboard.press("Enter")
    assert "opens by itself on" in page.locator("[role=status]").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "admin-schedule-390")
    assert current_survey(live_server) == ("pulse-aftercare", 1)

    # Nobody presses a button or loads a page: the server opens it on time.
    wait_until(lambda: current_survey(live_server) == ("patient-comfort", 1), timeout=30)
    page.goto(live_server.url + "/")
    assert page.locator("h1").inner_text() == "The Pulse of Patient Comfort"
    assert page.locator("text=Start the survey").count() == 1
    assert csp_violations(page) == []
