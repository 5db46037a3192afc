"""Benchmark rebuild speed: load from the database + aggregate + snapshot write, against a baseline.

For each database and size it prints the median (min-max) of --runs runs, each in a fresh
process, with that process's peak memory:
  first full     the first `pulse snapshot --full` after the rows were written: it also flags them all
  pulse full     `pulse snapshot --full`: every response read, tallied, published, stored
  baseline       the same rows fetched with a plain DB-API cursor and grouped with pandas
                 (value_counts of the answer strings: the least work any pipeline must do)
  pulse +1000    an incremental rebuild after 1,000 new responses (its cost follows the new rows)
Run on its own, never inside the tests:

    python benchmarks/pipeline_bench.py --db sqlite --sizes 10000,100000,1000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from survey_app import demo, keys, migrate, response_queries, snapshots, storage  # noqa: E402
from survey_app.pipeline.disclosure import Disclosure  # noqa: E402
from survey_app.questions import load_survey  # noqa: E402

SECRET = "benchmark-" + "k" * 40
PG_ADMIN = os.environ.get("PULSE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
# Distinct synthetic answer sets to draw rows from (--pool; 0: every response its own draw).
POOL = 20_000
BATCH = 50_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(fn) -> dict:
    """Run fn in this process: its wall time, this process's CPU time (every thread; not the
    database server's) and peak memory. On a shared machine CPU time is the steadier figure."""
    started, cpu = time.perf_counter(), _cpu()
    fn()
    return {"seconds": time.perf_counter() - started, "cpu": _cpu() - cpu, "peak_mb": peak_mb()}


def peak_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's ru_maxrss carries over an exec, so a child started by a parent holding a million
    rows would report the parent's peak; VmHWM in /proc belongs to this program alone.
    """
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pulse_full(url: str) -> None:
    survey = load_survey(ROOT / "questions.yaml")
    engine = storage.make_engine(url)
    snapshots.rebuild(engine, survey, Disclosure(), full=True)


def run_pulse_incremental(url: str) -> None:
    survey = load_survey(ROOT / "questions.yaml")
    engine = storage.make_engine(url)
    if snapshots.rebuild(engine, survey, Disclosure()) is None:
        raise RuntimeError("incremental rebuild stored nothing")


def run_baseline(url: str) -> None:
    import pandas as pd
    from sqlalchemy.engine import make_url

    query = "SELECT answers FROM responses WHERE survey_id = 'pulse-aftercare' AND survey_version = 1"
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(make_url(url).database)
    else:
        import psycopg

        parts = make_url(url)
        conn = psycopg.connect(host=parts.host, port=parts.port, user=parts.username, dbname=parts.database)
    cursor = conn.cursor()
    cursor.execute(query)
    frame = pd.DataFrame(cursor.fetchall(), columns=["answers"])
    frame["answers"].value_counts()
    conn.close()


CHILD = {"full": run_pulse_full, "incremental": run_pulse_incremental, "baseline": run_baseline}


def child(kind: str, url: str) -> dict:
    """One measured run in a fresh process, so peak memory belongs to that run alone."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, url], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fill(url: str, target: int, have: int, pool_size: int = POOL) -> None:
    survey = load_survey(ROOT / "questions.yaml")
    rng = np.random.default_rng(target)

    def texts(n: int) -> list[str]:
        return [json.dumps(a, separators=(",", ":"), sort_keys=True) for a in demo.synthetic_answers(survey, n, rng)]

    pool = texts(pool_size) if pool_size else []
    engine = storage.make_engine(url)
    done = have
    while done < target:
        size = min(BATCH, target - done)
        answers = [pool[i] for i in rng.integers(0, pool_size, size)] if pool_size else texts(size)
        rows = [(text, keys.keyed_hash(SECRET, "response", uuid.uuid4().hex)) for text in answers]
        with storage.writer(engine) as db:
            response_queries.add_responses(db, survey.id, survey.version, rows)
        done += size
    engine.dispose()


def database(kind: str, tmp: Path) -> str:
    from sqlalchemy import create_engine, text

    if kind == "sqlite":
        return f"sqlite:///{tmp / 'pipeline.sqlite3'}"
    name = f"pulse_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def settle(url: str) -> None:
    """VACUUM ANALYZE, as autovacuum does after a large update (and fresh planner statistics)."""
    from sqlalchemy import create_engine, text

    with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text("VACUUM ANALYZE responses" if url.startswith("postgresql") else "ANALYZE"))


def drop(url: str) -> None:
    from sqlalchemy import create_engine, text

    if url.startswith("postgresql"):
        with create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def line(label: str, runs: list[dict]) -> tuple[str, float, float]:
    seconds = [r["seconds"] for r in runs]
    median, cpu = statistics.median(seconds), statistics.median(r["cpu"] for r in runs)
    peak = max(r["peak_mb"] for r in runs)
    return (
        f"{label:<14} {median:8.3f} s (min {min(seconds):.3f}, max {max(seconds):.3f}), cpu {cpu:7.3f} s, "
        f"peak {peak:6.0f} MB",
        median,
        cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", default="10000,100000,1000000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--pool",
        type=int,
        default=POOL,
        help="distinct answer sets the rows are drawn from; 0: every row drawn afresh (few repeats)",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measured(lambda: CHILD[args.child[0]](args.child[1]))))
        return
    pool = f"drawn from {args.pool:,} answer sets" if args.pool else "each drawn afresh"
    print(f"machine: {os.cpu_count()} cores; median of {args.runs} runs, each in a fresh process; rows {pool}")
    for kind in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        with tempfile.TemporaryDirectory() as tmp:
            url = database(kind, Path(tmp))
            try:
                migrate.upgrade(url)
                have = 0
                for size in args.sizes:
                    fill(url, size, have, args.pool)
                    have = size
                    # The first full rebuild also flags every new row as counted: a one-off cost,
                    # shown apart. Then the dead row versions it left are cleaned up as autovacuum
                    # would, and full and baseline runs alternate, so that neither side gets a
                    # cleaner table or a quieter minute than the other.
                    first = child("full", url)
                    settle(url)
                    full, base = [], []
                    for _ in range(args.runs):
                        full.append(child("full", url))
                        base.append(child("baseline", url))
                    incremental = []
                    for _ in range(args.runs):
                        fill(url, have + 1000, have, args.pool)
                        have += 1000
                        incremental.append(child("incremental", url))
                    text_full, m_full, cpu_full = line("pulse full", full)
                    text_base, m_base, cpu_base = line("baseline", base)
                    text_inc, _, _ = line("pulse +1000", incremental)
                    print(f"[{kind}] {size:>8} responses")
                    print(f"    {line('first full', [first])[0]}   (flags all {size:,} rows as counted)")
                    print(f"    {text_full}   {m_full / m_base:.2f}x the baseline (cpu {cpu_full / cpu_base:.2f}x)")
                    print(f"    {text_base}")
                    print(f"    {text_inc}")
            finally:
                drop(url)


if __name__ == "__main__":
    main()
