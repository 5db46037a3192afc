"""The door to the database: engines, sessions and transactions, the probe pool's one-row
queries, and what Pulse does so that the files leave no order and no trace (zeroed deletes,
emptied WAL). The queries live beside it by concern, run in these sessions:
program_queries.py (stored surveys and their state), response_queries.py (responses and
invite codes), snapshot_queries.py, admin_queries.py and community/queries.py;
snapshot_watch.py keeps the one other connection, a LISTEN on PostgreSQL.

SQLite (the embedded default) runs in WAL mode with a busy timeout, foreign keys and
synchronous=FULL; transactions that write begin IMMEDIATE, because a deferred BEGIN that
later upgrades to a write fails with "database is locked" under several workers. Writers take
turns before their BEGIN (see _write_turn): SQLite's own busy handler lets a waiter sleep up to
100 ms between tries, so under many writers some waited most of a second. And no commit
checkpoints the WAL: a writer does, after it has let go of its turn (see _checkpoint_if_grown).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator

from flask import Flask, current_app, g, has_app_context, has_request_context
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from . import state

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=FULL",
    # No commit checkpoints the WAL: a writer does, once it has let go of its turn (see
    # _checkpoint_if_grown). A WAL that was reset is cut back to nothing, so its size says how
    # much it holds.
    "PRAGMA wal_autocheckpoint=0",
    "PRAGMA journal_size_limit=0",
)
# A writer checkpoints the WAL once it holds this much: SQLite's own default, 1000 pages of 4 KiB.
WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024
# PostgreSQL: every stored snapshot, every change of the current survey and a restore send a
# NOTIFY on this channel at commit (payload "snapshot", "program", "restore"); snapshot_watch.py
# listens to it. This constant is the one place the two meet.
SNAPSHOT_CHANNEL = "pulse_snapshots"


def default_url(instance_path: str, name: str = "pulse.sqlite3") -> str:
    """The embedded default: a SQLite file in the instance folder."""
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(instance_path) / name}"


def describe(url: str) -> str:
    """The database URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine with Pulse's connection rules; the app and Alembic both use this."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not the driver, emit BEGIN, so writers can say IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _sqlite_begin(conn) -> None:
    options = conn.get_execution_options()
    if options.get("pulse_one_statement"):
        return  # the driver's autocommit: the statement is its own transaction (see write_one)
    mode = "IMMEDIATE" if options.get("pulse_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_probe(url: str, engine: Engine) -> Engine:
    """The pool for the one query every page asks: which snapshot is the newest.

    On PostgreSQL the main pool's pre-ping, BEGIN and COMMIT cost three round trips around a
    one-row query; this small pool runs it in autocommit without a pre-ping, and the query
    itself finds a dropped connection (see newest_snapshot_id). SQLite connections are already
    in autocommit at the driver; a pool of their own skips the main pool's rollback at check-in.
    """
    if url.startswith("sqlite"):
        # Its own pool without the rollback each connection gets when it goes back to the main
        # pool: these connections run only single statements in the driver's autocommit mode.
        probe = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_reset_on_return=None,
        )
        event.listen(probe, "connect", _sqlite_connect)
        probe.pulse_threads = _ProbeThreads()  # type: ignore[attr-defined]
        return probe
    return create_engine(
        url, isolation_level="AUTOCOMMIT", pool_pre_ping=False, pool_reset_on_return=None, pool_size=5, max_overflow=5
    )


def init_app(app: Flask) -> None:
    """Close the request's session after each request (the engines are on the app's state);
    a SQLite probe asks data_version again in each request."""
    app.before_request(_probe_asks_again)
    app.teardown_appcontext(_close_session)


def _probe_asks_again() -> None:
    """This thread's next SQLite probe query asks data_version again (a request starts, or wrote)."""
    pulse = current_app.extensions.get(state.EXTENSION) if has_app_context() else None
    threads = getattr(pulse.probe, "pulse_threads", None) if pulse is not None else None
    if threads is not None:
        threads.checked = False


