"""Where each request's time goes: py-spy flame graphs of `pulse serve` under wrk load.

Serves exactly as benchmarks/http_bench.py does (its database fill, its gunicorn settings, its
wrk POST script), then, for each request, runs wrk and py-spy over every worker at once, twice:
once writing a flame graph (docs/perf/<db>-<name>.svg) and once writing collapsed stacks, from
which it prints the share of the workers' busy samples under each part of the request path.
py-spy is needed (pip install py-spy; it is no dependency of Pulse). Run on its own:

    python benchmarks/profile_http.py --db sqlite --size 10000 --duration 10
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import http_bench as bench  # noqa: E402

# The parts of the request path, each found by frames in a sampled stack. Shares are inclusive (a
# part's callees count in it) and parts nest (the view holds the lookups), so they do not add up.
PARTS = [
    ("gunicorn around the app: its event loop, keep-alive, parsing, writing", ("!FastReads.__call__ (",)),
    ("  of which writing the response to the socket", ("Response.write (gunicorn",)),
    ("a read served again from its kept copy (fast_reads.py)", ("Kept.serve (",)),
    ("  the freshness check (SQLite: data_version)", ("probe_version (",)),
    ("Flask: the whole request in the app", ("Flask.wsgi_app (",)),
    ("  session: open and save the cookie", ("open_session (", "save_session (")),
    ("  CSRF: check, or make a token", ("csrf_protect (", "generate_csrf (")),
    ("  rate limit (Flask-Limiter, its store)", ("Limiter._check_request_limit (",)),
    ("  the view", ("Flask.dispatch_request (",)),
    ("    current-survey lookup (program.current_survey)", ("current_survey (survey_app/program.py",)),
    ("    snapshot probe and served snapshot (snapshots.served)", ("served (survey_app/snapshots.py",)),
    ("    probe-pool queries (storage.probe_row, in the two above)", ("probe_row (",)),
    ("    results key lookup (participants.response_for)", ("response_for (survey_app/participants.py",)),
    ("    validation (api read, validate_answers)", ("read (survey_app/views/api.py", "validate_answers (")),
    ("    SQLite BEGIN (a write's IMMEDIATE waits for the lock)", ("_sqlite_begin (",)),
    (
        "    the insert (response_queries.store_response_if_open)",
        ("store_response_if_open (", "save_response_if_open ("),
    ),
    ("      SQLite: waiting for the writers' turn, and holding it", ("_write_turn (",)),
    ("      the statement at the driver (its commit with it, in autocommit)", ("do_execute (",)),
    ("    a transaction's commit (ORM writers)", ("SessionTransaction.commit (", "RootTransaction._do_commit (")),
    ("    rebuild check (snapshots.rebuild_if_due)", ("rebuild_if_due (",)),
    ("    rendering (Jinja)", ("Template.render (",)),
    ("    JSON encoding (jsonify)", ("jsonify (",)),
    ("  security headers (headers._add_headers)", ("_add_headers (",)),
    ("  compression (compression._compress)", ("_compress (survey_app/compression.py",)),
    ("  closing the read session (a ROLLBACK)", ("_close_session (",)),
]
# A thread whose innermost frame is one of these is waiting for work, not serving a request; so is
# a timer (the scheduler's, a catch-up rebuild's) waiting for its time.
IDLE = ("_worker (concurrent/futures/thread.py", "EpollSelector.select (", "select (selectors.py")
TIMER_WAITING = ("Timer.run (", "Condition.wait (")


def workers_of(master: int) -> list[int]:
    """The gunicorn workers: the children of the master process."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def shares(collapsed: Path) -> tuple[int, list[tuple[str, float]]]:
    """Busy samples, and the share of them under each part, from py-spy's collapsed (raw) stacks."""
    counts: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        if not stack or not n.isdigit() or leaf.startswith(IDLE):
            continue
        if TIMER_WAITING[0] in stack and leaf.startswith(TIMER_WAITING[1]):
            continue
        busy += int(n)
        for name, patterns in PARTS:
            if any(p[1:] not in stack if p[0] == "!" else p in stack for p in patterns):
                counts[name] += int(n)
    return busy, [(name, counts[name] / (busy or 1)) for name, _ in PARTS if counts[name]]


def print_shares(collapsed: Path) -> None:
    busy, parts = shares(collapsed)
    print(f"  {busy} busy samples; share of them under each part:")
    for part, share in parts:
        print(f"  {share:6.1%}  {part}")


# py-spy's own options: ["--gil"] samples only the thread holding the GIL, the Python work that
# competes for it, leaving out the threads that wait (for the writers' turn, a socket, a timer).
SPY_OPTIONS: list[str] = []


