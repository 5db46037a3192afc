"""A clinic fills in the survey on a phone in real Chromium and reaches its results key."""

from __future__ import annotations

import re

import pytest

from ..helpers import FULL_ANSWERS, csp_violations, fill_survey, shot

pytestmark = pytest.mark.browser


def test_phone_fills_survey_and_gets_key(live_server, phone):
    phone.goto(live_server.url + "/")
    phone.click("text=Start the survey")
    phone.wait_for_url(re.compile(r".*/survey$"))
    phone.wait_for_selector("form.survey")
    assert phone.title().startswith("Survey")
    # Nothing wider than the phone: no sideways scrolling.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    fill_survey(phone, FULL_ANSWERS)
    shot(phone, "survey-phone")
    phone.click("button[type=submit]")
    phone.wait_for_url(re.compile(r".*/thanks$"))
    field = phone.locator("#results-key-value")
    key = field.input_value()
    assert re.fullmatch(r"([A-Z2-7]{4}-){6}[A-Z2-7]{2}", key)
    assert field.get_attribute("readonly") is not None
    # The copy button (a static script) puts the key on the clipboard and says so.
    phone.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    phone.click("button.copy-key")
    # The clipboard answers asynchronously: wait for the status rather than read it at once.
    phone.wait_for_function("document.querySelector('.copy-status').textContent !== ''")
    assert phone.locator(".copy-status").inner_text() == "Copied."
    assert phone.evaluate("navigator.clipboard.readText()") == key
    # The field selects the whole key when it gets focus, ready to copy by hand.
    phone.locator("h1").click()
    field.focus()
    assert (
        phone.evaluate(
            "window.getSelection().toString() || document.activeElement.value.substring("
            "document.activeElement.selectionStart, document.activeElement.selectionEnd)"
        )
        == key
    )
    shot(phone, "thanks-phone")
    assert csp_violations(phone) == []
    phone.click("text=See my results")
    phone.wait_for_selector("#your-clinic")
    assert phone.locator(".score-number").inner_text() == "100"


def test_thanks_page_without_javascript_shows_the_key_in_a_read_only_field(live_server, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(live_server.url + "/survey")
    fill_survey(page, FULL_ANSWERS)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/thanks$"))
    assert re.fullmatch(r"([A-Z2-7]{4}-){6}[A-Z2-7]{2}", page.locator("#results-key-value").input_value())
    assert page.locator("button.copy-key").is_hidden()  # it needs the script: no dead button
    assert page.locator("a.button", has_text="See my results").is_visible()
    context.close()


def test_error_is_shown_beside_question_without_javascript(live_server, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(live_server.url + "/survey")
    fill_survey(page, {k: v for k, v in FULL_ANSWERS.items() if k != "after_hours"})
    page.click("button[type=submit]")
    error = page.locator("#after_hours-error")
    assert error.inner_text() == (
        "Choose one answer to “If a patient is distressed after hours in the 72 hours "
        "after a session, how can they reach help?”"
    )
    assert page.locator("#q-practice_type input[value='psychiatry']").is_checked()
    shot(page, "survey-error-phone")
    context.close()


def test_after_a_failed_submit_focus_moves_to_the_summary_and_the_title_says_error(live_server, phone):
    phone.goto(live_server.url + "/survey")
    fill_survey(phone, {k: v for k, v in FULL_ANSWERS.items() if k not in ("first_followup", "digital_tools")})
    phone.click("button[type=submit]")
    phone.wait_for_selector("#error-summary")
    assert phone.title().startswith("Error: ")
    assert phone.evaluate("document.activeElement.id") == "error-summary"
    # The summary is on screen, and each message names its question.
    box = phone.locator("#error-summary").bounding_box()
    assert 0 <= box["y"] < 844
    items = phone.locator("#error-summary li").all_inner_texts()
    assert items == [
        "Choose one answer to “When does the first structured follow-up (call, message or visit) usually happen?”",
        "Choose at least one answer to “Which digital tools support your patients between sessions?”, or “None”",
    ]
    # A message's link leads to its question.
    phone.click("#error-summary li a >> nth=0")
    assert phone.evaluate("location.hash") == "#q-first_followup"
    assert csp_violations(phone) == []
