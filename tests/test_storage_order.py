"""Storage keeps no order: nothing in a copy of the database sorts responses by arrival.

Each test sends 200 responses one by one through the API (no automatic snapshot in between)
and knows their arrival order; an attacker holding the database tries to recover it. Rank
correlation (Spearman's rho) with arrival must stay below 0.25 wherever Pulse can remove the
order. What a database engine keeps that Pulse cannot remove is measured, asserted as the
residue SECURITY.md describes ("Order"), and printed: run with `pytest -s` for the figures.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import struct

import pytest
from scipy.stats import spearmanr
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from survey_app import keys, program, response_queries, snapshots, state, storage
from survey_app.models import Response

from .helpers import make_app, submit_api, wal_commits

pytestmark = pytest.mark.both_databases

N = 200
RHO_LIMIT = 0.25
SURVEY_ID = "pulse-aftercare"
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def quiet_app(db_url, monkeypatch):
    """An app that builds no snapshot on its own: responses stay pending until a test builds one."""
    monkeypatch.setattr(snapshots, "rebuild_if_due", lambda survey: None)
    app = make_app(db_url)
    yield app
    state.of(app).close()


def arrive(app, n: int = N, every=None) -> list[str]:
    """n responses through the API, one by one: their ids in arrival order (and a snapshot
    after every `every` responses, if asked)."""
    client = app.test_client()
    ids = []
    for i in range(n):
        response = submit_api(client)
        assert response.status_code == 201
        key_hash = keys.keyed_hash(app.config["SECRET_KEY"], "response", response.get_json()["results_key"])
        with app.app_context():
            ids.append(response_queries.response_by_key(storage.reader(), key_hash).id)
        if every and (i + 1) % every == 0:
            with app.app_context():
                now = program.current_survey()
                assert snapshots.rebuild(storage.engine(), now, snapshots.disclosure_rules()) == i + 1
    return ids


def ranks(values) -> list[int]:
    """Rank of each value (equal values share one), so text columns can be correlated too."""
    order = {value: rank for rank, value in enumerate(sorted(set(values)))}
    return [order[value] for value in values]


def rho(arrival: list[str], ids: list[str], values) -> float:
    """Spearman's rho between arrival and a value per row (rows given by id, in any order)."""
    position = {row_id: n for n, row_id in enumerate(arrival)}
    return float(spearmanr([position[i] for i in ids], ranks(values)).statistic)


def rows(app, sql: str) -> list[tuple]:
    with state.of(app).engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


# ------------------------------------------------------------------ both databases


def test_no_column_orders_the_responses(quiet_app, db_url):
    arrival = arrive(quiet_app)
    columns = [c.name for c in Response.__table__.columns]
    with state.of(quiet_app).engine.connect() as conn:
        table = [tuple(row) for row in conn.execute(select(Response.__table__))]
    ids = [row[0] for row in table]
    assert sorted(ids) == sorted(arrival)
    measured = {}
    for n, column in enumerate(columns):
        values = [row[n] for row in table]
        if len(set(values)) == 1:
            continue  # one value for every row: it orders nothing
        if column == "week":
            continue  # the one time kept, on purpose as coarse as a week (a test run may cross a week's end)
        measured[column] = rho(arrival, ids, values)
    assert set(measured) >= {"id", "key_hash"}
    print(
        f"order [{db_url.split(':')[0]}]: rho with arrival per column: "
        + ", ".join(f"{c} {r:+.3f}" for c, r in measured.items())
    )
    assert all(abs(r) < RHO_LIMIT for r in measured.values()), measured


# ------------------------------------------------------------------ SQLite


@sqlite_only
@pytest.mark.parametrize(
    "query", ["SELECT rowid FROM responses", "SELECT _rowid_ FROM responses", "SELECT oid FROM responses"]
)
def test_sqlite_keeps_no_rowid(quiet_app, query):
    arrive(quiet_app, 3)
    with state.of(quiet_app).engine.connect() as conn:
        with pytest.raises(OperationalError, match="no such column"):
            conn.exec_driver_sql(query)
        assert conn.exec_driver_sql("SELECT count(*) FROM responses").scalar() == 3


