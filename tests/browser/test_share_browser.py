"""An organiser looks at participation and the share kit at 390 px and 1280 px: no script is
needed, nothing overflows, no CSP violation, and the QR code image loads from /admin."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from ..helpers import FULL_ANSWERS, csp_violations, docs_shot, pulse, shot
from .conftest import CSP_LISTENER, VIEWPORTS

pytestmark = pytest.mark.browser

PASSWORD = "a long organiser password"


def submit(url: str) -> None:
    body = json.dumps({"answers": FULL_ANSWERS}).encode()
    request = urllib.request.Request(url + "/api/v1/responses", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


@pytest.mark.parametrize("width", [390, 1280])
def test_participation_and_share_kit(live_server, browser, width):
    pulse(live_server, "create-admin", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    for _ in range(3):
        submit(live_server.url)

    context = browser.new_context(java_script_enabled=False, **VIEWPORTS[width])
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.csp_violations = []
    page.on("console", lambda m: page.csp_violations.append(m.text) if "Refused to" in m.text else None)
    page.goto(live_server.url + "/admin/login")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/admin$"))

    page.click("nav.admin-nav >> text=Participation")
    page.wait_for_url(re.compile(r".*/admin/participation$"))
    assert page.locator("#weekly-table tbody tr").count() >= 1
    assert "3" in page.locator("#weekly-table tbody tr").last.inner_text()
    assert page.locator(".week-chart rect").count() >= 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, f"participation-{width}")

    page.click("nav.admin-nav >> text=Share kit")
    page.wait_for_url(re.compile(r".*/admin/share$"))
    assert page.input_value("#share-url") == live_server.url + "/survey"
    assert live_server.url + "/survey" in page.input_value("#announcement")
    assert page.evaluate("document.querySelector('.share-qr img').naturalWidth") > 0
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert csp_violations(page) == []
    docs_shot(page, f"share-kit-{width}")
    context.close()
