"""Two `pulse serve` hosts on one PostgreSQL and one Redis agree on submissions, limits and snapshots."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from .helpers import FULL_ANSWERS, REDIS_URL, LiveServer, request, wait_until

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_hosts_share_database_limits_and_snapshots(tmp_path, db_url, redis_db):  # noqa: F811
    env = {
        "DATABASE_URL": db_url,
        "PULSE_RATELIMIT_ENABLED": "true",
        "PULSE_RATELIMIT_STORAGE_URI": REDIS_URL,
        "PULSE_SUBMIT_LIMIT": "12 per minute",
        "PULSE_SNAPSHOT_MIN_INTERVAL": "0",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    hosts = [
        LiveServer(tmp_path / "a", env=env, args=("--workers", "2")),
        LiveServer(tmp_path / "b", env=env, args=("--workers", "2")),
    ]
    try:
        statuses, keys = [], []
        for i in range(16):
            status, body = request(hosts[i % 2].url + "/api/v1/responses", "POST", {"answers": FULL_ANSWERS})
            statuses.append(status)
            if status == 201:
                keys.append(json.loads(body)["results_key"])
        # One shared count across both hosts: 12 accepted, whichever host took them.
        assert sorted(statuses) == [201] * 12 + [429] * 4

        def benchmarks() -> list[dict]:
            bodies = []
            for host in hosts:
                status, body = request(host.url + "/api/v1/benchmarks", headers={"X-Results-Key": keys[0]})
                assert status == 200
                data = json.loads(body)
                data.pop("you")
                bodies.append(data)
            return bodies

        # Each host's workers hear of the snapshot the other stored a moment after its commit.
        bodies = wait_until(lambda: (b := benchmarks())[0] == b[1] and b)
        assert bodies[0] == bodies[1]
        assert bodies[0]["responses"] == 10 and bodies[0]["published"] is True
        # Released on one host through the CLI: both hosts serve it without a key.
        subprocess.run(
            [sys.executable, "-m", "survey_app", "release"], env=hosts[0].env, check=True, capture_output=True
        )
        # Each host's workers hear of the new snapshot by NOTIFY, a moment after the commit.
        deadline = time.monotonic() + 5
        while True:
            public = [request(host.url + "/api/v1/benchmarks") for host in hosts]
            if all(status == 200 for status, _ in public) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [status for status, _ in public] == [200, 200]
        assert public[0][1] == public[1][1] and json.loads(public[0][1])["released"] is True
    finally:
        for host in hosts:
            host.stop()
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM responses")).scalar() == 12
    engine.dispose()
