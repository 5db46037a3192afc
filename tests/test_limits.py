"""Rate-limit keys: the real client behind a configured proxy, hashed with a daily key."""
from __future__ import annotations

import datetime as dt

from survey_app import limits, state

from .helpers import make_app, submit_api


def key_for(app, environ_base, headers=None):
    """The address and limiter key a real request sees (ProxyFix runs in the WSGI stack)."""
    captured = {}

    @app.get("/_probe_key")
    def probe():
        from flask import request
        captured["addr"] = request.remote_addr
        captured["key"] = limits.hashed_address()
        return "ok"
    app.test_client().get("/_probe_key", environ_base=environ_base, headers=headers or {})
    return captured


def test_proxy_hop_count_picks_the_proxy_seen_address(db_url):
    app = make_app(db_url, PULSE_PROXY_HOPS=1)
    seen = key_for(app, {"REMOTE_ADDR": "127.0.0.1"}, {"X-Forwarded-For": "6.6.6.6, 10.0.0.9"})
    assert seen["addr"] == "10.0.0.9"  # the client-supplied 6.6.6.6 is not trusted
    assert "10.0.0.9" not in seen["key"] and len(seen["key"]) == 32
    state.of(app).close()


def test_without_proxy_forwarded_for_is_ignored(db_url):
    app = make_app(db_url)
    seen = key_for(app, {"REMOTE_ADDR": "192.0.2.10"}, {"X-Forwarded-For": "6.6.6.6"})
    assert seen["addr"] == "192.0.2.10"
    state.of(app).close()


def test_key_rotates_daily_and_differs_by_address(app, monkeypatch):
    keys = {}
    for day, addr in [(1, "192.0.2.1"), (1, "192.0.2.2"), (2, "192.0.2.1")]:
        that_day = type("D", (dt.date,), {"today": classmethod(lambda c, d=day: dt.date(2026, 11, d))})
        monkeypatch.setattr(limits.dt, "date", that_day)
        with app.test_request_context("/", environ_base={"REMOTE_ADDR": addr}):
            keys[(day, addr)] = limits.hashed_address()
    assert len(set(keys.values())) == 3


def test_submit_limit_answers_429_and_stores_nothing_more(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="2 per minute", RATELIMIT_STORAGE_URI="memory://")
    client = app.test_client()
    statuses = [submit_api(client).status_code for _ in range(4)]
    assert statuses == [201, 201, 429, 429]
    body = submit_api(client).get_json()
    assert "Too many" in body["error"]
    state.of(app).close()
