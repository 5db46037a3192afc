"""The app's own time per request, in this process: no server, no socket, no other thread.

What http_bench.py measures through gunicorn is mostly gunicorn's work for a cached read; this
calls the WSGI app directly, so what Pulse adds to Flask shows: each read of http_bench.py
(`/api/v1/benchmarks`, `/results`, `/results` with a participant's session cookie) against a bare
Flask app returning the same bytes, over a SQLite database filled as http_bench.py fills it.
Prints the median of --runs runs of --requests requests each, in microseconds per request, with
the ratio bare / Pulse. Usage:

    python benchmarks/wsgi_bench.py [--size 10000] [--runs 5] [--requests 3000] [--profile PATH]

--profile PATH also prints cProfile's 40 most expensive calls (cumulative) for that path (with
a key: "/results (key)").
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench  # noqa: E402  (this folder's module: the same database fill)

from survey_app import create_app, migrate  # noqa: E402

READS = (("/api/v1/benchmarks", False), ("/results", False), ("/results", True))


def environ(path: str, cookie: str | None) -> dict:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "wsgi.errors": sys.stderr,
    }
    if cookie:
        env["HTTP_COOKIE"] = cookie
    return env


def call(app, path: str, cookie: str | None) -> bytes:
    status = []
    body = b"".join(app(environ(path, cookie), lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("200"), status[0]
    return body


def per_request(app, path: str, cookie: str | None, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call(app, path, cookie)
    return (time.perf_counter() - started) / n * 1e6


def bare_app(bodies: dict[str, bytes]) -> Flask:
    bare = Flask("bare")

    @bare.get("/<path:name>")
    def fixed(name):
        return bodies[name]

    return bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = http_bench.fresh_database("sqlite", tmp)
    migrate.upgrade(url)
    _, cookie = http_bench.fill(url, args.size, http_bench.program_surveys(5, tmp), None)
    settings = {"DATABASE_URL": url, "SECRET_KEY": http_bench.SECRET, "PULSE_ENV": "production"}
    app = create_app(settings | {"PULSE_RATELIMIT_ENABLED": False})
    print(f"SQLite, {args.size} responses; median of {args.runs} runs of {args.requests} requests, µs per request")
    for path, keyed in READS:
        jar = cookie if keyed else None
        body = call(app, path, jar)
        bare = bare_app({path.lstrip("/"): body})
        call(bare, path, None)
        ours, ceiling = [], []
        for _ in range(args.runs):
            ours.append(per_request(app, path, jar, args.requests))
            ceiling.append(per_request(bare, path, None, args.requests))
        label = path + (" (key)" if keyed else "")
        pulse_us, bare_us = statistics.median(ours), statistics.median(ceiling)
        print(
            f"{label:<22} pulse {pulse_us:6.0f} (min {min(ours):.0f}, max {max(ours):.0f})   "
            f"bare {bare_us:5.0f}   bare/pulse {bare_us / pulse_us:.2f}   {len(body):,} bytes"
        )
        if args.profile is not None and args.profile in (label, None if keyed else path):
            profile = cProfile.Profile()
            profile.runcall(per_request, app, path, jar, args.requests)
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(40)
            print(out.getvalue())


if __name__ == "__main__":
    main()
