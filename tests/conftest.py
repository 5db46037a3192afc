"""Fixtures: an app on a fresh database per test (helpers: helpers.py).

A test that needs a database gets SQLite. A test marked `both_databases` (a test of SQL: queries,
transactions, the schema, backups, the state of the program, the community and the organisers)
runs on SQLite and on PostgreSQL;
PULSE_TEST_DATABASES=all runs every database test on both. A test may also choose its databases
itself with `pytest.mark.parametrize("db_url", [...], indirect=True)`.

Every xdist worker is its own pytest session: its own migrated SQLite template, its own
PostgreSQL database and its own Redis database (helpers.REDIS_URL), so workers never meet.
"""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, text
from werkzeug.routing import Rule
from werkzeug.security import generate_password_hash

from survey_app import admin_auth, migrate, schedules, state
from survey_app.models import Base
from survey_app.questions import load_survey

from .helpers import ON_CI, REDIS_URL, ROOT, SCHEDULERS, WATCHES, make_app

PG_ADMIN_URL = os.environ.get("PULSE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATABASES = ("sqlite", "postgresql")


def pytest_report_header(config):
    return f"PostgreSQL for tests: {PG_ADMIN_URL.rsplit('@', 1)[-1]}"


def _parametrized_names(marker) -> set[str]:
    names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
    return {n.strip() for n in names.split(",")} if isinstance(names, str) else set(names)


def pytest_generate_tests(metafunc):
    """A test that needs a database: SQLite, or both databases when it touches SQL (`both_databases`)."""
    if "db_url" not in metafunc.fixturenames:
        return
    if any("db_url" in _parametrized_names(m) for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test chose its databases itself
    both = metafunc.definition.get_closest_marker("both_databases") or os.environ.get("PULSE_TEST_DATABASES") == "all"
    metafunc.parametrize("db_url", DATABASES if both else DATABASES[:1], indirect=True)


def pytest_sessionfinish(session, exitstatus):
    """On CI nothing may be skipped: a skip there means a missing browser, service or tool, so the run fails."""
    if not ON_CI or hasattr(session.config, "workerinput"):  # xdist: the controller sees every report
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        reporter.write_line(
            f"CI: {len(skipped)} skipped test(s) fail the run; CI installs everything they need", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    for watch in WATCHES:  # snapshot listeners no fixture stopped: quiet before the drop
        watch.stop()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_emptied(pg_database):
    """The session's PostgreSQL database, emptied as a fresh one: every row deleted and every sequence
    restarted in one round trip. (TRUNCATE cost 0.2 s a test, most of it for tables left empty.)"""
    engine = create_engine(pg_database, pool_pre_ping=True)  # a test may end every connection to the database
    with engine.connect() as conn:
        sequences = conn.execute(text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")).scalars()
        # Table names from the models, children first; nothing here comes from input.
        statements = [f'DELETE FROM "{t.name}"' for t in reversed(Base.metadata.sorted_tables)]  # noqa: S608
        statements += [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
    script = "; ".join(statements)

    def empty() -> str:
        with engine.begin() as conn:
            conn.exec_driver_sql(script)
        return pg_database

    yield empty
    engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def every_scheduler_is_known():
    """Register every schedule timer as it is made, whichever way its app was made (make_app,
    create_app, a fixture's app)."""
    made = schedules.Scheduler.__init__

    def init(self, app):
        made(self, app)
        SCHEDULERS.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schedules.Scheduler, "__init__", init)
        yield


# Organiser passwords hashed in this process cost scrypt N=2**10 instead of Werkzeug's 2**15: a
# login or a new organiser is 0.1 s at full cost, and the suite makes hundreds (about 50 s of it).
# A `pulse serve` the tests start hashes at full cost what it hashes itself; a test marked
# `full_cost_passwords` does too, and tests/test_admin.py holds the shipped cost.
CHEAP_PASSWORD_HASH = "scrypt:1024:8:1"
CHEAP_DUMMY = generate_password_hash(uuid.uuid4().hex, method=CHEAP_PASSWORD_HASH)


@pytest.fixture(autouse=True)
def cheap_password_hashes(request, monkeypatch):
    if request.node.get_closest_marker("full_cost_passwords") is None:
        monkeypatch.setattr(admin_auth, "PASSWORD_HASH", CHEAP_PASSWORD_HASH)
        monkeypatch.setattr(admin_auth, "_dummy_hash", lambda: CHEAP_DUMMY)


@pytest.fixture(scope="session", autouse=True)
def url_builders_compiled_once():
    """Werkzeug compiles two URL-builder functions for each of the app's ~60 routes in every new
    app (12 ms of the 15 ms create_app takes); the suite makes thousands of apps. The compiled code
    depends only on the rule's text, its parsed parts and its defaults, so it is kept by those.
    If Werkzeug changes that private method, nothing is kept and nothing else changes."""
    compile_builder = getattr(Rule, "_compile_builder", None)
    if compile_builder is None:
        yield
        return
    kept: dict = {}

    def once(self, append_unknown=True):
        key = (self.rule, tuple(self._trace), repr(sorted((self.defaults or {}).items())), append_unknown)
        if key not in kept:
            kept[key] = compile_builder(self, append_unknown)
        return kept[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Rule, "_compile_builder", once)
        yield


@pytest.fixture(autouse=True)
def no_timer_outlives_its_test():
    """Stop every schedule timer the test made. One left running would keep polling the session's
    PostgreSQL database and act on the next test's schedules before that test's own app does
    (exactly once, but by the wrong worker: CI once saw a retried close done by a stranger)."""
    first = len(SCHEDULERS)
    yield
    for timer in SCHEDULERS[first:]:
        timer.stop()
    del SCHEDULERS[first:]


@pytest.fixture
def db_url(request, tmp_path):
    """A fresh, migrated database: a copied SQLite file, or an emptied PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        target = tmp_path / "pulse.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    return request.getfixturevalue("pg_emptied")()


@pytest.fixture
def app(db_url):
    app = make_app(db_url)
    yield app
    state.of(app).close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def redis_db():
    """This worker's Redis database (helpers.REDIS_URL), emptied before and after the test."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Redis not reachable at 127.0.0.1:6379")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def pg_databases():
    """A function making empty PostgreSQL databases (no schema at all), each dropped after the test."""
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        admin.connect().close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}")
    made = []

    def make() -> str:
        name = f"pulse_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
