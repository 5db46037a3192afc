"""Rate-limit keys: the real client's network behind a configured proxy, hashed with a daily key.

Every limit (submissions, proposals, ballots, admin logins) counts per network: IPv4 /24 and
IPv6 /64 by default. Neighbouring loopback addresses (127.0.0.x share a /24, 127.0.1.x is
another) stand in for neighbours on the internet.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import re

import pytest

from survey_app import admin_auth, limits, state
from survey_app.settings import SettingsError, read_settings

from .helpers import FULL_ANSWERS, REDIS_URL, LiveServer, form_tokens, make_app, post_form, submit_api

PASSWORD = "correct horse battery"


def key_for(app, environ_base, headers=None):
    """The address and limiter key a real request sees (ProxyFix runs in the WSGI stack)."""
    captured = {}

    @app.get("/_probe_key")
    def probe():
        from flask import request

        captured["addr"] = request.remote_addr
        captured["key"] = limits.hashed_network()
        return "ok"

    app.test_client().get("/_probe_key", environ_base=environ_base, headers=headers or {})
    return captured


def from_address(client, address: str):
    """The test client, sending every later request from `address`."""
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_proxy_hop_count_picks_the_proxy_seen_address(db_url):
    app = make_app(db_url, PULSE_PROXY_HOPS=1)
    seen = key_for(app, {"REMOTE_ADDR": "127.0.0.1"}, {"X-Forwarded-For": "6.6.6.6, 10.0.0.9"})
    assert seen["addr"] == "10.0.0.9"  # the client-supplied 6.6.6.6 is not trusted
    assert "10.0.0" not in seen["key"] and len(seen["key"]) == 32
    state.of(app).close()


def test_without_proxy_forwarded_for_is_ignored(db_url):
    app = make_app(db_url)
    seen = key_for(app, {"REMOTE_ADDR": "192.0.2.10"}, {"X-Forwarded-For": "6.6.6.6"})
    assert seen["addr"] == "192.0.2.10"
    state.of(app).close()


def on_day(monkeypatch, day: int, hour: int = 12) -> None:
    """The limiter's clock (UTC) reads this day of November 2026 from now on."""
    moment = dt.datetime(2026, 11, day, hour, 59, tzinfo=dt.timezone.utc)
    clock = type("D", (dt.datetime,), {"now": classmethod(lambda c, tz=None: moment)})
    monkeypatch.setattr(limits.dt, "datetime", clock)


def test_key_rotates_daily_and_differs_by_network(app, monkeypatch):
    keys = {}
    for day, addr in [(1, "192.0.2.1"), (1, "192.0.2.200"), (1, "192.0.3.1"), (2, "192.0.2.1")]:
        on_day(monkeypatch, day)
        with app.test_request_context("/", environ_base={"REMOTE_ADDR": addr}):
            keys[(day, addr)] = limits.hashed_network()
            if day == 2:  # yesterday's key of the same network: the one day 1 used
                assert limits.hashed_network(1) == keys[(1, addr)]
    assert keys[(1, "192.0.2.1")] == keys[(1, "192.0.2.200")]  # neighbours: one key
    assert len(set(keys.values())) == 3  # another /24, and the next day, each another key
    for key in keys.values():
        assert re.fullmatch(r"[0-9a-f]{32}", key)


def test_a_budget_spent_before_midnight_stays_spent_after_it(db_url, monkeypatch):
    """The key rotates at midnight (UTC), but yesterday's counter still counts until its window
    ends: a client that spent its budget at 23:59 gets no fresh one at 00:00."""
    app = make_app(
        db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="2 per day", PULSE_SUBMIT_LIMIT_WIDE="100 per day"
    )
    client = from_address(app.test_client(), "198.51.100.7")
    on_day(monkeypatch, 1, hour=23)
    assert [submit_api(client).status_code for _ in range(2)] == [201, 201]
    on_day(monkeypatch, 2, hour=0)
    assert submit_api(client).status_code == 429
    assert submit_api(from_address(client, "198.51.101.7")).status_code == 201  # another network is not held
    state.of(app).close()


