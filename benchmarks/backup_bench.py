"""Backup and restore: time and peak memory at each size, and submissions while a backup runs.

For each database and size it prints the median (min-max) of --runs runs, each in a fresh
process, with that process's peak memory (a process that only imports Pulse is printed too, as
the floor):
  backup     `pulse backup` of the database (SQLite: VACUUM INTO; PostgreSQL: one REPEATABLE
             READ transaction streamed into the SQLite file), with the file's size
  restore    `pulse restore` of that file into a new, empty database of the same kind
Then, at the largest size, `POST /api/v1/responses` under wrk against `pulse serve`, runs
alternating between no backup and backups taken back to back for the whole run.
Run on its own, never inside the tests:

    python benchmarks/backup_bench.py --db both --sizes 100000,1000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from http_bench import count_rows, post_script, start_pulse, stop, summary, wrk  # noqa: E402
from pipeline_bench import database, drop, fill, line, measured, run_pulse_full  # noqa: E402

from survey_app import backup, migrate, restore, storage  # noqa: E402


def run_backup(url: str, path: str) -> None:
    engine = storage.make_engine(url)
    backup.write_backup(engine, Path(path))
    engine.dispose()


def run_restore(url: str, path: str) -> None:
    engine = storage.make_engine(url)
    restore.restore_backup(Path(path), engine)
    engine.dispose()


def run_idle(_url: str, _path: str) -> None:
    """Nothing: the peak memory of a process that imports Pulse."""


def run_backups_for(url: str, folder: str, seconds: str) -> dict:
    """Backups back to back for `seconds`, each deleted once written: how many, and their times."""
    engine = storage.make_engine(url)
    deadline, times = time.monotonic() + float(seconds), []
    while time.monotonic() < deadline:
        path = Path(folder) / f"loop-{len(times)}.sqlite3"
        started = time.perf_counter()
        backup.write_backup(engine, path)
        times.append(time.perf_counter() - started)
        path.unlink()
    engine.dispose()
    return {"backups": len(times), "seconds": times}


CHILD = {"backup": run_backup, "restore": run_restore, "idle": run_idle}


def child(kind: str, url: str, path: str) -> dict:
    """One measured run in a fresh process, so peak memory belongs to that run alone."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, url, path], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_sizes(kind: str, url: str, args, tmp: Path) -> None:
    """Backup and restore at every size, filling the database as it goes."""
    have = 0
    for size in args.sizes:
        started = time.perf_counter()
        fill(url, size, have)
        have = size
        run_pulse_full(url)  # a snapshot counts them, as in a running survey
        print(f"[{kind}] filled to {size} responses and built the snapshot in {time.perf_counter() - started:.0f} s")
        backups, restores, sizes = [], [], []
        for run in range(args.runs):
            path = tmp / f"{kind}-{size}-{run}.backup"
            backups.append(child("backup", url, str(path)))
            sizes.append(path.stat().st_size / 1e6)
            target = (
                database(kind, tmp / f"restore-{size}-{run}")
                if kind == "postgresql"
                else f"sqlite:///{tmp / f'restored-{size}-{run}.sqlite3'}"
            )
            try:
                restores.append(child("restore", target, str(path)))
            finally:
                drop(target)
                path.unlink()
                for leftover in tmp.glob(f"restored-{size}-{run}.sqlite3*"):
                    leftover.unlink()
        print(f"    {line('backup', backups)[0]}, file {statistics.median(sizes):.0f} MB")
        print(f"    {line('restore', restores)[0]}")


def settled_rows(url: str) -> int:
    """The responses stored once the requests still in flight when wrk stopped have finished."""
    rows = count_rows(url)
    while True:
        time.sleep(0.5)
        again = count_rows(url)
        if again == rows:
            return rows
        rows = again


def bench_load(kind: str, url: str, args, tmp: Path) -> None:
    """Submissions per second without and with backups running, alternating, at the database's size."""
    run_pulse_full(url)
    pulse, pulse_url = start_pulse(url, args)
    script = post_script(tmp)
    plain, during, loops = [], [], []
    try:
        for _ in range(args.runs):
            plain.append(wrk(pulse_url + "/api/v1/responses", args.duration, args.connections, script))
            before = settled_rows(url)
            looping = subprocess.Popen(
                [sys.executable, __file__, "--loop", url, str(tmp), str(args.duration)],
                stdout=subprocess.PIPE,
                text=True,
            )
            run = wrk(pulse_url + "/api/v1/responses", args.duration, args.connections, script)
            loops.append(json.loads(looping.communicate()[0].strip().splitlines()[-1]))
            stored = settled_rows(url) - before
            if not run["ok"] <= stored <= run["ok"] + args.connections:  # every 201 is a stored row
                run["errors"] += abs(stored - run["ok"])
            during.append(run)
    finally:
        stop(pulse)
    seconds = [s for loop in loops for s in loop["seconds"]]
    share = statistics.median(r["rps"] for r in during) / statistics.median(r["rps"] for r in plain)
    print(f"[{kind}] submissions, no backup      : {summary(plain)}")
    print(f"[{kind}] submissions, backups running: {summary(during)}  -> {share:.2f}x")
    print(
        f"[{kind}]   {sum(loop['backups'] for loop in loops)} backups taken meanwhile, median "
        f"{statistics.median(seconds):.1f} s each (under load)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", default="100000,1000000", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--loop", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measured(lambda: CHILD[args.child[0]](*args.child[1:]))))
        return
    if args.loop:
        print(json.dumps(run_backups_for(*args.loop)))
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    print(f"machine: {os.cpu_count()} cores; median of {args.runs} runs, each in a fresh process")
    floor = child("idle", "", "")
    print(f"a process that only imports Pulse peaks at {floor['peak_mb']:.0f} MB")
    for kind in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            url = database(kind, tmp)
            try:
                migrate.upgrade(url)
                bench_sizes(kind, url, args, tmp)
                bench_load(kind, url, args, tmp)
            finally:
                drop(url)


if __name__ == "__main__":
    main()
