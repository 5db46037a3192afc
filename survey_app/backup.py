"""Backups: one SQLite file holding every table Pulse keeps, taken while Pulse serves traffic.

SQLite: `VACUUM INTO`, one read transaction that writes a fresh, compact file: no WAL beside
it and no free pages, so nothing deleted (a used invite code's hash) lingers in its bytes.
PostgreSQL: one REPEATABLE READ, READ ONLY transaction whose rows are streamed in batches into a
SQLite file that the migrations made at the source's revision, every table in primary-key order
(so the copy's row order follows the random ids, never the order rows arrived in).
Either way the file is written under a temporary name beside FILE and renamed when complete;
an existing FILE is never overwritten. A table of its own, `pulse_backup`, marks the file as a
Pulse backup with its format and schema revision, which restore.py checks.

SECRET_KEY is never in a backup: it lives in the environment, not in the database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from psycopg import sql as pgsql
from sqlalchemy import Boolean, Index, Integer, String, Table, create_engine, func, insert, inspect, literal, select
from sqlalchemy import table as table_named
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import DropIndex

from . import migrate, storage
from .models import Base

_SQLITE = sqlite_dialect()

# The layout of a backup file; restore refuses a file of a format it does not know.
FORMAT = 1
# The table that marks a file as a Pulse backup. It exists only in backups, never in a database.
META_TABLE = "pulse_backup"
# Rows read and written per round trip: bounds memory however large the survey grows.
BATCH = 20_000
# Backups written before a schema change, kept beside the SQLite file (older ones are deleted).
KEEP_BEFORE_MIGRATION = 3
# SQLite calls the progress handler every this many virtual-machine instructions.
PROGRESS_EVERY = 200_000
# Tables that belong to the schema rather than to the data: an empty database may hold them.
SCHEMA_TABLES = frozenset({"alembic_version"})

# Column types whose Python values both drivers take as they are (sqlite3 stores a bool as 0 or
# 1, psycopg sends a boolean): copying skips SQLAlchemy's per-value checks for them.
AS_THEY_COME = (Boolean, Integer, String)
# (done, total) in the work's own unit (bytes for VACUUM INTO, rows otherwise).
Progress = Callable[[int, int], None]


class BackupError(Exception):
    """A backup or restore cannot go ahead; the message names the file or database and the problem."""


@dataclass(frozen=True)
class Backup:
    """A backup file as written: where, its schema revision, and the rows of each table."""

    path: Path
    revision: str
    rows: dict[str, int]


def tables() -> list[Table]:
    """Every table Pulse keeps, parents before the tables that refer to them."""
    return list(Base.metadata.sorted_tables)


def tables_with_rows(conn: Connection) -> list[str]:
    """The tables of this database holding at least one row (the schema's own bookkeeping aside)."""
    names = [n for n in inspect(conn).get_table_names() if n not in SCHEMA_TABLES]
    return [n for n in names if conn.scalar(select(literal(1)).select_from(table_named(n)).limit(1)) is not None]


def write_backup(engine: Engine, path: Path, progress: Progress | None = None) -> Backup:
    """Copy everything the database holds into a new SQLite file at `path`, consistently."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise BackupError(f"{path} already exists; a backup never overwrites a file: choose a new name")
    if not path.parent.is_dir():
        raise BackupError(f"{path}: the folder {path.parent} does not exist")
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise BackupError(f"{path}: cannot write in {path.parent} ({exc.strerror})") from None
    os.close(fd)  # an empty file, readable by its owner only: VACUUM INTO accepts an empty file
    partial = Path(name)
    try:
        if engine.dialect.name == "sqlite":
            _vacuum_into(engine, partial, progress)
        else:
            _copy_from_postgresql(engine, partial, progress)
        revision, rows = _mark(partial)
        _publish(partial, path)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: the backup failed ({exc}); nothing was written") from None
    except SQLAlchemyError as exc:
        raise BackupError(
            f"{path}: the backup failed reading {storage.describe(str(engine.url))} "
            f"({first_line(exc)}); nothing was written"
        ) from None
    finally:
        _remove(partial)
    return Backup(path, revision, rows)


def _vacuum_into(engine: Engine, partial: Path, progress: Progress | None) -> None:
    connection = engine.raw_connection()  # autocommit at the driver: VACUUM runs outside a transaction
    driver = connection.driver_connection
    try:
        if progress is not None:
            page_size = driver.execute("PRAGMA page_size").fetchone()[0]
            pages = (
                driver.execute("PRAGMA page_count").fetchone()[0]
                - driver.execute("PRAGMA freelist_count").fetchone()[0]
            )
            total = page_size * pages

            def report() -> int:
                progress(min(partial.stat().st_size, total), total)
                return 0  # anything else would abort the VACUUM

            driver.set_progress_handler(report, PROGRESS_EVERY)
        driver.execute("VACUUM INTO ?", (str(partial),))
    finally:
        driver.set_progress_handler(None, 0)
        connection.close()


def _copy_from_postgresql(engine: Engine, partial: Path, progress: Progress | None) -> None:
    with engine.connect() as conn:
        source = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with source.begin():
            revision = migrate.current_revision(source)
            if revision != migrate.head():
                raise BackupError(
                    f"the schema at {storage.describe(str(engine.url))} is at {revision}, not "
                    f"{migrate.head()}: run `pulse migrate` first; nothing was written"
                )
            # The file's schema is the one the migrations make on SQLite, so a later Pulse can upgrade it.
            migrate.upgrade(f"sqlite:///{partial}", revision)
            total = sum(source.scalar(select(func.count()).select_from(t)) for t in tables())
            target_engine = create_engine(f"sqlite:///{partial}")
            with target_engine.connect() as target:
                # A file nobody uses before it is renamed, and deleted on any failure: no journal and no
                # waiting for the disk while it fills (_mark syncs it once). A large page cache, because
                # the unique index's random keys make one big transaction touch pages all over it.
                for pragma in (
                    "PRAGMA journal_mode=OFF",
                    "PRAGMA synchronous=OFF",
                    "PRAGMA cache_size=-131072",
                    "VACUUM",
                ):
                    target.exec_driver_sql(pragma)
                target.commit()
                with target.begin():
                    # Secondary indexes are built once the rows are in (a sort), not row by row.
                    indexes = target.exec_driver_sql(_INDEXES_SQL).all()
                    for name, _sql in indexes:
                        target.execute(DropIndex(Index(name)))
                    copy_tables(source, target, total, progress)
                    for _name, sql in indexes:
                        target.exec_driver_sql(sql)
            target_engine.dispose()


def copy_tables(source: Connection, target: Connection, total: int, progress: Progress | None) -> dict[str, int]:
    """Copy every Pulse table's rows from source to target, each table in primary-key order."""
    done, counts = 0, {}
    for table in tables():
        write = row_writer(target, table)
        counts[table.name] = 0
        query = select(*table.columns).order_by(*table.primary_key.columns)
        with write as put:
            for rows in source.execution_options(yield_per=BATCH).execute(query).partitions():
                put(rows)
                counts[table.name] += len(rows)
                done += len(rows)
                if progress is not None:
                    progress(done, total)
    return counts


@contextlib.contextmanager
def _sqlite_rows(target: Connection, table: Table, prepare) -> Iterator[Callable[[Sequence], None]]:
    statement = insert(table).compile(dialect=target.dialect, column_keys=[c.key for c in table.columns])
    assert list(statement.positiontup) == [c.key for c in table.columns]
    cursor = target.connection.driver_connection.cursor()
    try:
        yield lambda rows: cursor.executemany(str(statement), prepare(rows))
    finally:
        cursor.close()


@contextlib.contextmanager
def _postgresql_rows(target: Connection, table: Table, prepare) -> Iterator[Callable[[Sequence], None]]:
    # One COPY per table: fast, and a row may refer to one later in the same table (a merged
    # topic), since PostgreSQL checks foreign keys at the end of the statement.
    statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(table.name), pgsql.SQL(", ").join(pgsql.Identifier(c.name) for c in table.columns)
    )
    with target.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:

        def put(rows: Sequence) -> None:
            for row in prepare(rows):
                copy.write_row(row)

        yield put


