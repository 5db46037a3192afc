"""Bad input never reaches a 500: JSON nested thousands deep, and NUL, bad bytes or huge names in paths.

A JSON body of 20,000 brackets fits in 64 KiB and made Python's parser raise RecursionError; a
file name longer than the file system allows raised OSError in the asset lookup. Both must be
refusals the client can read (400, 404), with no traceback in the log. Hypothesis then sends
odd JSON to every JSON POST/PUT route and odd paths to every GET route, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey_app import state
from survey_app.community import voting as community
from survey_app.errors import MAX_JSON_DEPTH, json_too_deep

from .helpers import FULL_ANSWERS, fuzz_examples, make_app, submit_api

EXAMPLES = fuzz_examples("PULSE_FUZZ_EXAMPLES", ci=300, local=100)
# Every route that reads a JSON body: (method, path, the field its body carries).
JSON_ROUTES = [
    ("POST", "/api/v1/responses", "answers"),
    ("POST", "/api/v1/topics", "title"),
    ("PUT", "/api/v1/ballot", "approve"),
]


@pytest.fixture
def ready(db_url):
    """An app with a results key and an open voting round, so every JSON route reads its body."""
    app = make_app(db_url)
    client = app.test_client()
    key = submit_api(client).get_json()["results_key"]
    with app.app_context():
        topic = community.propose("Sleep after a session", "")
        community.moderate(topic, "approve")
        community.open_round()
    yield app, {"X-Results-Key": key}
    state.of(app).close()


def problems(caplog) -> list[str]:
    """Log records that say something went wrong on the server (an unexpected error, a traceback)."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]


def nested(depth: int, field: str | None = None) -> bytes:
    body = "[" * depth + "]" * depth
    return (json.dumps({field: "@"}).replace('"@"', body) if field else body).encode()


@pytest.mark.parametrize(("method", "path", "field"), JSON_ROUTES)
def test_json_nested_too_deeply_is_400_naming_the_problem(ready, caplog, method, path, field):
    app, headers = ready
    client = app.test_client()
    bodies = [
        nested(20_000),
        nested(20_000, field),
        b'{"x":' * 10_000 + b"1" + b"}" * 10_000,
        b"[" * 60_000,
        nested(MAX_JSON_DEPTH, field),
    ]  # one level over the limit
    assert all(len(body) < 64 * 1024 for body in bodies)
    with caplog.at_level(logging.WARNING):
        for body in bodies:
            response = client.open(path, method=method, data=body, content_type="application/json", headers=headers)
            assert response.status_code == 400, (body[:40], response.get_json())
            assert "nested too deeply" in response.get_json()["error"].lower()
    assert problems(caplog) == []
    assert "RecursionError" not in caplog.text and "Traceback" not in caplog.text


def test_json_nesting_within_the_limit_is_judged_on_its_content(ready):
    app, headers = ready
    client = app.test_client()
    # MAX_JSON_DEPTH levels in all: the body's object and 31 arrays under "answers".
    response = client.post(
        "/api/v1/responses", data=nested(MAX_JSON_DEPTH - 1, "answers"), content_type="application/json"
    )
    assert response.status_code == 422
    # Brackets inside strings are text, not nesting.
    title = "[{" * 300 + '\\"[' * 50
    response = client.post("/api/v1/topics", json={"title": title[:120]}, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert client.post("/api/v1/responses", json={"answers": FULL_ANSWERS}).status_code == 201


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        (b"[]", False),
        (b"[" * 33, True),
        (b"[" * 32, False),
        (b'["' + b"[" * 100 + b'"]', False),
        (b'["\\"' + b"[" * 100 + b'"]', False),
        (b'{"a":' * 33 + b"1" + b"}" * 33, True),
        (("[" * 40 + "]" * 40).encode("utf-16"), True),
        (("[" * 20 + "]" * 20).encode("utf-16-le"), False),
        (b'"' + b"[" * 50, False),  # an unclosed string: the parser refuses it
    ],
)
def test_json_too_deep(text, deep):
    assert json_too_deep(text) is deep


BAD_PATHS = [
    "/assets/x/%00",
    "/assets/x/a%00b",
    "/assets/x/pulse.css%00",
    "/assets/x/%ff",
    "/assets/x/%ff%fe%00",
    "/assets/x/" + "a" * 5000,
    "/assets/x/" + "a/" * 3000,
    "/assets/x/" + "%C3%BC" * 300,
    "/assets/x/../../../etc/passwd",
    "/assets/x/%2e%2e/%2e%2e/etc/passwd",
    "/assets/x/%c0%ae%c0%ae/x",
    "/static/%00",
    "/static/" + "a" * 5000,
    "/static/..%2f..%2fetc/passwd",
    "/%00",
    "/results%00",
    "/results/%00",
    "/survey/%ff",
    "/api/v1/%00",
    "/admin/%00",
    "/" + "%F0%9F%98%80" * 50,
]