def engine() -> Engine:
    """The current app's engine."""
    return state.of().engine


def probe() -> Engine:
    """The current app's pool for the per-request newest-snapshot check (see make_probe)."""
    return state.of().probe


def reader() -> Session:
    """The request's read session (deferred transactions), closed at teardown."""
    if "db" not in g:
        g.db = Session(engine(), expire_on_commit=False)
    return g.db


def _close_session(_exc) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


@contextmanager
def writer(bind: Engine | None = None) -> Iterator[Session]:
    """A write transaction that commits whole or not at all."""
    bind = bind or engine()
    try:
        with _write_turn(bind), Session(_writing(bind), expire_on_commit=False) as db:
            with db.begin():
                yield db
        _checkpoint_if_grown(bind)
    finally:
        _probe_asks_again()  # this request reads its own write


def write_one(statement: Executable, params: dict[str, Any], stored_already: Executable) -> int:
    """Run one write statement (a submission's INSERT … SELECT) as its own transaction, without
    the ORM session, whose bookkeeping cost more than the statement; its row count.

    Autocommit: no BEGIN and no COMMIT. On PostgreSQL those were two of a submission's round
    trips, and it runs on the probe pool, which sends no pre-ping either (one more): a connection
    the server dropped is found by the statement itself, and the statement is tried once more
    on a fresh one. Exactly once: the connection may have dropped after the commit, before its
    answer came, so the second try first asks `stored_already` (same parameters: a query that
    finds what the statement wrote, such as its row by the new id) and writes nothing if it was.

    On SQLite the BEGIN IMMEDIATE and COMMIT were two more times the writer let go of the GIL
    while holding the writers' turn, each then waiting for it behind the worker's other threads
    (the turn is what bounds SQLite submissions). A write statement of its own takes SQLite's
    write lock when it starts, as BEGIN IMMEDIATE does, and commits with an fsync when it ends.
    The connection is taken from the pool and given back outside the turn.
    """
    bind = engine()
    try:
        if bind.dialect.name != "postgresql":
            with _options(bind, "_pulse_one_statement", pulse_one_statement=True).connect() as connection:
                with _write_turn(bind):
                    count = connection.execute(statement, params).rowcount
            _checkpoint_if_grown(bind)
            return count
        for attempt in (1, 2):
            try:
                with probe().connect() as connection:
                    if attempt == 2 and connection.execute(stored_already, params).first() is not None:
                        return 1
                    return connection.execute(statement, params).rowcount
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt == 2:
                    raise
                log.warning("a write found its connection dropped by the server; trying once more")
        raise AssertionError("not reached: the second attempt returns or raises")
    finally:
        _probe_asks_again()


def _writing(bind: Engine) -> Engine:
    return _options(bind, "_pulse_writing", pulse_write=True)


def _options(bind: Engine, name: str, **options: Any) -> Engine:
    """bind.execution_options(**options), made once per engine and kept on it as `name` (each
    call makes a new engine object: a twentieth of a submission)."""
    made = bind.__dict__.get(name)
    if made is None:
        made = bind.execution_options(**options)
        setattr(bind, name, made)
    return made


# ------------------------------------------------------------------ SQLite writers take turns


class _Turns(threading.local):
    """The SQLite files whose turn this thread holds (a writer inside a writer waits for no one)."""

    def __init__(self) -> None:
        self.held: set[str] = set()


_turns = _Turns()
# One thread of this process at a time goes for a file's turn; the lock file orders the processes.
_process_turns: dict[str, threading.Lock] = {}
_process_turns_guard = threading.Lock()
os.register_at_fork(after_in_child=_process_turns.clear)


def turn_file(bind: Engine) -> str | None:
    """The lock file beside a SQLite database file, empty and never read: its name and mode are
    all it has (None for PostgreSQL and for a database in memory)."""
    database = bind.url.database if bind.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-writers"


# A checkpoint waiting for its pass in the turn (see _checkpoint), per file: the writers of this
# process that have not yet asked for the turn wait until it has had it.
_checkpoint_waiting: dict[str, threading.Event] = {}
os.register_at_fork(after_in_child=_checkpoint_waiting.clear)


