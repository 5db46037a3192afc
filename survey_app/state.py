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


@dataclass
class PulseState:
    """One app's engines, snapshot listener, disclosure rules, caches and rebuild timer."""

    engine: Engine
    # The small pool for the per-request "newest snapshot" check (storage.make_probe).
    probe: Engine
    # PostgreSQL only: this worker's LISTEN for new snapshots (snapshot_watch.py).
    watch: SnapshotWatch | None
    # The disclosure rules with the perturbation table and its key, built once at start-up.
    disclosure_rules: Disclosure
    # Stored survey definitions by (id, version), parsed once: a stored definition never changes.
    definitions: dict = field(default_factory=dict)
    # (listener generation, (id, version)) of the current survey as last read (program.current_survey).
    current_survey_key: tuple | None = None
    # (current survey, {survey: its earlier wave}) as program.earlier_wave last found them.
    waves: tuple = (None, {})
    # Whether program.start has run in this worker (the PULSE_QUESTIONS survey stored).
    started: bool = False
    # The latest snapshot per (survey id, version), as served (snapshots.ServedSnapshot).
    snapshots: dict = field(default_factory=dict)
    # Chart figures per (snapshot, participant's answers): charts are not rebuilt per request.
    figures: LruCache = field(default_factory=lambda: LruCache(256))
    # The public results page, rendered once per snapshot and split where the CSP nonce goes.
    public_pages: dict = field(default_factory=dict)
    # Static files read and compressed once (assets.py).
    assets: dict = field(default_factory=dict)
    # When this worker last checked whether a rebuild is due, and the scheduled catch-up.
    last_rebuild_check: float = 0.0
    catch_up: threading.Timer | None = None
    # (checked at, value) of "does this database hold demo data?".
    demo: tuple[float | None, bool] = (None, False)
    # Whether a request arrived without X-Forwarded-For although PULSE_PROXY_HOPS > 0 (limits.py).
    unforwarded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        """Stop the listener and close every pooled connection (tests, before a database is dropped)."""
        if self.watch is not None:
            self.watch.stop()
        if self.catch_up is not None:
            self.catch_up.cancel()
        self.engine.dispose()
        if self.probe is not self.engine:
            self.probe.dispose()


def install(app: Flask, state: PulseState) -> None:
    app.extensions[EXTENSION] = state


def of(app: Flask | None = None) -> PulseState:
    """This app's state (the current app's without an argument)."""
    return (app or current_app).extensions[EXTENSION]