def test_a_wide_network_has_one_budget_beside_its_networks(db_url):
    """Many /24s of one /16, or many /64s of one /48 (one site's allocation), share the wide
    budget: per-network budgets alone would multiply with the networks a site holds."""
    app = make_app(
        db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="2 per minute", PULSE_SUBMIT_LIMIT_WIDE="3 per minute"
    )
    client = app.test_client()

    def submit(address):
        return submit_api(from_address(client, address)).status_code

    assert [submit(f"127.0.{i}.1") for i in range(1, 5)] == [201, 201, 201, 429]
    assert submit("127.1.0.1") == 201  # another /16
    assert [submit(f"2001:db8:1:{i}::1") for i in range(1, 5)] == [201, 201, 201, 429]
    assert submit("2001:db8:1:ffff::1") == 429  # the same /48
    assert submit("2001:db8:2::1") == 201  # another /48
    # 6to4 (127.1.1.2) and IPv4-compatible (127.1.2.3) forms count in that IPv4 /16
    assert [submit("2002:7f01:0102::1"), submit("::127.1.2.3")] == [201, 201]
    assert submit("127.1.9.9") == 429
    state.of(app).close()


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("192.0.2.77", "192.0.2.0/24"),
        ("::ffff:192.0.2.77", "192.0.2.0/24"),  # IPv4-mapped IPv6 counts as IPv4
        ("::ffff:c000:24d", "192.0.2.0/24"),
        ("::192.0.2.77", "192.0.2.0/24"),  # IPv4-compatible IPv6 counts as IPv4
        ("2002:c000:24d::1", "192.0.2.0/24"),  # 6to4 counts as the IPv4 address it carries
        ("2002:c000:24d:ffff::1", "192.0.2.0/24"),
        ("::1", "::/64"),  # loopback and unspecified are not IPv4-compatible
        ("::", "::/64"),
        ("192.0.2.77:5100", "192.0.2.0/24"),  # a port from a proxy is not part of the network
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::9]:443", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "other:not an address"),
        (None, "other:"),
    ],
)
def test_client_network(address, network):
    assert limits.client_network(address) == network


def test_prefix_settings_change_the_network_size():
    assert limits.client_network("192.0.2.77", 32, 64) == "192.0.2.77/32"
    assert limits.client_network("192.0.2.77", 16, 64) == "192.0.0.0/16"
    assert limits.client_network("2001:db8:1:2::1", 24, 48) == "2001:db8:1::/48"
    assert limits.client_network("::ffff:192.0.2.77", 8, 128) == "192.0.0.0/8"


@pytest.mark.parametrize(
    ("name", "bad", "good"),
    [
        ("PULSE_RATELIMIT_IPV4_PREFIX", ["7", "33", "0", "-24", "24.5", "/24"], ["8", "24", "32"]),
        ("PULSE_RATELIMIT_IPV6_PREFIX", ["15", "129", "0", "64bits"], ["16", "64", "128"]),
    ],
)
def test_prefix_settings_are_checked(name, bad, good):
    assert read_settings({})[name] == (24 if "IPV4" in name else 64)
    for value in good:
        assert read_settings({name: value})[name] == int(value)
    for value in bad:
        with pytest.raises(SettingsError, match=name):
            read_settings({name: value})


def test_limits_are_checked_by_their_views_not_before_every_request(db_url):
    """Pulse's limits all decorate their views; the extension's check before every request (for
    app-wide limits, of which there are none) is not installed, and the limits still hold."""
    app = make_app(db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="2 per minute", RATELIMIT_STORAGE_URI="memory://")
    assert limits.limiter._check_request_limit not in app.before_request_funcs.get(None, [])
    client = app.test_client()
    assert [submit_api(client).status_code for _ in range(3)] == [201, 201, 429]
    assert client.get("/api/v1/benchmarks").status_code in (200, 403)  # reads are never limited
    state.of(app).close()


def test_submit_limit_answers_429_and_stores_nothing_more(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="2 per minute", RATELIMIT_STORAGE_URI="memory://")
    client = app.test_client()
    statuses = [submit_api(client).status_code for _ in range(4)]
    assert statuses == [201, 201, 429, 429]
    body = submit_api(client).get_json()
    assert "Too many" in body["error"]
    state.of(app).close()


