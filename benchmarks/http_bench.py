"""HTTP throughput of `pulse serve` against a bare Flask + gunicorn ceiling, driven by wrk.

Prints, for SQLite and PostgreSQL, at each response count: reads (/api/v1/benchmarks, and
/results without and with a results key, vs a bare app serving the same bytes) and submissions
(POST /api/v1/responses vs a bare one-row insert into the same table), each as the median of
--runs runs with min-max, p50/p99 latency, and the ratio to the ceiling. Every 201 is checked
against the rows stored. The database holds the survey program: --surveys surveys, the served
one with each size's responses and every other survey (more waves of it, waves of the comfort
survey) a quarter as many, each with its own released snapshot. The key belongs to a response
the served snapshot counts, held in the browser session. Run on its own, never in the tests:

    python benchmarks/http_bench.py --db sqlite --sizes 10000,1000000 --runs 3 --duration 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from survey_app import (  # noqa: E402
    create_app,
    demo,
    migrate,
    participants,
    program,
    program_queries,
    snapshots,
    state,
    storage,
)
from survey_app.pipeline.disclosure import Disclosure  # noqa: E402
from survey_app.questions import parse_survey  # noqa: E402

SECRET = "benchmark-" + "k" * 40
PG_ADMIN = os.environ.get("PULSE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ANSWERS = {
    "practice_type": "psychiatry",
    "discharge_checks": ["vitals", "emotional_checkin"],
    "first_followup": "within_24h",
    "mood_tracking": "every_touchpoint",
    "integration_support": ["group_integration"],
    "digital_tools": ["mood_app"],
    "after_hours": "on_call",
    "followup_completion": "pct_90_plus",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, process: subprocess.Popen) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("server exited") from None
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def start(cmd: list[str], env: dict, probe: str) -> subprocess.Popen:
    process = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_up(probe, process)
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000}[unit]


def wrk(url: str, duration: int, connections: int, script: Path | None = None, cookie: str | None = None) -> dict:
    """One wrk run: requests/s, p50/p99 in ms, 2xx count and errors."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", str(script)]
    if cookie:
        cmd[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": to_ms(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1)),
        "p99": to_ms(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1)),
        "ok": total - non2xx,
        "errors": non2xx + socket_errors,
    }


def summary(runs: list[dict]) -> str:
    rps = [r["rps"] for r in runs]
    return (
        f"{statistics.median(rps):8.0f} req/s (min {min(rps):.0f}, max {max(rps):.0f}), "
        f"p50 {statistics.median(r['p50'] for r in runs):6.1f} ms, "
        f"p99 {statistics.median(r['p99'] for r in runs):6.1f} ms, "
        f"errors {sum(r['errors'] for r in runs)}"
    )


def ratio(ours: list[dict], ceiling: list[dict]) -> str:
    share = statistics.median(r["rps"] for r in ours) / statistics.median(r["rps"] for r in ceiling)
    return f"{share:.2f}x of the ceiling"


