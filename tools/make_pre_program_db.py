"""Make tests/data/pre-program.*: a database made by Pulse as released before the survey program.

tests/test_upgrade.py upgrades these files with today's code. They must be made by the code of
commit 16ea83d (the last release before surveys were stored in the database), never by
today's, so this script runs on that code and refuses any other:

    mkdir /tmp/old-pulse && git archive 16ea83d | tar -x -C /tmp/old-pulse
    PYTHONPATH=/tmp/old-pulse python tools/make_pre_program_db.py tests/data

It writes, into the folder given (none of the files may exist yet):
- pre-program.sqlite3: the SQLite database (schema 0005), as that Pulse left it, compacted;
- pre-program.backup: `pulse backup` of it, by that Pulse;
- pre-program.json: what the upgrade must keep: the results keys and their answers, the
  published figures and each key's "your clinic" as that Pulse served them, the survey's state,
  the topics, rounds and ballots, the admin login and the SECRET_KEY (the tests' own, not a secret).

Everything goes through that Pulse's own ways in: its API (through Flask's test client, as a
browser or a script would) for responses, proposals and ballots, its `pulse` command for the
organisers' part. 22 responses: automatic snapshots at 10, 15 and 20, so two responses are not
counted yet; four topics (three approved, one rejected); round 1 closed with five ballots,
round 2 open with three; one admin; three invite codes; results released, then the survey closed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

# tests/helpers.py SECRET: the upgraded database is served with it.
SECRET = "test-secret-" + "x" * 40
ADMIN = ("ada", "correct horse battery")
RESPONSES = 22
TOPICS = ("Comfort during sessions", "Integration groups", "Measuring outcomes", "Parking")
PRACTICE_TYPES = ("psychiatry", "dedicated_clinic", "anesthesia_pain", "telehealth")
COMMIT = "16ea83d"


def answers(i: int) -> dict:
    """Clinic i's answers to the aftercare survey: varied, and the same every time."""
    return {
        "practice_type": PRACTICE_TYPES[i % 4],
        "discharge_checks": (
            ["vitals"] + (["emotional_checkin"] if i % 3 else []) + (["ride_home"] if i % 5 == 0 else [])
        ),
        "first_followup": ("within_24h", "within_48h", "within_week")[i % 3],
        "mood_tracking": ("every_touchpoint", "regular_intervals", "never")[i % 3],
        "integration_support": ["group_integration"] + (["peer_community"] if i % 2 else []),
        "digital_tools": ["mood_app"] if i % 4 else ["none"],
        "after_hours": ("on_call", "crisis_line", "clinician_24_7")[i % 3],
        "followup_completion": ("pct_90_plus", "pct_75_89", "not_tracked")[i % 3],
    }


def pulse(env: dict, *args: str, stdin: str | None = None) -> str:
    """That Pulse's command line on the database; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "survey_app", *args], env=env, input=stdin, text=True, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"pulse {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder to write into (tests/data)")
    out = parser.parse_args().out.resolve()
    # Not find_spec: an editable install of today's Pulse would find its program.py for that package too.
    if (Path(importlib.util.find_spec("survey_app").origin).parent / "program.py").exists():
        raise SystemExit(f"this is today's Pulse; run this script on the code of {COMMIT} (see its docstring)")
    database, backup, facts = (out / f"pre-program.{ext}" for ext in ("sqlite3", "backup", "json"))
    for path in (database, backup, facts):
        if path.exists():
            raise SystemExit(f"{path} exists already; remove it first")

    from survey_app import create_app, state  # that Pulse, not today's

    env = {**os.environ, "SECRET_KEY": SECRET, "DATABASE_URL": f"sqlite:///{database}"}
    env.pop("PULSE_QUESTIONS", None)  # the survey that Pulse carries
    pulse(env, "migrate")
    app = create_app(
        {
            "SECRET_KEY": SECRET,
            "DATABASE_URL": env["DATABASE_URL"],
            "TESTING": True,
            "RATELIMIT_ENABLED": False,
            "PULSE_MIN_FILL_SECONDS": 0,
            "PULSE_SNAPSHOT_MIN_INTERVAL": 0,
        }
    )
    client = app.test_client()

    def api(method: str, path: str, body: dict | None = None, key: str | None = None, status: int = 200) -> dict:
        response = client.open(path, method=method, json=body, headers={"X-Results-Key": key} if key else {})
        if response.status_code != status:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.get_data(as_text=True)}")
        return response.get_json()

    results_keys = [
        api("POST", "/api/v1/responses", {"answers": answers(i)}, status=201)["results_key"] for i in range(RESPONSES)
    ]
    topics = [
        api(
            "POST",
            "/api/v1/topics",
            {"title": title, "description": f"About {title.lower()}."},
            key=results_keys[i],
            status=201,
        )["id"]
        for i, title in enumerate(TOPICS)
    ]
    for topic_id in topics[:3]:
        pulse(env, "topics", "approve", topic_id)
    pulse(env, "topics", "reject", topics[3])
    ballots = {1: {i: topics[: 1 + i % 3] for i in range(5)}, 2: {i: [topics[i % 3]] for i in range(5, 8)}}
    pulse(env, "round", "open")
    for i, approve in ballots[1].items():
        api("PUT", "/api/v1/ballot", {"approve": approve}, key=results_keys[i])
    tally = pulse(env, "round", "close")
    pulse(env, "round", "open")
    for i, approve in ballots[2].items():
        api("PUT", "/api/v1/ballot", {"approve": approve}, key=results_keys[i])
    pulse(env, "create-admin", ADMIN[0], stdin=f"{ADMIN[1]}\n{ADMIN[1]}\n")
    invites = len(pulse(env, "invites", "3").split())
    pulse(env, "release")
    pulse(env, "survey", "close")

    public = api("GET", "/api/v1/benchmarks")
    yours = [api("GET", "/api/v1/benchmarks", key=key)["you"] for key in results_keys]
    topics_view = api("GET", "/api/v1/topics")
    state.of(app).close()

    pulse(env, "backup", str(backup))
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")  # no freed pages: the file holds what that Pulse kept, and stays small
        db.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it; Pulse turns WAL on again
        counts = {
            name: db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # noqa: S608 - names from the file
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    facts.write_text(
        json.dumps(
            {
                "made_by": f"Pulse at commit {COMMIT}, by tools/make_pre_program_db.py",
                "secret_key": SECRET,
                "survey": {"id": public["survey"]["id"], "version": public["survey"]["version"]},
                "state": {"is_open": False, "released": True},
                "responses": RESPONSES,
                "rows": counts,
                "results_keys": results_keys,
                "answers": [answers(i) for i in range(RESPONSES)],
                "benchmarks": public,
                "you": yours,
                "topics": {
                    topic_id: {"title": title, "status": "rejected" if n == 3 else "approved"}
                    for n, (topic_id, title) in enumerate(zip(topics, TOPICS))
                },
                "rounds": {
                    "1": {"status": "closed", "tally": tally.splitlines()},
                    "2": {"status": "open", "topics": sorted(t["id"] for t in topics_view["topics"])},
                },
                "ballots": {rnd: {str(i): approve for i, approve in cast.items()} for rnd, cast in ballots.items()},
                "admin": {"username": ADMIN[0], "password": ADMIN[1]},
                "invites": invites,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )
    print(f"Wrote {database}, {backup} and {facts}")


if __name__ == "__main__":
    main()