def spy(pids: list[int], out: Path, fmt: str, duration: int) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "-d", str(duration), "-r", "200", "-f", fmt, "-o", f"{out}.{pid}"]
            + SPY_OPTIONS,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def profile(name: str, url: str, pids: list[int], args, out_dir: Path, script: Path | None, headers: list[str]):
    """Two loaded runs: a flame graph of the first worker, and collapsed stacks of all workers."""
    for fmt in ("flamegraph", "raw"):
        target = out_dir / f"{args.db}-{name}" if fmt == "flamegraph" else Path(args.tmp) / f"{args.db}-{name}"
        spies = spy(pids[:1] if fmt == "flamegraph" else pids, target, fmt, args.duration)
        time.sleep(0.5)
        cmd = ["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
        for header in headers:
            cmd += ["-H", header]
        if script:
            cmd += ["-s", str(script)]
        result = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
        for s in spies:
            s.wait()
        if fmt == "flamegraph":
            Path(f"{target}.{pids[0]}").rename(f"{target}.svg")
            rps = next(line for line in result.splitlines() if "Requests/sec" in line).split()[-1]
        else:
            merged = Path(f"{target}.collapsed")
            merged.write_text("".join(Path(f"{target}.{pid}").read_text() for pid in pids))
    print(f"\n[{args.db}] {name}: {rps} req/s under py-spy (flame graph: {out_dir / f'{args.db}-{name}.svg'})")
    print_shares(merged)


def session_cookie(base: str, key: str) -> str:
    """A signed session holding the key, as a participant's browser has after submitting."""
    request = urllib.request.Request(base + "/results", headers={"Cookie": f"pulse_key={key}"})
    response = urllib.request.urlopen(request)
    for header, value in response.headers.items():
        if header.lower() == "set-cookie" and value.startswith("pulse_session="):
            return value.split(";", 1)[0]
    raise RuntimeError("no session cookie came back")


def limited_env(url: str) -> dict:
    """http_bench's server environment with the rate limits on, as in production, but with budgets
    no run spends: the limiter's work is then in the profile."""
    return _bare_env(url) | {
        "PULSE_RATELIMIT_ENABLED": "true",
        "PULSE_SUBMIT_LIMIT": "100000000 per hour",
        "PULSE_SUBMIT_LIMIT_WIDE": "100000000 per hour",
        # Several workers count together only in a shared store, as in production (a database of
        # its own, emptied by nothing but expiry: the budgets above are never reached).
        "PULSE_RATELIMIT_STORAGE_URI": os.environ.get("PULSE_PROFILE_REDIS", "redis://127.0.0.1:6379/13"),
    }


_bare_env = bench.server_env
bench.server_env = limited_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--surveys", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10, help="seconds per profiled wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "perf")
    parser.add_argument("--stacks", type=Path, help="keep the collapsed stacks in this folder")
    parser.add_argument("--read", type=Path, help="only print the shares from stacks kept with --stacks")
    parser.add_argument("--only", help="comma-separated request names to profile (default: all)")
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (CPU work)")
    parser.add_argument(
        "--without-limits",
        action="store_true",
        help="rate limits off, as http_bench.py serves (default: on, with Redis)",
    )
    args = parser.parse_args()
    if args.without_limits:
        bench.server_env = _bare_env
    if args.gil:
        SPY_OPTIONS.append("--gil")
    if args.read:
        for collapsed in sorted(args.read.glob("*.collapsed")):
            print(f"\n{collapsed.stem}:")
            print_shares(collapsed)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = args.stacks or tmp
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
        url = bench.fresh_database(args.db, Path(tmp))
        bench.migrate.upgrade(url)
        try:
            bench.fill(url, args.size, bench.program_surveys(args.surveys, Path(tmp)), None)
            pulse, base = bench.start_pulse(url, args)
            try:
                pids = workers_of(pulse.pid)
                post = bench.post_script(Path(tmp))
                body = json.dumps({"answers": bench.ANSWERS}).encode()
                request = urllib.request.Request(
                    base + "/api/v1/responses", body, {"Content-Type": "application/json"}, method="POST"
                )
                key = json.load(urllib.request.urlopen(request))["results_key"]
                cookie = session_cookie(base, key)
                # Identity encoding as http_bench's wrk asks; the Accept-Encoding a browser sends.
                browser = "Accept-Encoding: gzip, deflate, br"
                runs = {
                    "benchmarks": (base + "/api/v1/benchmarks", None, []),
                    "benchmarks-compressed": (base + "/api/v1/benchmarks", None, [browser]),
                    "benchmarks-key": (base + "/api/v1/benchmarks", None, [f"X-Results-Key: {key}"]),
                    "results": (base + "/results", None, []),
                    "results-compressed": (base + "/results", None, [browser]),
                    "results-key": (base + "/results", None, [browser, f"Cookie: {cookie}"]),
                    "submission": (base + "/api/v1/responses", post, []),
                }
                chosen = args.only.split(",") if args.only else list(runs)
                for name in chosen:
                    path, script, headers = runs[name]
                    profile(name, path, pids, args, args.out, script, headers)
            finally:
                bench.stop(pulse)
        finally:
            bench.drop_database(url)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
