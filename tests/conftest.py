"""Fixtures: an app on a fresh database per test, on SQLite and on PostgreSQL."""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from survey_app import create_app, migrate
from survey_app.models import Base
from survey_app.questions import load_survey

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-" + "x" * 40
PG_ADMIN_URL = os.environ.get("PULSE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
FULL_ANSWERS = {
    "practice_type": "psychiatry",
    "discharge_checks": ["vitals", "emotional_checkin"],
    "first_followup": "within_24h",
    "mood_tracking": "every_touchpoint",
    "integration_support": ["group_integration", "peer_community"],
    "digital_tools": ["mood_app"],
    "after_hours": "on_call",
    "followup_completion": "pct_90_plus",
}


def pytest_report_header(config):
    return f"PostgreSQL for tests: {PG_ADMIN_URL.rsplit('@', 1)[-1]}"


@pytest.fixture(scope="session")
def survey():
    return load_survey(ROOT / "questions.yaml")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test (migrating every time is slow)."""
    path = tmp_path_factory.mktemp("template") / "pulse.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database():
    """A throwaway PostgreSQL database for this test run, migrated once."""
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"pulse_test_{uuid.uuid4().hex[:10]}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    for watch in _watches:  # snapshot listeners no fixture stopped: quiet before the drop
        watch.stop()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, migrated database: a copied SQLite file, or an emptied PostgreSQL database."""
    from survey_app import snapshots

    snapshots._cache.clear()
    if request.param == "sqlite":
        target = tmp_path / "pulse.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url = request.getfixturevalue("pg_database")
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


# Every PostgreSQL app's snapshot listener (not the apps: those may be collected).
_watches: list = []


def make_app(db_url, **config):
    settings = {
        "TESTING": True,
        "SECRET_KEY": SECRET,
        "DATABASE_URL": db_url,
        "PULSE_MIN_FILL_SECONDS": 0,
        "PULSE_SNAPSHOT_MIN_INTERVAL": 0,
        "RATELIMIT_ENABLED": False,
        "PULSE_QUESTIONS": str(ROOT / "questions.yaml"),
    }
    settings.update(config)
    app = create_app(settings)
    if app.extensions["pulse_watch"] is not None:
        _watches.append(app.extensions["pulse_watch"])
    return app


@pytest.fixture
def app(db_url):
    app = make_app(db_url)
    yield app
    app.extensions["pulse_engine"].dispose()
    app.extensions["pulse_probe"].dispose()
    if app.extensions["pulse_watch"] is not None:
        app.extensions["pulse_watch"].stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def form_tokens(html: str) -> dict:
    """The hidden inputs of a page's form (CSRF token, served stamp), as a browser sends them."""
    return dict(re.findall(r'<input[^>]*?name="(csrf_token|served)"[^>]*?value="([^"]*)"', html)) | {
        name: value for value, name in re.findall(r'<input[^>]*?value="([^"]*)"[^>]*?name="(csrf_token|served)"', html)}


def answers_to_form(answers: dict) -> list[tuple[str, str]]:
    """Answers as form fields (a multi-choice question repeats its name)."""
    pairs = []
    for key, value in answers.items():
        for item in ([value] if isinstance(value, str) else value):
            pairs.append((key, item))
    return pairs


def submit_api(client, answers=None, **extra):
    body = {"answers": FULL_ANSWERS if answers is None else answers} | extra
    return client.post("/api/v1/responses", json=body)
