"""A participant proposes and votes on a phone without JavaScript; an organiser runs the round."""

from __future__ import annotations

import re

import pytest

from ..helpers import FULL_ANSWERS, fill_survey, pulse, shot

pytestmark = pytest.mark.browser

PASSWORD = "a long organiser password"
TITLE = 'Integration <b>circles</b> & "peer" support'


def test_participant_proposes_and_votes_organiser_runs_the_round(live_server, browser, page):
    pulse(live_server, "create-admin", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")

    # The participant: a phone with JavaScript off, so every form must work as plain HTML.
    context = browser.new_context(
        java_script_enabled=False,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    phone = context.new_page()
    phone.goto(live_server.url + "/survey")
    fill_survey(phone, FULL_ANSWERS)
    phone.click("button[type=submit]")
    phone.wait_for_url(re.compile(r".*/thanks$"))
    phone.click("main >> text=topics")
    phone.wait_for_url(re.compile(r".*/topics$"))
    assert phone.locator("input[name=results_key]").count() == 0  # the session holds the key
    phone.fill("#title", TITLE)
    phone.fill("#description", "How do clinics run them?\nWho leads them?")
    phone.click("text=Send for moderation")
    assert "sent to the organisers" in phone.locator("#status").inner_text()
    assert TITLE not in phone.locator("main").inner_text()  # not shown before moderation
    shot(phone, "topics-proposed-phone")

    # The organiser logs in, approves the topic and opens a round.
    page.goto(live_server.url + "/admin")
    assert page.url.endswith("/admin/login")
    page.fill("#username", "ada")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert page.locator("#login-error").inner_text() == "Wrong username, password or authenticator code."
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin$"))
    assert "1 response to" in page.locator("main").inner_text()
    shot(page, "admin-overview")
    page.click("text=Topics and rounds")
    card = page.locator("li.card", has_text="Integration")
    assert card.locator(".topic-title").inner_text() == TITLE  # shown as text, never as markup
    shot(page, "admin-moderation")
    card.locator("button[value=approve]").click()
    assert "approved" in page.locator("[role=status]").inner_text()
    page.click("button[value=open]")
    assert "Round 1 is open with 1 topic" in page.locator("[role=status]").inner_text()
    shot(page, "admin-round-open")

    # The participant votes; the saved ballot shows as ticked.
    phone.goto(live_server.url + "/topics")
    assert "round 1 is open" in phone.locator("h2#vote").inner_text()
    phone.locator("ul.choices label", has_text="Integration").click()
    phone.click("text=Save my ballot")
    assert "ballot is saved" in phone.locator("#status").inner_text()
    assert phone.locator("ul.choices input").first.is_checked()
    shot(phone, "topics-ballot-phone")

    # The organiser closes the round; the tally appears for everyone.
    page.click("button[value=close]")
    assert "closed" in page.locator("[role=status]").inner_text()
    shot(page, "admin-round-closed")
    phone.goto(live_server.url + "/topics")
    row = phone.locator("table.tally tbody tr").first
    assert TITLE in row.inner_text() and "1" in row.locator("td").first.inner_text()
    shot(phone, "topics-tally-phone")

    # Logging out ends the admin session.
    page.click("text=Log out")
    page.goto(live_server.url + "/admin/topics")
    assert "/admin/login" in page.url
    assert page.csp_violations == []
    context.close()


def test_topics_page_on_a_desktop(live_server, page):
    page.goto(live_server.url + "/topics")
    assert page.title().startswith("Topics")
    assert page.locator("input[name=results_key]").count() == 1  # no session key and no round: the proposal form asks
    page.fill("#title", "Something")
    page.fill("#propose-key", "not-a-key")
    page.click("text=Send for moderation")
    assert "That results key is not valid" in page.locator("main").inner_text()
    shot(page, "topics-desktop-bad-key")
    assert page.csp_violations == []
