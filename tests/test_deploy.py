"""The shipped proxy config logs no client address, agent or referrer (TRUST P6)."""
import re

from .helpers import ROOT


def test_nginx_access_log_format_is_private():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    formats = re.findall(r"log_format\s+\w+\s+'([^;]*)';", conf)
    assert formats, "no log_format defined"
    for fmt in formats:
        for variable in ("$remote_addr", "$http_x_forwarded_for", "$http_user_agent", "$http_referer",
                         "$binary_remote_addr", "$realip_remote_addr"):
            assert variable not in fmt
    for line in re.findall(r"^\s*access_log\s+([^;]*);", conf, re.M):
        assert line.strip() == "off" or "pulse_private" in line, line


def test_proxy_replaces_forwarded_for():
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "X-Forwarded-For $remote_addr" in conf and "proxy_add_x_forwarded_for" not in conf
