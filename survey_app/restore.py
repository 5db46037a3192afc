"""Restoring a backup (backup.py's file) into an empty database, SQLite or PostgreSQL, at the current schema.

The file is checked before anything else: a SQLite file, whole (not truncated, not damaged),
marked as a Pulse backup, of a format and schema revision this Pulse knows. The target must be
reachable and hold no row in any table (a schema alone is fine). A backup from an older Pulse
is brought to the current schema on a temporary copy, by the same migrations a database takes;
then the rows are copied in one transaction, every table in primary-key order: a restored
PostgreSQL table lies in the order of its random ids, and all its rows carry one transaction
id, so neither says in which order responses arrived. Anything that fails leaves the target
without a row.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy import Integer, create_engine, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from . import backup, migrate, storage
from .backup import BackupError, Progress

# What every SQLite file starts with.
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_HEADER = 100
# SQLite page cache for the restoring connection (128 MiB): the random keys of the unique index
# make one large transaction touch pages all over it; a bigger cache writes each far fewer times.
RESTORE_CACHE_SQL = "PRAGMA cache_size=-131072"


@dataclass(frozen=True)
class BackupFile:
    """A checked backup file: where, its format and its schema revision."""

    path: Path
    format: int
    revision: str


def check_backup(path: Path) -> BackupFile:
    """The backup's format and revision, after checking that it is a whole Pulse backup this Pulse can read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(SQLITE_HEADER)
    except OSError as exc:
        raise BackupError(f"{path}: cannot read it ({exc.strerror})") from None
    if not header.startswith(SQLITE_MAGIC):
        raise BackupError(f"{path} is not a Pulse backup (not a SQLite file); make one with `pulse backup FILE`")
    expected = _size_in_header(header)
    if len(header) < SQLITE_HEADER or (expected is not None and size < expected):
        raise BackupError(
            f"{path} is truncated: {size} bytes where its header says {expected}; "
            "the copy is incomplete, use another backup"
        )
    try:
        with contextlib.closing(_read_only(path)) as db:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{path} is damaged (SQLite's check says: {check}); use another backup")
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if backup.META_TABLE not in names:
                raise BackupError(
                    f"{path} is a SQLite file but not a Pulse backup (it has no {backup.META_TABLE} "
                    "table); make one with `pulse backup FILE`"
                )
            fmt, revision = db.execute(_META_SQL).fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is damaged or not a Pulse backup ({exc})") from None
    if not isinstance(fmt, int) or not isinstance(revision, str):
        raise BackupError(f"{path} is damaged: its {backup.META_TABLE} table does not say what it holds")
    if fmt > backup.FORMAT:
        raise BackupError(
            f"{path} is a backup of format {fmt}, made by a newer Pulse (this one reads format "
            f"{backup.FORMAT}): upgrade Pulse first; nothing was changed"
        )
    if not migrate.known(revision):
        raise BackupError(
            f"{path} holds schema revision {revision}, newer than this Pulse knows (newest: "
            f"{migrate.head()}): restore it with the Pulse that made it, or a newer one; "
            "nothing was changed"
        )
    return BackupFile(path, fmt, revision)


_META_SQL = "SELECT format, revision FROM pulse_backup"


def _size_in_header(header: bytes) -> int | None:
    """The file size the SQLite header promises, when the header's page count is valid."""
    if len(header) < SQLITE_HEADER:
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The count is valid only if written by the same change as the header's change counter.
    if header[24:28] != header[92:96] or pages == 0:
        return None
    return page_size * pages


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro", uri=True, check_same_thread=False)


def restore_backup(path: Path, engine: Engine, progress: Progress | None = None) -> dict[str, int]:
    """Load a backup into the empty database behind `engine`, at the current schema: rows per table."""
    found = check_backup(path)
    where = storage.describe(str(engine.url))
    try:
        with engine.connect() as conn:
            revision = migrate.current_revision(conn)
            full = backup.tables_with_rows(conn)
    except SQLAlchemyError as exc:
        raise BackupError(
            f"cannot reach the database at {where} ({backup.first_line(exc)}); nothing was changed"
        ) from None
    if full:
        raise BackupError(
            f"the database at {where} is not empty ({', '.join(full)} hold rows): "
            f"restore {path} into an empty database; nothing was changed"
        )
    if revision is not None and not migrate.known(revision):
        raise BackupError(
            f"the database at {where} has schema revision {revision}, newer than this Pulse knows; nothing was changed"
        )
    with _at_current_schema(found) as source_engine:
        try:
            migrate.upgrade(engine.url.render_as_string(hide_password=False))
            with source_engine.connect() as source:
                total = sum(source.scalar(select(func.count()).select_from(t)) for t in backup.tables())
                counts = _copy(source, engine, total, progress, path)
            storage.checkpoint_wal(engine)  # SQLite: into the file, and no WAL the size of the database
            return counts
        except SQLAlchemyError as exc:
            raise BackupError(
                f"restoring {path} into {where} failed ({backup.first_line(exc)}); the database holds no row of it"
            ) from None
        finally:
            source_engine.dispose()


def _copy(source: Connection, engine: Engine, total: int, progress: Progress | None, path: Path) -> dict[str, int]:
    where = storage.describe(str(engine.url))
    with engine.execution_options(pulse_write=True).connect() as target:
        sqlite = target.dialect.name == "sqlite"
        if sqlite:
            target.exec_driver_sql(RESTORE_CACHE_SQL)
            target.commit()
        try:
            with target.begin():
                if sqlite:
                    # Checked at commit: a row may refer to one later in the same table (a merged topic).
                    target.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
                # Asked again inside the writing transaction: a Pulse started meanwhile may have written.
                full = backup.tables_with_rows(target)
                if full:
                    raise BackupError(
                        f"the database at {where} is not empty ({', '.join(full)} hold rows): "
                        f"restore {path} into an empty database; nothing was changed"
                    )
                counts = backup.copy_tables(source, target, total, progress)
                if not sqlite:
                    _advance_sequences(target)
                    # At commit, every serving worker's listener forgets all it kept (state.Cache.heard).
                    target.execute(select(func.pg_notify(storage.SNAPSHOT_CHANNEL, "restore")))
        finally:
            if sqlite:
                target.invalidate()  # not back into the pool: its large cache goes with it
    return counts


def _advance_sequences(target: Connection) -> None:
    """PostgreSQL: every serial id's sequence past the restored ids, so new rows get new ids."""
    for table in backup.tables():
        key = list(table.primary_key.columns)
        if len(key) != 1 or not isinstance(key[0].type, Integer):
            continue
        sequence = target.scalar(select(func.pg_get_serial_sequence(table.name, key[0].name)))
        if sequence is not None:
            after = select(func.coalesce(func.max(key[0]), 0) + 1).scalar_subquery()
            target.execute(select(func.setval(sequence, after, False)))


@contextlib.contextmanager
def _at_current_schema(found: BackupFile) -> Iterator[Engine]:
    """An engine reading the backup's rows at the current schema: the file itself (read-only) when
    it is current, else a temporary copy upgraded by the migrations."""
    if found.revision == migrate.head():
        yield create_engine("sqlite://", creator=lambda: _read_only(found.path))
        return
    with tempfile.TemporaryDirectory(prefix="pulse-restore-") as folder:
        copy = Path(folder) / "backup.sqlite3"
        shutil.copyfile(found.path, copy)
        try:
            migrate.upgrade(f"sqlite:///{copy}")
        except Exception as exc:  # noqa: BLE001 - any failure of an old migration is the file's problem
            raise BackupError(
                f"{found.path}: bringing it from schema {found.revision} to {migrate.head()} "
                f"failed ({backup.first_line(exc)}); nothing was changed"
            ) from None
        yield create_engine(f"sqlite:///{copy}")