def test_neighbours_share_one_submission_budget(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="4 per minute")
    client = app.test_client()

    def submit(address):
        return submit_api(from_address(client, address)).status_code

    assert [submit("127.0.0.55"), submit("127.0.0.55")] == [201, 201]
    assert [submit("127.0.0.56"), submit("127.0.0.200"), submit("127.0.0.57")] == [201, 201, 429]
    assert submit("::ffff:127.0.0.9") == 429  # the same /24, written as IPv6
    assert [submit("127.0.1.55") for _ in range(5)] == [201] * 4 + [429]  # another /24: its own budget
    # IPv6: one /64 is one budget, the next /64 another.
    assert [submit(f"2001:db8:1:2::{i}") for i in range(1, 6)] == [201] * 4 + [429]
    assert submit("2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
    assert submit("2001:db8:1:3::1") == 201
    state.of(app).close()


def test_the_form_and_the_api_share_the_network_budget(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="2 per minute")
    client = from_address(app.test_client(), "198.51.100.1")
    assert submit_api(client).status_code == 201
    assert post_form(from_address(client, "198.51.100.2"), FULL_ANSWERS).status_code in (302, 303)
    assert submit_api(from_address(client, "198.51.100.3")).status_code == 429
    state.of(app).close()


def test_neighbours_share_the_proposal_and_ballot_budgets(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True, PULSE_SUBMIT_LIMIT="100 per minute")
    client = app.test_client()
    key = submit_api(client).get_json()["results_key"]
    headers = {"X-Results-Key": key}
    # A proposal that is refused (no title) still counts against its network, not against the key.
    propose = [
        client.post(
            "/api/v1/topics", json={"title": ""}, headers=headers, environ_base={"REMOTE_ADDR": f"127.0.0.{10 + i % 3}"}
        ).status_code
        for i in range(limits_count(limits.PROPOSE_LIMIT))
    ]
    assert 429 not in propose
    assert (
        client.post(
            "/api/v1/topics", json={"title": ""}, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.99"}
        ).status_code
        == 429
    )
    assert (
        client.post(
            "/api/v1/topics", json={"title": ""}, headers=headers, environ_base={"REMOTE_ADDR": "127.0.1.99"}
        ).status_code
        != 429
    )
    ballots = [
        client.put(
            "/api/v1/ballot",
            json={"approve": []},
            headers=headers,
            environ_base={"REMOTE_ADDR": f"127.0.0.{10 + i % 3}"},
        ).status_code
        for i in range(limits_count(limits.BALLOT_LIMIT))
    ]
    assert 429 not in ballots
    assert (
        client.put(
            "/api/v1/ballot", json={"approve": []}, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.99"}
        ).status_code
        == 429
    )
    assert (
        client.put(
            "/api/v1/ballot", json={"approve": []}, headers=headers, environ_base={"REMOTE_ADDR": "127.0.1.99"}
        ).status_code
        != 429
    )
    state.of(app).close()


def limits_count(limit: str) -> int:
    return int(limit.split()[0])


def admin_login(client, address, password):
    from_address(client, address)
    tokens = form_tokens(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"username": "ada", "password": password, "code": "", **tokens})


def test_the_admin_login_lockout_carries_to_neighbours(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True)
    with app.app_context():
        admin_auth.create_admin("ada", PASSWORD)
    client = app.test_client()
    failed = [
        admin_login(client, f"127.0.0.{50 + i % 5}", f"guess {i}").status_code
        for i in range(limits_count(admin_auth.LOGIN_LIMIT))
    ]
    assert failed == [401] * 10
    assert admin_login(client, "127.0.0.77", "guess 11").status_code == 429  # a neighbour is locked out too
    assert admin_login(client, "::ffff:127.0.0.78", PASSWORD).status_code == 429
    assert admin_login(client, "127.0.1.77", PASSWORD).status_code == 303  # another /24 is not
    state.of(app).close()


def test_stored_counters_hold_no_address_or_network(db_url, redis_db):
    app = make_app(db_url, RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=REDIS_URL)
    client = app.test_client()
    for address in ("198.51.100.23", "2001:db8:aa:bb::1", "::ffff:203.0.113.9"):
        assert submit_api(from_address(client, address)).status_code == 201
    stored = [key.decode() for key in redis_db.keys("*")]
    # three networks and three wider ones, each counted under today's key and yesterday's
    assert len(stored) == 12, stored
    for key in stored:
        for part in ("198.51.100", "2001:db8", "203.0.113", "/16", "/24", "/48", "/64", "other:"):
            assert part not in key, key
    state.of(app).close()