def row_writer(target: Connection, table: Table):
    """A context whose function inserts batches of rows (all columns, in table order) through the driver.

    Values go through each column type's bind processing for the target, as SQLAlchemy would
    send them, so tables added later (other types, JSON) copy correctly too.
    """
    processors = [
        (i, p)
        for i, c in enumerate(table.columns)
        if not isinstance(c.type, AS_THEY_COME)
        and (p := c.type.dialect_impl(target.dialect).bind_processor(target.dialect)) is not None
    ]

    def prepare(rows: Sequence) -> Sequence:
        if not processors:
            return rows
        out = []
        for row in rows:
            values = list(row)
            for i, process in processors:
                values[i] = process(values[i])
            out.append(values)
        return out

    writer = _postgresql_rows if target.dialect.name == "postgresql" else _sqlite_rows
    return writer(target, table, prepare)


def _mark(partial: Path) -> tuple[str, dict[str, int]]:
    """Add the pulse_backup table and make the file durable: (schema revision, rows per table)."""
    with contextlib.closing(sqlite3.connect(partial, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=DELETE")
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        rows = {name: db.execute(_count_sql(name)).fetchone()[0] for name in _data_tables(db)}
        db.execute("BEGIN")
        db.execute(_CREATE_META_SQL)
        db.execute(_INSERT_META_SQL, (FORMAT, revision))
        db.execute("COMMIT")
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    return revision, rows


# The indexes a schema declares (UNIQUE and PRIMARY KEY constraints' own indexes have no sql).
_INDEXES_SQL = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
_CREATE_META_SQL = "CREATE TABLE pulse_backup (format INTEGER NOT NULL, revision TEXT NOT NULL)"
_INSERT_META_SQL = "INSERT INTO pulse_backup (format, revision) VALUES (?, ?)"


def _data_tables(db: sqlite3.Connection) -> list[str]:
    """The tables of a SQLite file that hold Pulse's data (a backup at an older revision has fewer)."""
    names = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return [n for n in names if n not in SCHEMA_TABLES | {META_TABLE} and not n.startswith("sqlite_")]


def _count_sql(name: str) -> str:
    return str(select(func.count()).select_from(table_named(name)).compile(dialect=_SQLITE))


def _publish(partial: Path, path: Path) -> None:
    """Give the finished file its name, never replacing a file that appeared meanwhile."""
    try:
        os.link(partial, path)  # fails if path exists, unlike a rename
    except FileExistsError:
        raise BackupError(f"{path} already exists; a backup never overwrites a file: choose a new name") from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise BackupError(f"{path} already exists; a backup never overwrites a file") from None
        os.replace(partial, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the new name survives a power loss too
    finally:
        os.close(fd)


def _remove(partial: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{partial}{suffix}").unlink()


def first_line(exc: Exception) -> str:
    """The first line of an error, the driver's own message when SQLAlchemy wraps one."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


# ------------------------------------------------------------------ before a schema change


def upgrade_with_backup(url: str, progress: Progress | None = None) -> Path | None:
    """Bring the schema to the newest revision; on SQLite, first a backup beside the file when the
    change would touch a database holding rows. The backup's path, if one was written."""
    written = None
    engine = storage.make_engine(url)
    try:
        if engine.dialect.name == "sqlite" and make_url(url).database not in (None, "", ":memory:"):
            written = _backup_before_migration(engine, Path(make_url(url).database), progress)
    finally:
        engine.dispose()
    migrate.upgrade(url)
    return written


def _backup_before_migration(engine: Engine, database: Path, progress: Progress | None) -> Path | None:
    revision = migrate.current_revision(engine)
    if revision is None or revision == migrate.head():
        return None  # a new database, or nothing to migrate
    with engine.connect() as conn:
        if not tables_with_rows(conn):
            return None  # nothing to lose
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = database.with_name(f"{database.name}.pre-migration.{stamp}.{revision}.backup")
    try:
        write_backup(engine, path, progress)
    except BackupError as exc:
        raise BackupError(
            f"could not back up {database} before changing its schema: {exc}; the schema was not changed"
        ) from None
    for old in sorted(database.parent.glob(f"{database.name}.pre-migration.*.backup"))[:-KEEP_BEFORE_MIGRATION]:
        old.unlink()
    return path
