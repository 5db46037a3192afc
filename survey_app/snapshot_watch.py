"""On PostgreSQL, hear about new snapshots instead of asking on every request.

Every stored snapshot sends a NOTIFY on commit. Each worker keeps one connection that LISTENs
and counts what it hears; while it listens, a page whose cached snapshot was checked at the
current count needs no query at all. Whenever it is not listening (not yet connected, the
connection dropped, the server restarted), pages fall back to the one-query check, and the
count moves on at reconnect, so nothing cached before the gap is trusted after it.
Every few seconds the listener also notifies itself: a connection that stops hearing (dropped
without a word, or a transaction-pooling proxy that does not carry LISTEN) is not trusted.
SQLite has no NOTIFY, and its check costs microseconds: it always asks.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading

import psycopg
from sqlalchemy.engine import make_url

from .storage import SNAPSHOT_CHANNEL as CHANNEL

log = logging.getLogger(__name__)

# How the listening connections show in pg_stat_activity.
APPLICATION_NAME = "pulse-snapshot-watch"
# How often the listener proves it still hears, by notifying itself; a connection that went
# deaf without the server saying so is noticed within about this many seconds.
HEARTBEAT_SECONDS = 5.0
# Wait before reconnecting after a failure, doubled up to the maximum.
RETRY_SECONDS = (0.5, 30.0)
_serials = itertools.count(1)


class Deaf(Exception):
    """The listener's own heartbeat notification did not come back."""


class SnapshotWatch:
    """One worker's listener. `generation()` is None whenever the database must be asked."""

    def __init__(self, url: str):
        parsed = make_url(url)
        # psycopg's own connection string: the same server, database and options.
        self._conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        # Generations of two watches (two apps on one database in one process) never compare equal.
        self._serial = next(_serials)
        self._count = 0
        self._listening = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def generation(self) -> tuple[int, int] | None:
        """This watch and how many notifications (and reconnects) it has seen; None if not listening."""
        if self._thread is None:
            self._start()  # lazily, in the worker process that serves requests, never before a fork
        return (self._serial, self._count) if self._listening else None

    def stop(self) -> None:
        self._stop.set()

    @property
    def _ping_channel(self) -> str:
        return f"{CHANNEL}_ping_{os.getpid()}_{self._serial}"

    def _ping(self, conn: psycopg.Connection) -> None:
        conn.execute("SELECT pg_notify(%s, '')", (self._ping_channel,))

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pulse-snapshot-watch", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        wait = RETRY_SECONDS[0]
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {self._ping_channel}")
                    self._count += 1  # a snapshot stored while nobody listened is caught here
                    self._listening = True
                    wait = RETRY_SECONDS[0]
                    while not self._stop.is_set():
                        self._ping(conn)
                        heard_self = False
                        for note in conn.notifies(timeout=HEARTBEAT_SECONDS):
                            if note.channel == CHANNEL:
                                self._count += 1
                            else:
                                heard_self = True
                        if not heard_self and not self._stop.is_set():
                            raise Deaf()
            except (psycopg.Error, Deaf) as exc:
                if not self._stop.is_set():
                    log.warning("snapshot listener: %s; pages ask the database until it reconnects", type(exc).__name__)
            finally:
                self._listening = False
            self._stop.wait(wait)
            wait = min(wait * 2, RETRY_SECONDS[1])