@contextmanager
def _write_turn(bind: Engine, ahead_of_writers: bool = False) -> Iterator[None]:
    """Wait for this thread's turn to write to a SQLite file, then hold it until the transaction
    has committed or rolled back.

    A waiter is woken the moment the turn is free (a thread lock within the process, flock(2)
    between processes), where SQLite's busy handler would poll with sleeps growing to 100 ms.
    SQLite's own lock still decides; this only orders who asks. A process that dies lets go of
    its turn with its file descriptors; the turn is held no longer than its transaction, which
    SQLite's busy timeout bounds. A thread still waiting for its worker's thread lock after that
    timeout goes ahead without a turn and meets SQLite's busy timeout as before.

    A thread lock is not fair: a writer that lets go asks again within microseconds and
    usually wins, so under unbroken writes a checkpoint could wait for its turn while the WAL
    grew (21 MB on a busy machine). A checkpoint asks `ahead_of_writers`: the writers that
    come after it wait until it has had its turn, so it waits for no more than those already
    asking.
    """
    path = turn_file(bind)
    if path is None or path in _turns.held:
        yield
        return
    waiting = ahead = None
    with _process_turns_guard:
        local = _process_turns.setdefault(path, threading.Lock())
        if ahead_of_writers:
            waiting = _checkpoint_waiting[path] = threading.Event()
        else:
            ahead = _checkpoint_waiting.get(path)
    try:
        if waiting is None and ahead is not None:
            ahead.wait(SQLITE_BUSY_TIMEOUT_MS / 1000)
        acquired = local.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    finally:
        if waiting is not None:  # writers go on once it holds the turn (or gave up on it)
            with _process_turns_guard:
                _checkpoint_waiting.pop(path, None)
            waiting.set()
    if not acquired:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed, or the process ends
            _turns.held.add(path)
            try:
                yield
            finally:
                _turns.held.discard(path)
        finally:
            os.close(fd)
    finally:
        local.release()


# The thread checkpointing each database file for this process (one at a time), and when the
# last one ended short of the WAL's end: a read still holding the WAL (a backup, a rebuild)
# keeps it from being copied whole, and until CHECKPOINT_EVERY_SECONDS have passed no other
# starts, where every write would start one that could copy no more. A checkpoint that copied
# the whole WAL waits for nothing: the next starts as soon as the WAL has grown again (a
# pause after every checkpoint let the WAL grow past 30 MB on a disk whose fsync is fast).
_checkpointing: dict[str, threading.Thread] = {}
_checkpoint_fell_short: dict[str, float] = {}
os.register_at_fork(after_in_child=_checkpointing.clear)
CHECKPOINT_EVERY_SECONDS = 0.25


def _checkpoint_if_grown(bind: Engine) -> None:
    """SQLite: once the WAL holds WAL_CHECKPOINT_BYTES, copy it into the database file in a
    thread of its own, after the commit and outside the writers' turn.

    SQLite's own checkpoint runs inside the commit that grows the WAL past its limit, and a
    Pulse writer holds its turn across its commit: a WAL grown large while a long read kept it
    (a backup's VACUUM INTO, a rebuild) was copied with every other writer waiting for seconds.
    In a thread of its own no request waits for it (run in the request, it was that request's
    p99); PASSIVE copies what it can without waiting for anyone, while the writers go on.
    """
    path = turn_file(bind)
    if path is None:
        return
    try:
        if os.stat(f"{bind.url.database}-wal").st_size < WAL_CHECKPOINT_BYTES:
            return
    except FileNotFoundError:
        return
    now = time.monotonic()
    with _process_turns_guard:
        running = _checkpointing.get(path)
        if (running is not None and running.is_alive()) or now - _checkpoint_fell_short.get(
            path, -1e9
        ) < CHECKPOINT_EVERY_SECONDS:
            return
        thread = _checkpointing[path] = threading.Thread(
            target=_checkpoint, args=(bind, path), name="pulse-wal-checkpoint", daemon=True
        )
    thread.start()


