"""`pulse serve` as it ships: nothing identifying in its output or tables; exact rate limits across workers."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import CLIENT_ADDRESS, FULL_ANSWERS, REDIS_URL, LiveServer, answers_to_form, form_tokens, request

pytestmark = pytest.mark.slow

MARKER_AGENT = "PulseMarkerAgent/9.9 (canary-7f3a)"
MARKER_ADDRESS = "203.0.113.77"
MARKER_REFERRER = "https://referrer-canary.example/page-5521"


def test_nothing_identifying_reaches_output_or_tables(tmp_path):
    server = LiveServer(tmp_path, env={"PULSE_PROXY_HOPS": "0"})
    markers = {"User-Agent": MARKER_AGENT, "X-Forwarded-For": MARKER_ADDRESS, "Referer": MARKER_REFERRER}
    try:
        sent = 0
        for path in ("/", "/survey", "/privacy", "/api/v1/survey", "/nowhere"):
            request(server.url + path, headers=markers)
            sent += 1
        status, _ = request(server.url + "/api/v1/responses", "POST", {"answers": FULL_ANSWERS}, markers)
        assert status == 201
        status, _ = request(server.url + "/api/v1/responses", "POST", {"answers": {"x": 1}}, markers)
        assert status == 422
        with socket.create_connection(("127.0.0.1", server.port), source_address=(CLIENT_ADDRESS, 0)) as raw:
            raw.sendall(b"GARBAGE /\x01\x02 HTTP/9.9\r\nUser-Agent: " + MARKER_AGENT.encode() + b"\r\n\r\n")
            raw.recv(1024)
        sent += 3
    finally:
        server.stop()
    output = server.output()
    assert "Invalid request" in output  # the malformed line was seen...
    for marker in (MARKER_AGENT, "canary-7f3a", MARKER_ADDRESS, MARKER_REFERRER, CLIENT_ADDRESS, "ip="):
        assert marker not in output, marker  # ...but nothing about who sent it
    dump = "\n".join(sqlite3.connect(tmp_path / "live.sqlite3").iterdump())
    for marker in ("canary", MARKER_ADDRESS, CLIENT_ADDRESS, "referrer-canary"):
        assert marker not in dump, marker
    print(f"privacy check: {sent} requests sent, 0 markers found in server output or database")


def test_rate_limit_is_exact_across_workers_with_redis(tmp_path, redis_db):
    server = LiveServer(
        tmp_path,
        env={
            "PULSE_RATELIMIT_ENABLED": "true",
            "PULSE_RATELIMIT_STORAGE_URI": REDIS_URL,
            "PULSE_SUBMIT_LIMIT": "7 per minute",
        },
        args=("--workers", "3"),
    )
    try:
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(
                    lambda _: request(server.url + "/api/v1/responses", "POST", {"answers": FULL_ANSWERS})[0], range(12)
                )
            )
    finally:
        server.stop()
    assert sorted(statuses) == [201] * 7 + [429] * 5
    rows = sqlite3.connect(tmp_path / "live.sqlite3").execute("SELECT count(*) FROM responses").fetchone()[0]
    assert rows == 7
    stored_keys = [k.decode() for k in redis_db.keys("*")]
    assert stored_keys, "the limiter stored nothing in Redis"
    for key in stored_keys:
        assert not re.search(r"\d{1,3}(\.\d{1,3}){3}|::1|127\.0\.0\.1", key), key


def test_rate_limit_is_exact_with_one_worker_in_memory(tmp_path):
    server = LiveServer(tmp_path, env={"PULSE_RATELIMIT_ENABLED": "true", "PULSE_SUBMIT_LIMIT": "4 per minute"})
    try:
        with ThreadPoolExecutor(6) as pool:
            statuses = list(
                pool.map(
                    lambda _: request(server.url + "/api/v1/responses", "POST", {"answers": FULL_ANSWERS})[0], range(9)
                )
            )
    finally:
        server.stop()
    assert sorted(statuses) == [201] * 4 + [429] * 5


def test_serve_demo_shows_a_full_public_dashboard(tmp_path):
    server = LiveServer(tmp_path, env={"SECRET_KEY": ""}, args=("--demo",))
    try:
        status, body = request(server.url + "/results")
        api_status, api_body = request(server.url + "/api/v1/benchmarks")
        _, home = request(server.url + "/")
        _, listed = request(server.url + "/api/v1/surveys")
    finally:
        server.stop()
    html = body.decode()
    assert status == 200 and "Demo data" in html and 'type="application/json"' in html
    published = json.loads(api_body)
    assert api_status == 200 and published["released"] and published["published"]
    assert published["responses"] >= 200
    # The whole program: two waves of the first survey, and the survey the community chose.
    assert re.search(r"Chosen by the community in round \d+", home.decode())
    surveys = {(s["id"], s["version"]): s["status"] for s in json.loads(listed)["surveys"]}
    assert surveys == {
        ("pulse-aftercare", 1): "closed",
        ("pulse-aftercare", 2): "closed",
        ("patient-comfort", 1): "open",
    }
    # A second start on the same demo database adds nothing.
    database = re.search(r"database sqlite:///(\S+?)\)", server.output()).group(1)
    before = demo_rows(database)
    again = LiveServer(tmp_path, env={"SECRET_KEY": ""}, args=("--demo",))
    again.stop()
    assert demo_rows(database) == before


def demo_rows(path: str) -> dict:
    with sqlite3.connect(path) as db:
        return {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
            for table in ("responses", "snapshots", "surveys", "topics", "rounds", "ballots")
        }


def test_csrf_tokens_hold_across_workers(tmp_path):
    """TRUST S4: 200 GET-then-POST pairs over 4 workers, no sticky routing: 0 CSRF failures."""
    import http.cookiejar
    import urllib.request

    server = LiveServer(tmp_path, args=("--workers", "4", "--threads", "1"))
    try:
        statuses = []
        for _ in range(200):
            jar = http.cookiejar.CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
            with opener.open(server.url + "/survey") as page:  # a new connection each time: any worker
                tokens = form_tokens(page.read().decode())
            body = urllib.parse.urlencode(answers_to_form(FULL_ANSWERS) + list(tokens.items())).encode()
            try:
                with opener.open(server.url + "/survey", data=body) as answer:
                    statuses.append(answer.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        print(
            f"\n200 GET-then-POST pairs over 4 workers: {statuses.count(303)} answered 303, "
            f"{statuses.count(400)} CSRF failures"
        )
        assert statuses == [303] * 200
        workers = set(re.findall(r"Booting worker with pid: (\d+)", server.output()))
        assert len(workers) >= 4
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "live.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone()[0] == 200


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 303 to /thanks is the answer we check