@sqlite_only
def test_sqlite_file_order_is_not_arrival(quiet_app, db_url, tmp_path):
    """Neither SQLite's own scan order nor the file's pages order responses by arrival; within
    one page, where each row was written says a little (printed, in SECURITY.md)."""
    arrival = arrive(quiet_app)
    scan = [row[0] for row in rows(quiet_app, "SELECT id FROM responses")]
    # An attacker's copy of the file, its WAL moved in so that every row is in the file itself.
    copy = tmp_path / "copy.sqlite3"
    live = db_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(live)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(live, copy)
    cells = leaf_cells(copy, "responses")
    assert sorted(row_id for _, _, row_id in cells) == sorted(arrival)
    by_page = rho(arrival, [i for _, _, i in cells], [page for page, _, _ in cells])
    # Forensic order: by page, then by place in the page (SQLite fills a page from its end).
    forensic = sorted(cells, key=lambda cell: (cell[0], -cell[1]))
    by_place = rho(arrival, [i for _, _, i in forensic], range(len(forensic)))
    same_page, right = within_page_pairs(cells, arrival)
    print(
        f"order [sqlite]: scan rho {rho(arrival, scan, range(len(scan))):+.3f}, page number rho {by_page:+.3f}, "
        f"page-and-offset rho {by_place:+.3f}; {same_page / (N * (N - 1) / 2):.1%} of pairs share a page and "
        f"their offsets order {right / max(same_page, 1):.0%} of those rightly"
    )
    assert abs(rho(arrival, scan, range(len(scan)))) < RHO_LIMIT
    assert abs(by_page) < RHO_LIMIT
    assert abs(by_place) < RHO_LIMIT


@sqlite_only
def test_sqlite_wal_orders_only_its_recent_commits(quiet_app, db_url, tmp_path):
    """Residue (SECURITY.md): outside invite mode nothing checkpoints after a submission, so a
    copy of the -wal file taken now shows the order of the commits still in it."""
    arrival = arrive(quiet_app)
    live = db_url.removeprefix("sqlite:///")
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            shutil.copy(live + suffix, copy / ("pulse.sqlite3" + suffix))
    ordered = wal_arrivals(copy / "pulse.sqlite3", tmp_path / "replay")
    position = {row_id: n for n, row_id in enumerate(arrival)}
    recovered = [position[i] for i in ordered]
    print(f"order [sqlite]: the copied WAL orders {len(recovered)} of {N} responses exactly (the most recent ones)")
    # What it shows, it shows exactly, and only the most recent: SQLite copies the WAL into the
    # file once it holds 1,000 pages and then writes it again from the start.
    assert recovered == list(range(N - len(recovered), N))


# ------------------------------------------------------------------ PostgreSQL


def pg_order(app) -> tuple[list[str], list[int]]:
    """(ids in physical order, i.e. by ctid; the xmin of each of them)."""
    table = rows(app, "SELECT id, xmin::text::bigint FROM responses ORDER BY ctid")
    return [row[0] for row in table], [row[1] for row in table]


@postgresql_only
def test_postgresql_pending_rows_are_in_arrival_order(quiet_app):
    """Residue (SECURITY.md): until a snapshot counts them, xmin (the inserting transaction)
    orders the pending rows exactly, and so, in a table without gaps, does ctid."""
    arrival = arrive(quiet_app)
    ids, xmins = pg_order(quiet_app)
    by_xmin, by_ctid = rho(arrival, ids, xmins), rho(arrival, ids, range(len(ids)))
    print(f"order [postgresql]: pending rows: xmin rho {by_xmin:+.3f}, ctid rho {by_ctid:+.3f}")
    assert by_xmin == pytest.approx(1.0)
    assert len(set(xmins)) == N


@postgresql_only
@pytest.mark.parametrize("how", ["every pending row", "these ids"])
def test_postgresql_flagging_in_id_order_leaves_one_xmin_and_random_ctid(quiet_app, how):
    arrival = arrive(quiet_app)
    with quiet_app.app_context(), storage.writer() as db:
        ids = None if how == "every pending row" else list(arrival)
        response_queries.mark_counted_in_id_order(db, SURVEY_ID, 1, ids)
        # The planner settings it turned off are back for the rest of the transaction.
        assert db.connection().exec_driver_sql("SHOW enable_seqscan").scalar() == "on"
    ids, xmins = pg_order(quiet_app)
    assert rows(quiet_app, "SELECT count(*) FROM responses WHERE NOT in_snapshot") == [(0,)]
    by_ctid = rho(arrival, ids, range(len(ids)))
    print(f"order [postgresql]: flagged in id order ({how}): {len(set(xmins))} xmin, ctid rho {by_ctid:+.3f}")
    assert len(set(xmins)) == 1
    assert abs(by_ctid) < RHO_LIMIT


@postgresql_only
def test_postgresql_a_snapshot_leaves_one_xmin_and_random_ctid(quiet_app):
    arrival = arrive(quiet_app)
    with quiet_app.app_context():
        assert snapshots.rebuild(storage.engine(), program.current_survey(), snapshots.disclosure_rules()) == N
    ids, xmins = pg_order(quiet_app)
    by_ctid = rho(arrival, ids, range(len(ids)))
    print(f"order [postgresql]: after the snapshot: {len(set(xmins))} xmin, ctid rho {by_ctid:+.3f}")
    assert len(set(xmins)) == 1
    assert abs(by_ctid) < RHO_LIMIT


