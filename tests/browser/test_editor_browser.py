"""/admin's survey editor in real Chromium, at 390 and 1280 px: start from the current survey, a
typo caught with its line, fixed, the preview and the wave note, saved; by keyboard, no script."""

from __future__ import annotations

import re

import pytest

from ..helpers import docs_shot, pulse

pytestmark = pytest.mark.browser

PASSWORD = "a long organiser password"


def log_in(page, server):
    page.goto(server.url + "/admin/login")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin$"))


@pytest.mark.parametrize("width", [390, 1280])
def test_organiser_writes_a_new_wave_in_the_editor(live_server, new_page, width):
    pulse(live_server, "create-admin", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    page = new_page(width)
    log_in(page, live_server)
    page.click("nav.admin-nav >> text=Write a survey")
    page.wait_for_url(re.compile(r".*/admin/editor$"))

    # Start from the current survey: its YAML with the version raised.
    page.select_option("#editor-from", "pulse-aftercare@1")
    page.click("text=Start from it")
    text = page.input_value("#editor-text")
    assert "\nversion: 2\n" in text

    # A typo: the check names the line, beside the text.
    broken = text.replace("    type: multi\n", "    type: mutli\n", 1)
    page.fill("#editor-text", broken)
    page.click("button[value=check]")
    problem = page.locator("#editor-problem")
    assert "unknown type 'mutli'" in problem.inner_text() and "the text above, line" in problem.inner_text()
    assert page.evaluate("document.activeElement.id") == "editor-problem"  # focus on the message, no script

    # Fixed, and one question changed: valid, the preview, and the note that it cannot be compared.
    fixed = text.replace("      - {key: ride_home, label: Confirm a safe ride home}\n", "", 1)
    page.fill("#editor-text", fixed)
    page.keyboard.press("Tab")  # from the text area on by keyboard: the file, the topic, Check
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.value") == "check"
    page.keyboard.press("Enter")
    page.wait_for_selector("#editor-status")
    assert "Save adds it as a new version." in page.locator("#editor-status").inner_text()
    assert (
        "its answers changed in wave 2 (removed: “Confirm a safe ride home”)"
        in page.locator(".editor-not-comparable").inner_text()
    )
    assert page.locator(".editor-preview form.survey fieldset.question").count() == 8
    assert page.locator(".editor-preview button[type=submit]").is_disabled()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.csp_violations == [] and page.evaluate("document.scripts.length") == 0
    # A phone shows the text, then the check's messages below it; a desktop the two side by side.
    if width == 390:
        docs_shot(page, "editor-390", 1800, start="#editor-text")
    else:
        docs_shot(page, "editor-1280", 1500)

    page.click("button[value=save]")
    page.wait_for_url(re.compile(r".*/admin\?survey=pulse-aftercare(@|%40)2$"))
    assert "Added 'The Pulse of Clinical Aftercare' (pulse-aftercare@2)" in page.locator("[role=status]").inner_text()
    assert "added" in page.locator("ul.program li", has_text="pulse-aftercare@2").inner_text()