def test_bad_paths_are_404_without_a_traceback(ready, caplog):
    app, _ = ready
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        for path in BAD_PATHS:
            assert client.get(path).status_code == 404, path[:60]
    assert problems(caplog) == []


# A Host header Werkzeug cannot make a URL builder for: the error page's own links could not be
# built either, and it was a 500 on every page.
BAD_HOSTS = ["a" * 64 + ".example", "a..b", ".example", "b.example.."]


@pytest.mark.parametrize("path", ["/", "/survey", "/feed.atom", "/nope", "/admin", "/api/v1/benchmarks"])
def test_a_host_header_that_is_no_host_name_is_400_saying_so(ready, caplog, path):
    app, _ = ready
    client = app.test_client()
    with caplog.at_level(logging.WARNING):
        for host in BAD_HOSTS:
            response = client.get(path, headers={"Host": host})
            assert response.status_code == 400, host
            said = response.get_json()["error"] if path.startswith("/api/") else response.get_data(as_text=True)
            assert "Host header is not a valid host name" in said
    assert problems(caplog) == []


# ------------------------------------------------------------------ Hypothesis

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "\x00", "\ud800", "x" * 2000, "../../etc", "=cmd|' /C calc'!A0"])
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=40,
)


def _dumps(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _wrapped(field: str):
    return st.one_of(
        json_value.map(lambda v: _dumps({field: v})),
        st.tuples(json_value, json_value).map(lambda vs: _dumps({field: vs[0], "description": vs[1]})),
        json_value.map(_dumps),
        st.builds(
            lambda d, f, kind: nested(d, f if kind else None), st.integers(0, 40_000), st.just(field), st.booleans()
        ),
        st.builds(lambda d, inner: b"[" * d + inner + b"]" * d, st.integers(0, 3000), st.binary(max_size=30)),
        st.builds(lambda d: b'{"a":' * d + b"0" + b"}" * d, st.integers(0, 12_000)),
        st.sampled_from(
            [
                b"",
                b"1" * 5000,
                b"1e999999",
                b"-0",
                b"NaN",
                b'"\\ud800"',
                b'{"a":1,"a":2}',
                b"\xef\xbb\xbf{}",
                b'{"answers": {"practice_type": "\\u0000"}}',
                b"[" * 65_000,
            ]
        ),
        st.binary(max_size=300),
    )


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_odd_json_bodies_never_5xx(ready, caplog, data):
    app, headers = ready
    method, path, field = data.draw(st.sampled_from(JSON_ROUTES))
    body = data.draw(_wrapped(field))
    content_type = data.draw(
        st.sampled_from(["application/json", "application/json; charset=utf-8", "application/json; charset=latin-1"])
    )
    caplog.clear()
    response = app.test_client().open(
        path, method=method, data=body, content_type=content_type, headers=headers if data.draw(st.booleans()) else {}
    )
    assert response.status_code < 500, (path, body[:80], response.get_data()[:200])
    assert problems(caplog) == []


def get_routes(app) -> list[str]:
    """Every GET rule, its variable parts as "<>" to fill in."""
    return [re.sub(r"<[^>]*>", "<>", rule.rule) for rule in app.url_map.iter_rules() if "GET" in rule.methods]


segment = st.one_of(
    st.text(max_size=40).map(lambda t: urllib.parse.quote(t.encode("utf-8", "surrogatepass"), safe="")),
    st.binary(max_size=40).map(lambda b: urllib.parse.quote(b, safe="")),
    st.sampled_from(
        [
            "..",
            ".",
            "%00",
            "a%00b",
            "%ff",
            "%2e%2e",
            "%2f",
            "%5c",
            "%c0%ae",
            "a" * 300,
            "a" * 5000,
            "%F0%9F%98%80" * 80,
            "pulse.css",
            "vendor/plotly.min.js",
            "..%2f..%2fetc%2fpasswd",
            "~root",
        ]
    ),
)


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_odd_paths_never_5xx(ready, caplog, data):
    app, _ = ready
    route = data.draw(st.sampled_from(get_routes(app)))
    path = route
    while "<>" in path:
        path = path.replace("<>", data.draw(segment), 1)
    if data.draw(st.booleans()):  # something after the route
        path = path.rstrip("/") + "/" + "/".join(data.draw(st.lists(segment, min_size=1, max_size=4)))
    if data.draw(st.booleans()):
        path += "?" + data.draw(segment) + "=" + data.draw(segment)
    # "//x" would be a network-path reference: the test client takes x for a host name.
    path = "/" + path.lstrip("/")
    caplog.clear()
    response = app.test_client().get(path)
    assert response.status_code < 500, (path[:200], response.status_code)
    assert problems(caplog) == []