# ------------------------------------------------------------------ PULSE_PROXY_HOPS


def test_proxy_hops_warn_once_at_start_up(db_url, monkeypatch, caplog):
    limits.warn_trusted_proxy.cache_clear()  # a fresh process, as far as this log line knows
    with caplog.at_level(logging.WARNING, logger="survey_app"):
        first = make_app(db_url, PULSE_PROXY_HOPS=1)
        second = make_app(db_url, PULSE_PROXY_HOPS=1)
    messages = [r.getMessage() for r in caplog.records if "trusts" in r.getMessage()]
    assert len(messages) == 1 and "PULSE_PROXY_HOPS=1" in messages[0] and "X-Forwarded-For" in messages[0]
    state.of(first).close()
    state.of(second).close()


def test_no_proxy_warning_without_proxy_hops(db_url, monkeypatch, caplog):
    limits.warn_trusted_proxy.cache_clear()  # a fresh process, as far as this log line knows
    with caplog.at_level(logging.WARNING, logger="survey_app"):
        app = make_app(db_url)
        app.test_client().get("/")
    assert not [r for r in caplog.records if "X-Forwarded-For" in r.getMessage()]
    assert not state.of(app).unforwarded
    state.of(app).close()


def admin_page(app, headers):
    with app.app_context():
        admin_auth.create_admin("ada", PASSWORD)
    client = app.test_client()
    tokens = form_tokens(client.get("/admin/login", headers=headers).get_data(as_text=True))
    response = client.post(
        "/admin/login", headers=headers, data={"username": "ada", "password": PASSWORD, "code": "", **tokens}
    )
    assert response.status_code == 303
    return client.get("/admin", headers=headers).get_data(as_text=True)


def test_requests_without_forwarded_for_warn_in_the_log_once_and_on_admin(db_url, caplog):
    app = make_app(db_url, PULSE_PROXY_HOPS=1)
    with caplog.at_level(logging.WARNING, logger="survey_app"):
        for _ in range(5):
            app.test_client().get("/", environ_base={"REMOTE_ADDR": "192.0.2.44"})
        page = admin_page(app, {})
    warnings = [r.getMessage() for r in caplog.records if "without X-Forwarded-For" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per process, however many requests
    assert "PULSE_PROXY_HOPS=1" in warnings[0]
    assert not re.search(r"\d+\.\d+\.\d+\.\d+", warnings[0])  # no address in it
    assert 'id="proxy-warning"' in page
    assert (
        "Requests are arriving without X-Forwarded-For although PULSE_PROXY_HOPS=1: either a proxy is "
        "missing in front of Pulse, or the setting is wrong."
    ) in page
    state.of(app).close()


def test_forwarded_requests_raise_no_warning(db_url, caplog):
    app = make_app(db_url, PULSE_PROXY_HOPS=1)
    with caplog.at_level(logging.WARNING, logger="survey_app"):
        page = admin_page(app, {"X-Forwarded-For": "192.0.2.44"})
    assert not [r for r in caplog.records if "without X-Forwarded-For" in r.getMessage()]
    assert 'id="proxy-warning"' not in page
    state.of(app).close()


# ------------------------------------------------------------------ a real server


def send_from(url_port: int, source: str, path: str, body=None, method="POST"):
    """One request to a live server on loopback, sent from the `source` address."""
    connection = http.client.HTTPConnection("127.0.0.1", url_port, timeout=30, source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.slow
def test_neighbours_share_one_budget_on_a_real_server(tmp_path):
    server = LiveServer(tmp_path, env={"PULSE_RATELIMIT_ENABLED": "true", "PULSE_SUBMIT_LIMIT": "3 per minute"})
    try:

        def submit(source):
            return send_from(server.port, source, "/api/v1/responses", {"answers": FULL_ANSWERS})

        seen = [submit("127.0.0.55"), submit("127.0.0.56"), submit("127.0.0.55"), submit("127.0.0.56")]
        other = [submit("127.0.1.55") for _ in range(4)]
    finally:
        server.stop()
    assert seen == [201, 201, 201, 429]  # two neighbours, one budget of 3
    assert other == [201, 201, 201, 429]  # another /24 has its own
    assert "127.0.0.5" not in server.output() and "127.0.1.5" not in server.output()