def _checkpoint(bind: Engine, path: str) -> None:
    """Copy the WAL while the writers go on, then once more holding the turn: that pass copies
    only what they added meanwhile (a few hundred frames), and leaves the WAL wholly copied with
    no writer in between, so the next write starts it again from nothing. Without it, under
    unbroken writes every checkpoint finished just after the next frame came, and the WAL was
    never started again (57 MB after 800 writes of 64 KiB; 6 MB with it)."""
    whole = False
    try:
        connection = bind.raw_connection()  # autocommit at the driver: outside any transaction
        try:
            with closing(connection.cursor()) as cursor:
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                with _write_turn(bind, ahead_of_writers=True):
                    busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            whole = not busy and copied == frames
        finally:
            connection.close()
    except Exception as exc:  # noqa: BLE001 - the writes are committed; a later one starts another
        log.warning("WAL checkpoint after a write failed: %s; a later write starts another", type(exc).__name__)
    finally:
        # A checkpoint that failed holds the next back too: not one thread and one warning per write.
        with _process_turns_guard:
            if whole:
                _checkpoint_fell_short.pop(path, None)
            else:
                _checkpoint_fell_short[path] = time.monotonic()


def iso_week(today: dt.date | None = None) -> str:
    """The ISO week, e.g. 2026-W48: the only time a response keeps."""
    year, week, _ = (today or dt.date.today()).isocalendar()
    return f"{year}-W{week:02d}"


# ------------------------------------------------------------------ the probe pool's one-row queries


class _ProbeThreads(threading.local):
    """SQLite: each thread's own probe connection, and what its queries answered since the
    database last changed."""

    def __init__(self) -> None:
        self.connection: Any = None
        self.version: int | None = None
        self.rows: dict[tuple[str, tuple], tuple | None] = {}
        # Whether this thread asked data_version in the request it is serving: the request's later
        # probe queries answer from the same view (one C call that lets the GIL go, not one per
        # query). Every request starts without it, and a write of its own clears it.
        self.checked = False


# Answers a SQLite probe thread remembers at most (the current survey, the newest snapshot of each
# survey shown, each results key looked up) until the database changes.
REMEMBERED_ROWS = 64


def probe_row(probe: Engine, sql: str, params: tuple) -> tuple | None:
    """One row of a one-row query on the probe pool.

    It goes straight to the driver's cursor: building and caching an ORM query cost more than
    running it. A connection the server dropped is discarded and the query tried once more.
    """
    threads = getattr(probe, "pulse_threads", None)
    if threads is not None:
        return _sqlite_probe_row(probe, threads, sql, params)
    for attempt in (1, 2):
        connection = None
        try:
            connection = probe.raw_connection()  # a refused connect raises the driver's error too
            with closing(connection.cursor()) as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone()
        except probe.dialect.loaded_dbapi.Error as exc:
            dropped = connection is not None and probe.dialect.is_disconnect(exc, connection, None)
            if dropped:
                connection.invalidate()
            if not dropped or attempt == 2:
                raise OperationalError(sql, params, exc) from exc
        finally:
            if connection is not None:
                connection.close()
    return None  # not reached: the second attempt returns or raises


def _sqlite_probe_row(probe: Engine, threads: _ProbeThreads, sql: str, params: tuple) -> tuple | None:
    """SQLite: the row, from this thread's memory while nothing was committed since it was read.

    `PRAGMA data_version` on a connection changes whenever another connection commits to the
    database file (any process: SQLite reads the counter from the shared WAL index), and costs
    no query plan or table read. Each thread keeps a connection of its own, out of the pool, that
    never writes: its data_version read before a query tells whether that answer still holds.
    """
    try:
        if threads.connection is None:
            threads.connection = probe.raw_connection()
            threads.connection.detach()  # this thread's for good: data_version is per connection
        with closing(threads.connection.cursor()) as cursor:
            if threads.version is None or not threads.checked:
                cursor.execute("PRAGMA data_version")
                version = cursor.fetchone()[0]
                if version != threads.version or len(threads.rows) >= REMEMBERED_ROWS:
                    threads.version, threads.rows = version, {}
                threads.checked = has_request_context()
            key = (sql, params)
            if key not in threads.rows:
                cursor.execute(sql, params)
                threads.rows[key] = cursor.fetchone()
            return threads.rows[key]
    except probe.dialect.loaded_dbapi.Error as exc:
        if threads.connection is not None:
            threads.connection.close()
        threads.connection, threads.version, threads.rows = None, None, {}
        raise OperationalError(sql, params, exc) from exc