def fresh_database(kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.sqlite3'}"
    name = f"pulse_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def server_env(url: str) -> dict:
    return os.environ | {
        "SECRET_KEY": SECRET,
        "DATABASE_URL": url,
        "PULSE_RATELIMIT_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }


def start_pulse(url: str, args) -> tuple[subprocess.Popen, str]:
    """`pulse serve` on a free port: (process, base URL)."""
    port = free_port()
    process = start(
        [
            sys.executable,
            "-m",
            "survey_app",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
        ],
        server_env(url),
        f"http://127.0.0.1:{port}/api/v1/survey",
    )
    return process, f"http://127.0.0.1:{port}"


def start_bare(url: str, args, bodies: Path | None = None) -> tuple[subprocess.Popen, str]:
    """The bare ceiling on a free port, serving the pages saved in bodies: (process, base URL)."""
    port = free_port()
    process = start(
        [sys.executable, str(ROOT / "benchmarks" / "bare_app.py"), str(port), str(args.workers), str(args.threads), url]
        + ([str(bodies)] if bodies else []),
        server_env(url),
        f"http://127.0.0.1:{port}/bytes/api",
    )
    return process, f"http://127.0.0.1:{port}"


def count_rows(url: str, survey: tuple[str, int] | None = None) -> int:
    """Responses stored for one survey version; for every version of the served survey without one."""
    engine = storage.make_engine(url)
    with engine.connect() as conn:
        if survey is None:
            n = conn.execute(text("SELECT count(*) FROM responses WHERE survey_id = 'pulse-aftercare'")).scalar()
        else:
            n = conn.execute(
                text("SELECT count(*) FROM responses WHERE survey_id = :s AND survey_version = :v"),
                {"s": survey[0], "v": survey[1]},
            ).scalar()
    engine.dispose()
    return n


def warm_up(pulse_url: str, bare_url: str, args, script: Path | None = None, cookie: str | None = None) -> None:
    """Two seconds of the same load on both servers, not counted: a worker's first requests pay
    its start (templates compiled, the listener connected), which moved a first run by half."""
    wrk(pulse_url, 2, args.connections, script, cookie)
    wrk(bare_url, 2, args.connections, script)


def post_script(tmp: Path) -> Path:
    """A wrk script that POSTs one full response as JSON."""
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps({'answers': ANSWERS}))}\n"
    )
    return script


def bench_submissions(kind: str, size: int, url: str, args, tmp: Path) -> None:
    """Submissions into the database as filled (the served survey holding `size` responses)."""
    script = post_script(tmp)
    pulse, pulse_url = start_pulse(url, args)
    bare, bare_url = start_bare(url, args)
    ours, ceiling = [], []
    try:
        warm_up(pulse_url + "/api/v1/responses", bare_url + "/insert", args, script)
        for _ in range(args.runs):
            before = count_rows(url)
            run = wrk(pulse_url + "/api/v1/responses", args.duration, args.connections, script)
            stored = count_rows(url) - before
            # wrk stops with up to one request in flight per connection: those may be stored unanswered.
            if not run["ok"] <= stored <= run["ok"] + args.connections:
                run["errors"] += abs(stored - run["ok"])
            ours.append(run)
            ceiling.append(wrk(bare_url + "/insert", args.duration, args.connections, script))
    finally:
        stop(pulse)
        stop(bare)
    print(f"[{kind}] {size:>8} {'POST responses':<20} pulse: {summary(ours)}")
    print(f"[{kind}] {size:>8} {'(one-row insert)':<20} bare : {summary(ceiling)}  -> {ratio(ours, ceiling)}")


def program_surveys(count: int, tmp: Path) -> list[Path]:
    """Survey files besides questions.yaml, up to `count` surveys in all: more waves of the first
    survey and of the comfort survey (the same questions under a new version)."""
    files = []
    for n in range(1, count):
        first = n % 2 == 0
        source = ROOT / ("questions.yaml" if first else "surveys/patient-comfort.yaml")
        version = 1 + n // 2 if first else (n + 1) // 2
        path = tmp / f"survey-{n}.yaml"
        path.write_text(re.sub(r"(?m)^version: \d+$", f"version: {version}", source.read_text()))
        files.append(path)
    return files


