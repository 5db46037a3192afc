"""The shipped proxy config logs no client address, agent or referrer (TRUST P6)."""

import re

from .helpers import ROOT


def test_nginx_access_log_format_is_private():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    formats = re.findall(r"log_format\s+\w+\s+'([^;]*)';", conf)
    assert formats, "no log_format defined"
    for fmt in formats:
        for variable in (
            "$remote_addr",
            "$http_x_forwarded_for",
            "$http_user_agent",
            "$http_referer",
            "$binary_remote_addr",
            "$realip_remote_addr",
        ):
            assert variable not in fmt
    for line in re.findall(r"^\s*access_log\s+([^;]*);", conf, re.M):
        assert line.strip() == "off" or "pulse_private" in line, line


def test_proxy_replaces_forwarded_for():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "X-Forwarded-For $remote_addr" in conf and "proxy_add_x_forwarded_for" not in conf


def test_every_location_buffers_and_forwards_the_client_address():
    """Buffering, timeouts and proxy headers sit at server level, and no location drops them."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf = re.sub(r"#[^\n]*", "", conf)
    server = re.search(r"\nserver \{(.*)\n\}", conf, re.S).group(1)
    locations = re.findall(r"location[^{]*\{([^}]*)\}", server)
    assert locations
    outside = re.sub(r"location[^{]*\{[^}]*\}", "", server)
    for directive in (
        "proxy_request_buffering on;",
        "proxy_buffering on;",
        "client_header_timeout",
        "client_body_timeout",
        "send_timeout",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ):
        assert directive in outside, directive
    for location in locations:
        # nginx inherits proxy_set_header only into a location that sets none of its own.
        assert "proxy_set_header" not in location and "buffering off" not in location, location
        assert "proxy_pass http://pulse_app;" in location