def probe_version(probe: Engine) -> tuple[Any, int] | None:
    """SQLite: (this thread's probe connection, its `PRAGMA data_version` now), the token of "no
    other connection has committed since"; None on PostgreSQL, or before this thread's first
    probe query. Two versions compare only on the same connection (fast_reads.py keeps both)."""
    threads = getattr(probe, "pulse_threads", None)
    connection = threads.connection if threads is not None else None
    if connection is None:
        return None
    with closing(connection.cursor()) as cursor:
        cursor.execute("PRAGMA data_version")
        return connection, cursor.fetchone()[0]


# ------------------------------------------------------------------ leaving no order and no trace


@contextmanager
def zeroing_deletes(db: Session) -> Iterator[None]:
    """SQLite: within this block, deleted rows and freed pages are overwritten with zeros.

    PRAGMA secure_delete is per connection and its default depends on how SQLite was built
    (Debian's is on, most others off); it is set on for the block and put back after it.
    PostgreSQL: nothing (a deleted row stays in its page until VACUUM; see SECURITY.md).
    """
    connection = db.connection()
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = connection.exec_driver_sql("PRAGMA secure_delete").scalar()
    connection.exec_driver_sql(_SECURE_DELETE_SQL[1])
    try:
        yield
    finally:
        connection.exec_driver_sql(_SECURE_DELETE_SQL[previous])


# PRAGMA secure_delete's values: 0 off, 1 on, 2 "fast" (zeroes only what costs no extra write).
_SECURE_DELETE_SQL = {0: "PRAGMA secure_delete=0", 1: "PRAGMA secure_delete=1", 2: "PRAGMA secure_delete=2"}


def end_request_reads() -> None:
    """End the read transaction of this request's session, if it has one (before a checkpoint,
    which would otherwise wait for it). It only read, and its session does not expire what it
    loaded, so nothing changes for the request."""
    db = g.get("db")
    if db is not None and db.in_transaction():
        db.commit()


# A checkpoint waits this long for other connections' reads and writes before giving up.
CHECKPOINT_BUSY_TIMEOUT_MS = 2_000


def checkpoint_wal(bind: Engine | None = None) -> bool:
    """SQLite: copy every committed page from the WAL into the database file, then truncate the
    WAL to zero bytes; whether it emptied the WAL. True at once on PostgreSQL.

    A WAL keeps each commit's pages together, so until it is emptied a copy of the files shows
    which rows one transaction changed. The -shm file holds no content, but it still lists
    which page each frame wrote until the next write; so after the checkpoint one write of
    page 1 alone (the header's user_version, unchanged) replaces that list, and a second
    checkpoint empties the WAL again. Run it after the commit, outside any transaction; it
    needs every other connection to have finished reading older data, so under load it may
    give up (False) and the next checkpoint empties the WAL instead.
    """
    bind = bind or engine()
    if bind.dialect.name != "sqlite":
        return True
    connection = bind.raw_connection()  # autocommit at the driver: no transaction around the pragma
    try:
        cursor = connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_TIMEOUT_MS}")
            busy, _frames, _copied = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0:
                version = cursor.execute("PRAGMA user_version").fetchone()[0]
                cursor.execute(f"PRAGMA user_version={int(version)}")
                busy, _frames, _copied = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()
    finally:
        connection.close()
    return busy == 0