def fill(url: str, n: int, surveys: list[Path], key: str | None) -> tuple[str, str]:
    """n responses in the served survey (questions.yaml, current), n/4 in each other survey, each
    with a fresh released snapshot. `key` is a participant's results key from an earlier fill
    (None: the first synthetic response of the served survey gets one). Returns the key and a
    session cookie holding it, as a browser that answered keeps it."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET, "PULSE_ENV": "production"})
    engine = state.of(app).engine
    with app.app_context():
        served = program.current_survey()
        for path in surveys:
            program.add(path)
        others = [parse_survey(p.read_text(), str(p)) for p in surveys]
        for survey, size in [(served, n)] + [(s, n // 4) for s in others]:
            # The app context's read session holds a read transaction, and SQLite cannot reset its
            # WAL while one is open: left open through a million rows, the WAL grew to 43 GB.
            storage.end_request_reads()
            have = count_rows(url, (survey.id, survey.version))
            if size > have:
                kept = demo.fill(engine, survey, size - have, SECRET, seed=size + survey.version, keep_keys=1)
                if survey is served and key is None:
                    key = kept[0]
            with storage.writer(engine) as db:
                program_queries.set_survey_state(
                    db, survey.id, survey.version, released=True, opened_week=storage.iso_week()
                )
            snapshots.rebuild(engine, survey, Disclosure(), full=True)  # counts the participant too
        assert key is not None
        # As a browser holds it after typing the key in the form: the key, and the CSRF secret
        # that form's page put in the session (without it each response would set a new one).
        session = {
            participants.SESSION_KEYS: {f"{served.id}@{served.version}": key},
            "csrf_token": secrets.token_hex(20),
        }
        signed = app.session_interface.get_signing_serializer(app).dumps(session)
        cookie = f"{app.config['SESSION_COOKIE_NAME']}={signed}"
    state.of(app).close()
    return key, cookie


READS = (
    # (label, path, with the participant's session cookie, the bare app's copy of the same bytes)
    ("/api/v1/benchmarks", "/api/v1/benchmarks", False, "api"),
    ("/results", "/results", False, "results"),
    ("/results (key)", "/results", True, "results-key"),
)


def bench_reads(kind: str, size: int, url: str, cookie: str, args, tmp: Path) -> None:
    bodies = tmp / f"{kind}-{size}"
    bodies.mkdir()
    pulse, pulse_url = start_pulse(url, args)
    bare = None
    try:
        # The ceiling serves exactly the bytes Pulse serves for this snapshot.
        for _, path, keyed, name in READS:
            request = urllib.request.Request(pulse_url + path, headers={"Cookie": cookie} if keyed else {})
            page = urllib.request.urlopen(request).read()
            if keyed:
                assert b"Your clinic" in page, "the keyed page shows no scorecard"
            (bodies / name).write_bytes(page)
        bare, bare_url = start_bare(url, args, bodies)
        for label, path, keyed, name in READS:
            ours, ceiling = [], []
            warm_up(pulse_url + path, bare_url + f"/bytes/{name}", args, cookie=cookie if keyed else None)
            for _ in range(args.runs):
                ours.append(wrk(pulse_url + path, args.duration, args.connections, cookie=cookie if keyed else None))
                ceiling.append(wrk(bare_url + f"/bytes/{name}", args.duration, args.connections))
            print(f"[{kind}] {size:>8} {label:<20} pulse: {summary(ours)}")
            print(f"[{kind}] {size:>8} {'(same bytes)':<20} bare : {summary(ceiling)}  -> {ratio(ours, ceiling)}")
    finally:
        stop(pulse)
        if bare is not None:
            stop(bare)


def bench(kind: str, args, tmp: Path) -> None:
    """Each size in turn on one database: filled, then reads, then submissions (which add rows)."""
    url = fresh_database(kind, tmp)
    migrate.upgrade(url)
    surveys = program_surveys(args.surveys, tmp)
    key = None
    try:
        for size in args.sizes:
            started = time.perf_counter()
            key, cookie = fill(url, size, surveys, key)
            print(
                f"[{kind}] filled to {size} responses (+{size // 4} in each of {len(surveys)} other surveys) "
                f"in {time.perf_counter() - started:.0f} s"
            )
            if args.what in ("reads", "both"):
                bench_reads(kind, size, url, cookie, args, tmp)
            if args.what in ("submissions", "both"):
                bench_submissions(kind, size, url, args, tmp)
    finally:
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--what", choices=["submissions", "reads", "both"], default="both")
    parser.add_argument("--sizes", default="10000,1000000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--surveys", type=int, default=5, help="surveys in the database")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    print(
        f"machine: {os.cpu_count()} cores; gunicorn {args.workers} workers x {args.threads} threads for both "
        f"servers; wrk 2 threads, {args.connections} connections, {args.duration} s x {args.runs} runs"
    )
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            bench(kind, args, Path(tmp))


if __name__ == "__main__":
    main()