@postgresql_only
def test_postgresql_snapshots_leave_the_order_of_batches(quiet_app):
    """Residue (SECURITY.md): each snapshot rewrites the rows it counts in one transaction, so
    xmin no longer orders rows within a batch, but it still orders the batches."""
    every = 10
    arrival = arrive(quiet_app, every=every)
    ids, xmins = pg_order(quiet_app)
    xmin_of = dict(zip(ids, xmins))
    batches = [arrival[start : start + every] for start in range(0, N, every)]
    assert all(len({xmin_of[i] for i in batch}) == 1 for batch in batches)  # one xmin per batch
    assert len(set(xmins)) == len(batches)
    by_xmin, by_ctid = rho(arrival, ids, xmins), rho(arrival, ids, range(len(ids)))
    print(
        f"order [postgresql]: a snapshot after every {every}: {len(set(xmins))} xmin, "
        f"xmin rho {by_xmin:+.3f} (the batches' order), ctid rho {by_ctid:+.3f}"
    )
    assert by_xmin > 0.95


def test_privacy_page_says_what_the_database_keeps_of_the_order(client, db_url):
    html = client.get("/privacy").get_data(as_text=True)
    assert "filed under their random identifier" in html
    if db_url.startswith("postgresql"):
        assert "keeps a transaction number with every row" in html
    else:
        assert "write log still lists the most recent responses in order" in html


# ------------------------------------------------------------------ reading the files as an attacker


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    for n in range(9):
        byte = data[at + n]
        if n == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + n + 1
    raise AssertionError("unreachable")


def leaf_cells(path, table: str) -> list[tuple[int, int, str]]:
    """(page, offset in the page, id) of every row of a WITHOUT ROWID table, read from the file.

    Such a table is an index b-tree: interior pages (type 2) also hold rows; leaves are type 10.
    A row's record starts with the primary key, here the text id.
    """
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    data = path.read_bytes()
    page_size = struct.unpack(">H", data[16:18])[0] or 65536
    found = []

    def walk(page: int) -> None:
        base = (page - 1) * page_size
        header = base + (100 if page == 1 else 0)
        kind, count = data[header], struct.unpack(">H", data[header + 3 : header + 5])[0]
        assert kind in (2, 10), f"page {page} is not an index b-tree page"
        size = 12 if kind == 2 else 8
        for n in range(count):
            offset = struct.unpack(">H", data[header + size + 2 * n : header + size + 2 * n + 2])[0]
            at = base + offset
            if kind == 2:
                walk(struct.unpack(">I", data[at : at + 4])[0])
                at += 4
            _, at = _varint(data, at)  # payload size
            record_header, body = _varint(data, at)
            serial_type, _ = _varint(data, body)
            start = at + record_header
            found.append((page, offset, data[start : start + (serial_type - 13) // 2].decode()))
        if kind == 2:
            walk(struct.unpack(">I", data[header + 8 : header + 12])[0])

    walk(root)
    return found


def within_page_pairs(cells, arrival) -> tuple[int, int]:
    """How many pairs of rows share a page, and for how many of them the later-written place
    (a lower offset) belongs to the later arrival."""
    position = {row_id: n for n, row_id in enumerate(arrival)}
    pages: dict[int, list[tuple[int, int]]] = {}
    for page, offset, row_id in cells:
        pages.setdefault(page, []).append((offset, position[row_id]))
    same = right = 0
    for members in pages.values():
        for n, (offset_a, arrived_a) in enumerate(members):
            for offset_b, arrived_b in members[n + 1 :]:
                same += 1
                right += (offset_a < offset_b) == (arrived_a > arrived_b)
    return same, right


def wal_arrivals(copy, scratch) -> list[str]:
    """Response ids in the order the copied WAL's commits added them (opened after each commit)."""
    seen: set[str] = set()
    ordered = []
    for n, path in enumerate(wal_commits(copy, scratch)):
        try:
            with contextlib.closing(sqlite3.connect(path)) as db:
                now = {row[0] for row in db.execute("SELECT id FROM responses")}
        except sqlite3.DatabaseError:
            # Old page images of the first commits laid over a file checkpointed since: unreadable,
            # to an attacker too. The commits after them still read.
            continue
        if n:
            ordered += sorted(now - seen)  # a commit adds one response: this is its place in the order
        seen = now
    return ordered
