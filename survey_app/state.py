"""What one Pulse app keeps in memory between requests, on one object: app.extensions["pulse"].

Two apps in one process (two databases, as the tests make) each have their own engines,
caches and timers; nothing here is a module global. Every cache is this worker's copy of
something stored in the database, so another worker or host never needs to see it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Hashable

from flask import Flask, current_app

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from .pipeline.disclosure import Disclosure
    from .snapshot_watch import SnapshotWatch

EXTENSION = "pulse"


class LruCache:
    """A thread-safe mapping that forgets the least recently used entry beyond `size`."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class Cache:
    """What one app keeps between requests that a change in the database can make stale, by name.

    Each entry is emptied by the clear_* call of the event that changes it, and by nothing else
    (the figures also forget their least recently used beyond 256). The worker that made the
    change calls it at once; on PostgreSQL every other worker's listener calls it when the
    change's notification arrives (snapshot_watch.py), and while a worker is not listening it
    asks the database on each request instead of trusting its copy. SQLite has no listener: it
    always asks (a query of microseconds).

    A copy read from the database is kept only if no clear_* of its kind ran since the read
    began (the epochs below): a notification that overtakes a slow read cannot leave the older
    answer behind.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Stored survey definitions by (id, version), parsed once: a stored definition never changes.
        self.definitions: dict = {}
        # (id, version) of the current survey as last read (program.current_survey).
        self.current_survey_key: tuple[str, int] | None = None
        # (current survey, {survey: its earlier wave}) as program.earlier_wave last found them.
        self.waves: tuple = (None, {})
        # The latest snapshot per (survey id, version), as served (snapshots.ServedSnapshot).
        self.snapshots: dict = {}
        # Chart figures per (snapshot, participant's answers): charts are not rebuilt per request.
        self.figures = LruCache(256)
        # A results page's question sections per (snapshot, question, the participant's answer to it,
        # their group): a key holder's page puts together what others with the same answer were shown.
        self.blocks = LruCache(1024)
        # The public results page per survey, rendered once per snapshot and split where the CSP nonce goes.
        self.public_pages: dict = {}
        # A key holder's results page per (that page's snapshot and program, the participant's answers,
        # whether the snapshot counts them), split where the CSP nonce and the CSRF token go: the page
        # is fixed by those until the next snapshot, so a participant coming back is not rendered again.
        self.personal_pages = LruCache(128)
        # PostgreSQL: the responses whose results keys were looked up, by the key's keyed hash (never
        # the key). What a lookup reads of one (response_queries.KeyedResponse) changes only when a
        # snapshot is stored: its "counted" flag and its survey's newest snapshot; responses are not
        # edited or deleted. SQLite's probe threads remember theirs (storage._ProbeThreads).
        self.keyed_responses = LruCache(256)
        # (checked at, value) of "does this database hold demo data?" (asked again after a while).
        self.demo: tuple[float | None, bool] = (None, False)
        # How many times clear_snapshots and clear_program have run (see put_snapshot).
        self.snapshots_epoch = 0
        self.program_epoch = 0

    def put_snapshot(self, key: tuple[str, int], served: Any, epoch: int) -> None:
        """Keep a snapshot read when snapshots_epoch was `epoch`, unless a clear ran since."""
        with self.lock:
            if epoch == self.snapshots_epoch:
                self.snapshots[key] = served

    def put_current_survey(self, key: tuple[str, int], epoch: int) -> None:
        """Keep the current survey read when program_epoch was `epoch`, unless a clear ran since."""
        with self.lock:
            if epoch == self.program_epoch:
                self.current_survey_key = key

    def put_keyed_response(self, key_hash: str, row: Any, epoch: int) -> None:
        """Keep a response looked up when snapshots_epoch was `epoch`, unless a clear ran since."""
        with self.lock:
            if epoch == self.snapshots_epoch:
                self.keyed_responses.put(key_hash, row)

    def put_public_page(self, key: tuple, parts: list[bytes]) -> None:
        """Keep a survey's public page (key[0] is the survey): only its newest is asked for again."""
        with self.lock:
            for old in [k for k in self.public_pages if k[0] == key[0]]:
                del self.public_pages[old]
            self.public_pages[key] = parts

    def clear_snapshots(self) -> None:
        """A snapshot was stored (built, or published again at a release): pages read it again."""
        with self.lock:
            self.snapshots.clear()
            self.keyed_responses.clear()
            self.snapshots_epoch += 1

    def clear_program(self) -> None:
        """A survey was opened or closed, or the program started again: the current survey and
        the earlier waves found for it are read again."""
        with self.lock:
            self.current_survey_key = None
            self.waves = (None, {})
            self.program_epoch += 1

    def clear_all(self) -> None:
        """The organisers' data was replaced (a restore): nothing kept from before holds."""
        with self.lock:
            self.definitions, self.snapshots, self.public_pages = {}, {}, {}
            self.current_survey_key, self.waves, self.demo = None, (None, {}), (None, False)
            self.figures.clear()
            self.blocks.clear()
            self.personal_pages.clear()
            self.keyed_responses.clear()
            self.snapshots_epoch += 1
            self.program_epoch += 1

    def heard(self, what: str) -> None:
        """Another worker's change, as its notification names it (snapshot_watch.py): "snapshot",
        "program" or "restore"; a change of unknown kind, or the listener (re)connecting after a
        gap, clears the snapshots and the program."""
        if what == "restore":
            self.clear_all()
            return
        if what != "program":
            self.clear_snapshots()
        if what != "snapshot":
            self.clear_program()


@dataclass
class PulseState:
    """One app's engines, snapshot listener, disclosure rules, caches and rebuild timer."""

    engine: Engine
    # The small pool for the per-request "newest snapshot" check (storage.make_probe).
    probe: Engine
    # PostgreSQL only: this worker's LISTEN for other workers' changes (snapshot_watch.py).
    watch: SnapshotWatch | None
    # The disclosure rules with the perturbation table and its key, built once at start-up.
    disclosure_rules: Disclosure
    # Everything kept that a database change can make stale (Cache above).
    cache: Cache = field(default_factory=Cache)
    # Whether program.start has run in this worker (the PULSE_QUESTIONS survey stored).
    started: bool = False
    # Static files read and compressed once (assets.py): they change only with a new release.
    assets: dict = field(default_factory=dict)
    # When this worker last checked whether a rebuild is due, and the scheduled catch-up.
    last_rebuild_check: float = 0.0
    catch_up: threading.Timer | None = None
    # The timer that opens and closes surveys and rounds on schedule (schedules.Scheduler), made
    # by the first request or the serving worker, never before a fork.
    schedule: Any = None
    # Whether a request arrived without X-Forwarded-For although PULSE_PROXY_HOPS > 0 (limits.py).
    unforwarded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        """Stop the listener and close every pooled connection (tests, before a database is dropped)."""
        if self.watch is not None:
            self.watch.stop()
        if self.catch_up is not None:
            self.catch_up.cancel()
        if self.schedule is not None:
            self.schedule.stop()
        self.engine.dispose()
        if self.probe is not self.engine:
            self.probe.dispose()


def install(app: Flask, state: PulseState) -> None:
    app.extensions[EXTENSION] = state


def of(app: Flask | None = None) -> PulseState:
    """This app's state (the current app's without an argument)."""
    return (app or current_app).extensions[EXTENSION]
