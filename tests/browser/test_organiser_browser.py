"""Issue 20 end to end in real Chromium: an organiser writes the next wave in /admin's editor,
schedules it, and it opens by itself; the landing page then says until when it is open."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest

from ..helpers import csp_violations, pulse, wait_until

pytestmark = pytest.mark.browser

PASSWORD = "a long organiser password"


def current_survey(server) -> tuple[str, int, bool]:
    """(id, version, open) of the current survey, read from the database file, not over HTTP."""
    path = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT survey_id, survey_version, is_open FROM survey_states WHERE current").fetchone()


def test_organiser_writes_schedules_and_the_survey_opens_by_itself(live_server, new_page):
    pulse(live_server, "create-admin", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    page = new_page(1280)
    page.goto(live_server.url + "/admin/login")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin$"))

    # Start from the current survey, change one question, and make a typo on the way.
    page.click("nav.admin-nav >> text=Write a survey")
    page.select_option("#editor-from", "pulse-aftercare@1")
    page.click("text=Start from it")
    text = page.input_value("#editor-text")
    assert "\nversion: 2\n" in text
    changed = text.replace("      - {key: ride_home, label: Confirm a safe ride home}\n", "", 1)
    assert changed != text
    page.fill("#editor-text", changed.replace("    type: single\n", "    type: singel\n", 1))
    page.click("button[value=check]")
    assert "unknown type 'singel'" in page.locator("#editor-problem").inner_text()

    # Fixed: the check passes, the preview is the survey form, and the changed question is not compared.
    page.fill("#editor-text", changed)
    page.click("button[value=check]")
    assert "Save adds it as a new version." in page.locator("#editor-status").inner_text()
    assert page.locator(".editor-preview form.survey fieldset.question").count() == 8
    assert "Confirm a safe ride home" in page.locator(".editor-not-comparable").inner_text()
    page.click("button[value=save]")
    page.wait_for_url(re.compile(r".*/admin\?survey=pulse-aftercare(@|%40)2$"))
    assert current_survey(live_server) == ("pulse-aftercare", 1, True)

    # Scheduled to open a few seconds from now (PULSE_TIMEZONE is UTC here) and to close in 30 days.
    opens = int(time.time()) + 6
    page.fill("#schedule-opens", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(opens)))
    page.fill("#schedule-closes", time.strftime("%Y-%m-%d %H:%M", time.gmtime(opens + 30 * 86400)))
    page.click("text=Save the schedule")
    assert "opens by itself on" in page.locator("[role=status]").inner_text()

    # Nobody presses a button or loads a page: the server opens it on time.
    wait_until(lambda: current_survey(live_server) == ("pulse-aftercare", 2, True), timeout=30)
    page.goto(live_server.url + "/")
    closes_on = time.strftime("%-d %B", time.gmtime(opens + 30 * 86400))
    assert f"open until {closes_on}" in page.locator("main").inner_text()
    assert page.locator("text=Start the survey").count() == 1
    page.goto(live_server.url + "/survey")
    assert page.locator("text=Confirm a safe ride home").count() == 0  # the new wave's form
    assert csp_violations(page) == []
