"""A clinic fills in the survey on a phone in real Chromium and reaches its results key."""
from __future__ import annotations

import re

import pytest

from ..helpers import FULL_ANSWERS, csp_violations, fill_survey, shot

pytestmark = pytest.mark.browser


def test_phone_fills_survey_and_gets_key(live_server, phone):
    phone.goto(live_server.url + "/")
    phone.click("text=Start the survey")
    assert phone.title().startswith("Survey")
    # Nothing wider than the phone: no sideways scrolling.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    fill_survey(phone, FULL_ANSWERS)
    shot(phone, "survey-phone")
    phone.click("button[type=submit]")
    phone.wait_for_url(re.compile(r".*/thanks$"))
    key = phone.locator(".results-key output").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4}-){6}[A-Z2-7]{2}", key)
    shot(phone, "thanks-phone")
    assert csp_violations(phone) == []


def test_error_is_shown_beside_question_without_javascript(live_server, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(live_server.url + "/survey")
    fill_survey(page, {k: v for k, v in FULL_ANSWERS.items() if k != "after_hours"})
    page.click("button[type=submit]")
    error = page.locator("#after_hours-error")
    assert error.inner_text() == "an answer is required"
    assert page.locator("#q-practice_type input[value='psychiatry']").is_checked()
    shot(page, "survey-error-phone")
    context.close()
