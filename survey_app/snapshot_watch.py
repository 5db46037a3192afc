"""On PostgreSQL, hear about other workers' changes instead of asking on every request.

Every stored snapshot and every change of the current survey sends a NOTIFY on commit, its
payload naming the kind ("snapshot", "program"). Each worker keeps one connection that LISTENs
and, for each notification, calls the cache's clear for that kind (state.Cache.heard); while it
listens, pages trust what the cache holds and need no query at all. Whenever it is not
listening (not yet connected, the connection dropped, the server restarted), pages fall back to
the one-query check, and at reconnect it clears both kinds, so nothing kept from before the gap
is trusted after it.
Every few seconds the listener also notifies itself: a connection that stops hearing (dropped
without a word, or a transaction-pooling proxy that does not carry LISTEN) is not trusted.
SQLite has no NOTIFY, and its check costs microseconds: it always asks.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable

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
    """One worker's listener: calls `heard(kind)` for each change; `listening()` says whether
    the cache may be trusted without asking the database."""

    def __init__(self, url: str, heard: Callable[[str], None]):
        parsed = make_url(url)
        # psycopg's own connection string: the same server, database and options.
        self._conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        # Generations of two watches (two apps on one database in one process) never compare equal.
        self._serial = next(_serials)
        self._heard = heard
        self._count = 0
        self._listening = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def listening(self) -> bool:
        """Whether every change committed from now on will reach `heard` (else: ask the database)."""
        if self._thread is None:
            self._start()  # lazily, in the worker process that serves requests, never before a fork
        return self._listening

    def generation(self) -> tuple[int, int] | None:
        """This watch and how many notifications (and reconnects) it has acted on; None if not
        listening. For tests and diagnostics: the cache relies on `heard`, not on this."""
        return (self._serial, self._count) if self.listening() else None

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
                    self._heard("reconnect")  # a change committed while nobody listened is caught here
                    self._count += 1
                    self._listening = True
                    wait = RETRY_SECONDS[0]
                    while not self._stop.is_set():
                        self._ping(conn)
                        heard_self = False
                        for note in conn.notifies(timeout=HEARTBEAT_SECONDS):
                            if note.channel == CHANNEL:
                                self._heard(note.payload)
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
