"""`pulse backup` and `pulse restore`: consistent copies under load, the move SQLite → PostgreSQL →
SQLite, the backup before a schema change, and bad input refused with nothing changed."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from survey_app import admin_auth, backup, keys, migrate, response_queries, restore, snapshots, state, storage
from survey_app.models import Admin, Ballot, BallotApproval, InviteCode, Response, Snapshot, Topic
from survey_app.questions import load_survey, validate_answers

from .helpers import (
    ADMIN_PASSWORD,
    ROOT,
    SECRET,
    admin_login,
    clinic,
    fill,
    make_app,
    row_count,
    run_pulse,
    submit_api,
    wait_until,
)

pytestmark = pytest.mark.both_databases

SURVEY_ID = "pulse-aftercare"


def open_backup(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def data_rows(path: Path) -> dict[str, int]:
    """Rows per Pulse table in a backup file."""
    with contextlib.closing(open_backup(path)) as db:
        present = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {
            t.name: db.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0]  # noqa: S608 - test's own names
            for t in backup.tables()
            if t.name in present
        }


def database_rows(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: conn.scalar(select(func.count()).select_from(t)) for t in backup.tables()}
    finally:
        engine.dispose()


def take(app, path: Path) -> backup.Backup:
    with app.app_context():
        return backup.write_backup(storage.engine(), path)


# ------------------------------------------------------------------ a consistent copy under load


def assert_consistent(path: Path, survey) -> int:
    """A backup file is whole and consistent: integrity, no WAL, every snapshot's rows, whole rows; responses."""
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-journal").exists()
    with contextlib.closing(open_backup(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert db.execute("SELECT format, revision FROM pulse_backup").fetchall() == [(1, migrate.head())]
        for survey_id, version, counted in db.execute("SELECT survey_id, survey_version, responses FROM snapshots"):
            flagged = db.execute(
                "SELECT count(*) FROM responses WHERE survey_id = ? AND survey_version = ? AND in_snapshot = 1",
                (survey_id, version),
            ).fetchone()[0]
            assert flagged == counted, "a snapshot and the rows it counts come from different moments"
        rows = db.execute("SELECT answers, key_hash, in_snapshot FROM responses").fetchall()
    for answers, key_hash, flag in rows:
        assert not validate_answers(survey, json.loads(answers))[1] and len(key_hash) == 64 and flag in (0, 1)
    return len(rows)


def test_backup_during_200_concurrent_submissions_is_consistent(db_url, tmp_path):
    app = make_app(db_url)
    survey = app.config["SURVEY"]
    fill(app, app.test_client(), 16)  # a first snapshot; the submissions below grow it by 25% at a time
    failures: list[int] = []

    def submit(seed: int) -> None:
        client, rng = app.test_client(), random.Random(seed)
        for _ in range(25):
            status = submit_api(client, clinic(rng.randrange(16))).status_code
            if status != 201:
                failures.append(status)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: row_count(app) >= 16 + 10)
    taken = []
    while any(t.is_alive() for t in threads) or not taken:
        taken.append(take(app, tmp_path / f"during-{len(taken)}.sqlite3").path)
    for thread in threads:
        thread.join()
    assert not failures and row_count(app) == 216
    counts = [assert_consistent(path, survey) for path in taken]
    assert any(16 < n < 216 for n in counts), f"no backup was taken while submissions ran: {counts}"
    assert counts == sorted(counts)
    assert assert_consistent(take(app, tmp_path / "after.sqlite3").path, survey) == 216
    with app.app_context():  # and the live database agrees: one snapshot, counting exactly its flagged rows
        db = storage.reader()
        [counted] = db.scalars(select(Snapshot.responses))
        assert db.scalar(select(func.count()).select_from(Response).where(Response.in_snapshot)) == counted
    assert not list(tmp_path.glob(".*partial*"))  # no temporary file left behind
    state.of(app).close()


def test_backup_holds_no_wal_no_deleted_invite_hash_and_no_secret(db_url, tmp_path):
    app = make_app(db_url)
    fill(app, app.test_client(), 12)
    kept, deleted = (keys.keyed_hash(SECRET, "invite", keys.new_invite_code()) for _ in range(2))
    with app.app_context():
        with storage.writer() as db:
            response_queries.add_invites(db, SURVEY_ID, [kept, deleted])
        storage.checkpoint_wal()
    if db_url.startswith("sqlite"):
        # Deleted the plain way (no zeroing), so the live file still holds the hash: the control.
        live = Path(db_url.removeprefix("sqlite:///"))
        with contextlib.closing(sqlite3.connect(live, isolation_level=None)) as db:
            db.execute("PRAGMA secure_delete=0")
            db.execute("DELETE FROM invite_codes WHERE code_hash = ?", (deleted,))
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert deleted.encode() in live.read_bytes()
    else:
        with app.app_context(), storage.writer() as db:
            db.execute(InviteCode.__table__.delete().where(InviteCode.code_hash == deleted))
    (tmp_path / "backups").mkdir()
    path = take(app, tmp_path / "backups" / "nightly.sqlite3").path
    assert [p.name for p in path.parent.iterdir()] == ["nightly.sqlite3"]  # no -wal, -journal or partial
    content = path.read_bytes()
    assert kept.encode() in content  # the search would find a hash
    assert deleted.encode() not in content
    assert SECRET.encode() not in content
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only, like the secrets it protects
    state.of(app).close()


# ------------------------------------------------------------------ SQLite → PostgreSQL → SQLite


@pytest.fixture
def invite_survey(tmp_path):
    path = tmp_path / "invite.yaml"
    path.write_text((ROOT / "questions.yaml").read_text().replace("invite_only: false", "invite_only: true"))
    return path


def community_app(url, survey_file):
    return make_app(url, PULSE_QUESTIONS=str(survey_file), SURVEY=load_survey(survey_file))


def observe(url, survey_file, results_keys) -> dict:
    """What a move must keep, read without changing anything."""
    app = community_app(url, survey_file)
    client = app.test_client()
    seen = {
        "you": [client.get("/api/v1/benchmarks", headers={"X-Results-Key": k}).get_json() for k in results_keys],
        "topics": sorted(t["id"] for t in client.get("/api/v1/topics").get_json()["topics"]),
        "every topic": row_count(app, Topic),
        "ballots": row_count(app, Ballot),
        "approvals": row_count(app, BallotApproval),
        "invites": row_count(app, InviteCode),
        "admins": row_count(app, Admin),
    }
    state.of(app).close()
    return seen


def test_move_sqlite_to_postgresql_and_back(sqlite_template, pg_databases, invite_survey, tmp_path):
    env = {"PULSE_QUESTIONS": str(invite_survey)}
    first = tmp_path / "first.sqlite3"
    shutil.copy(sqlite_template, first)
    first_url = f"sqlite:///{first}"
    app = community_app(first_url, invite_survey)
    client = app.test_client()
    codes = run_pulse(first_url, "invites", "20", env=env).output.split()
    results_keys = [submit_api(client, clinic(i), invite_code=codes[i]).get_json()["results_key"] for i in range(16)]
    with app.app_context():
        snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
        admin_auth.create_admin("ada", ADMIN_PASSWORD)
    topic_ids = [
        client.post(
            "/api/v1/topics", json={"title": f"Topic {i}"}, headers={"X-Results-Key": results_keys[i]}
        ).get_json()["id"]
        for i in range(3)
    ]
    for topic_id in topic_ids:
        assert run_pulse(first_url, "topics", "approve", topic_id, env=env).exit_code == 0
    for i in range(3, 6):  # merged topics refer to another row of their own table
        duplicate = client.post(
            "/api/v1/topics", json={"title": f"Topic {i}"}, headers={"X-Results-Key": results_keys[i]}
        ).get_json()["id"]
        assert run_pulse(first_url, "topics", "merge", duplicate, topic_ids[0], env=env).exit_code == 0
    assert run_pulse(first_url, "round", "open", env=env).exit_code == 0
    for i, key in enumerate(results_keys[:5]):
        ballot = client.put("/api/v1/ballot", json={"approve": topic_ids[: 1 + i % 3]}, headers={"X-Results-Key": key})
        assert ballot.status_code == 200
    assert run_pulse(first_url, "release", env=env).exit_code == 0
    state.of(app).close()
    before = observe(first_url, invite_survey, results_keys)
    assert before["you"][0]["you"] and before["ballots"] == 5 and before["invites"] == 4

    # SQLite → PostgreSQL (a database with no schema at all)
    postgres_url = pg_databases()
    made = run_pulse(first_url, "backup", str(tmp_path / "from-sqlite.backup"), env=env)
    assert made.exit_code == 0 and "16 responses" in made.output
    restored = run_pulse(postgres_url, "restore", str(tmp_path / "from-sqlite.backup"), env=env)
    assert restored.exit_code == 0, restored.output
    assert observe(postgres_url, invite_survey, results_keys) == before
    engine = create_engine(postgres_url)
    with engine.connect() as conn:  # stored in id order: the table's layout says nothing of arrival
        physical = list(conn.scalars(text("SELECT id FROM responses ORDER BY ctid")))
        assert physical == sorted(physical) and len(physical) == 16
    engine.dispose()

    # PostgreSQL → SQLite
    made = run_pulse(postgres_url, "backup", str(tmp_path / "from-postgresql.backup"), env=env)
    assert made.exit_code == 0, made.output
    with contextlib.closing(open_backup(tmp_path / "from-postgresql.backup")) as db:
        in_file_order = [row[0] for row in db.execute("SELECT id FROM ballots ORDER BY rowid")]
        assert in_file_order == sorted(in_file_order)  # copied by the random id, not by arrival
    last = tmp_path / "last.sqlite3"
    last_url = f"sqlite:///{last}"
    assert run_pulse(last_url, "restore", str(tmp_path / "from-postgresql.backup"), env=env).exit_code == 0
    assert observe(last_url, invite_survey, results_keys) == before
    with contextlib.closing(sqlite3.connect(last)) as db:
        assert "WITHOUT ROWID" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'responses'").fetchone()[0]

    # A rebuild gives the same published figures everywhere; logins, used codes and new ids keep working.
    published, tallies = {}, {}
    for url in (first_url, postgres_url, last_url):
        app = community_app(url, invite_survey)
        client = app.test_client()
        with app.app_context():
            snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
            assert storage.reader().scalar(select(func.count()).select_from(Snapshot)) == 1
        published[url] = client.get("/api/v1/benchmarks").get_json()
        assert admin_login(client).status_code == 303
        assert submit_api(client, clinic(1), invite_code=codes[3]).status_code == 422  # used before the move
        assert submit_api(client, clinic(1), invite_code=codes[16]).status_code == 201  # unused: still good
        with app.app_context():
            admin_auth.create_admin("bea", ADMIN_PASSWORD)  # a new serial id after the restored ones
        tallies[url] = run_pulse(url, "round", "close", env=env).output
        state.of(app).close()
    assert published[first_url] == published[postgres_url] == published[last_url]
    assert tallies[first_url] == tallies[postgres_url] == tallies[last_url] and "Topic 0" in tallies[first_url]
    assert published[first_url]["published"] and published[first_url]["responses"] == 16


def test_restore_into_a_schema_alone(db_url, sqlite_template, tmp_path):
    source = tmp_path / "source.sqlite3"
    shutil.copy(sqlite_template, source)
    app = make_app(f"sqlite:///{source}")
    fill(app, app.test_client(), 12)
    path = take(app, tmp_path / "b.sqlite3").path
    state.of(app).close()
    result = run_pulse(db_url, "restore", str(path))  # db_url: the current schema, no rows
    assert result.exit_code == 0, result.output
    assert database_rows(db_url) == data_rows(path)


# ------------------------------------------------------------------ a backup before a schema change


def old_database(folder: Path, rows: bool = True) -> Path:
    """A SQLite database at revision 0004 (before responses lost their rowid), with rows if asked."""
    folder.mkdir(exist_ok=True)
    path = folder / "pulse.sqlite3"
    migrate.upgrade(f"sqlite:///{path}", "0004")
    if rows:
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.executemany(
                "INSERT INTO responses (id, survey_id, survey_version, answers, week, key_hash, "
                "in_snapshot) VALUES (?, ?, 1, ?, '2026-W48', ?, 0)",
                [
                    (f"{i:08d}-0000-4000-8000-000000000000", SURVEY_ID, json.dumps(clinic(i)), f"{i:064x}")
                    for i in range(7)
                ],
            )
    return path


def pre_migration_backups(database: Path) -> list[Path]:
    return sorted(database.parent.glob(f"{database.name}.pre-migration.*.backup"))


def test_migrate_backs_up_before_changing_the_schema_and_keeps_the_last_three(tmp_path):
    database = old_database(tmp_path)
    url = f"sqlite:///{database}"
    written = []
    for _ in range(4):
        result = run_pulse(url, "migrate")
        assert result.exit_code == 0 and "before changing its schema" in result.output
        written.append(pre_migration_backups(database)[-1])
        migrate.downgrade(url, "0004")
    assert pre_migration_backups(database) == written[1:]
    for path in written[1:]:
        assert restore.check_backup(path).revision == "0004" and data_rows(path)["responses"] == 7
    # A backup of the older schema restores at the current one (brought up to date on a copy).
    target = tmp_path / "restored.sqlite3"
    result = run_pulse(f"sqlite:///{target}", "restore", str(written[-1]))
    assert result.exit_code == 0, result.output
    assert database_rows(f"sqlite:///{target}")["responses"] == 7
    assert restore.check_backup(written[-1]).revision == "0004"  # the file itself is left as it was
    with contextlib.closing(sqlite3.connect(target)) as db:
        assert "WITHOUT ROWID" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'responses'").fetchone()[0]
        assert db.execute("SELECT version_num FROM alembic_version").fetchone()[0] == migrate.head()


@pytest.mark.parametrize("case", ["current", "new", "empty"])
def test_no_backup_when_there_is_nothing_to_migrate_or_to_lose(tmp_path, case):
    if case == "new":
        database = tmp_path / "pulse.sqlite3"
    else:
        database = old_database(tmp_path, rows=False)
        if case == "current":
            migrate.upgrade(f"sqlite:///{database}")
    result = run_pulse(f"sqlite:///{database}", "migrate")
    assert result.exit_code == 0 and "Backed up" not in result.output
    assert pre_migration_backups(database) == []


def failing_migrations(tmp_path) -> Path:
    """The packaged migrations plus one more that changes the data, then fails half way."""
    folder = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        '"""fails half way"""\nfrom alembic import op\n\nrevision = "9999"\ndown_revision = "HEAD"\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n"
        '    op.execute("DELETE FROM responses")\n    op.execute("DROP TABLE invite_codes")\n'
        '    raise RuntimeError("a migration that fails half way")\n\n\ndef downgrade():\n    pass\n'
    )
    (folder / "versions" / "9999_fails.py").write_text(script.replace('"HEAD"', f'"{migrate.head()}"'))
    return folder


def test_failed_migration_is_undone_from_the_backup_beside_the_database(tmp_path, monkeypatch):
    database = old_database(tmp_path)
    url = f"sqlite:///{database}"
    migrate.upgrade(url)  # the current schema, with rows
    head = migrate.head()
    expected = database_rows(url)
    monkeypatch.setattr(migrate, "MIGRATIONS", failing_migrations(tmp_path))
    with pytest.raises(RuntimeError, match="fails half way"):
        run_pulse(url, "migrate")
    [saved] = pre_migration_backups(database)
    assert restore.check_backup(saved).revision == head
    monkeypatch.undo()  # back to this Pulse's migrations, as an organiser goes back to the last release
    target = tmp_path / "restored.sqlite3"
    result = run_pulse(f"sqlite:///{target}", "restore", str(saved))
    assert result.exit_code == 0, result.output
    assert database_rows(f"sqlite:///{target}") == expected and expected["responses"] == 7


# ------------------------------------------------------------------ bad input: a clear error, nothing changed


@pytest.fixture
def good_backup(sqlite_template, tmp_path) -> Path:
    source = tmp_path / "source.sqlite3"
    shutil.copy(sqlite_template, source)
    app = make_app(f"sqlite:///{source}")
    fill(app, app.test_client(), 12)
    path = take(app, tmp_path / "good.backup").path
    state.of(app).close()
    return path


def refused(db_url, path, *message):
    """`pulse restore path` fails naming the file (or database) and the problem, and adds no row."""
    before = database_rows(db_url)
    result = run_pulse(db_url, "restore", str(path))
    assert result.exit_code != 0 and "Traceback" not in result.output
    for part in message:
        assert part in result.output, result.output
    assert database_rows(db_url) == before
    return result


def test_restore_refuses_a_database_that_is_not_empty(db_url, good_backup):
    app = make_app(db_url)
    assert submit_api(app.test_client()).status_code == 201
    state.of(app).close()
    refused(db_url, good_backup, "is not empty", "responses", "nothing was changed")


def test_restore_refuses_a_file_that_is_not_a_backup(db_url, tmp_path, sqlite_template):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database\n" * 20)
    refused(db_url, text_file, str(text_file), "not a Pulse backup")
    refused(db_url, sqlite_template, str(sqlite_template), "not a Pulse backup", "pulse_backup")


def test_restore_refuses_a_truncated_backup(db_url, good_backup, tmp_path):
    cut = tmp_path / "cut.backup"
    cut.write_bytes(good_backup.read_bytes()[: good_backup.stat().st_size // 2])
    refused(db_url, cut, str(cut), "is truncated")


def test_restore_refuses_a_damaged_backup(db_url, good_backup, tmp_path):
    damaged = tmp_path / "damaged.backup"
    content = bytearray(good_backup.read_bytes())
    page = 4096
    content[page * 2 + 8 : page * 2 + 200] = b"\xff" * 192  # a page's cells overwritten
    damaged.write_bytes(bytes(content))
    refused(db_url, damaged, str(damaged))


@pytest.mark.parametrize(
    "field, value, message",
    [("revision", "9999", "newer than this Pulse knows"), ("format", 2, "made by a newer Pulse")],
)
def test_restore_refuses_a_backup_from_a_newer_pulse(db_url, good_backup, tmp_path, field, value, message):
    newer = tmp_path / "newer.backup"
    shutil.copy(good_backup, newer)
    with contextlib.closing(sqlite3.connect(newer)) as db, db:
        db.execute(f"UPDATE pulse_backup SET {field} = ?", (value,))  # noqa: S608 - the test's own column names
    refused(db_url, newer, str(newer), message)


def test_restore_refuses_an_unreachable_postgresql(good_backup):
    url = "postgresql+psycopg://postgres@127.0.0.1:9/pulse"
    result = run_pulse(url, "restore", str(good_backup))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "cannot reach the database at postgresql+psycopg://postgres@127.0.0.1:9/pulse" in result.output
    assert "nothing was changed" in result.output


def test_restore_that_fails_half_way_leaves_no_row(db_url, good_backup, monkeypatch):
    copy = backup.copy_tables

    def copy_then_fail(*args):
        copy(*args)
        raise restore.SQLAlchemyError("the disk filled up")

    monkeypatch.setattr(backup, "copy_tables", copy_then_fail)
    refused(db_url, good_backup, "failed", "the disk filled up", "holds no row")


def test_backup_never_overwrites_a_file(db_url, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    existing = folder / "precious.sqlite3"
    existing.write_bytes(b"keep me")
    result = run_pulse(db_url, "backup", str(existing))
    assert result.exit_code != 0 and f"{existing} already exists" in result.output
    assert existing.read_bytes() == b"keep me"
    missing = folder / "no-such-folder" / "b.sqlite3"
    result = run_pulse(db_url, "backup", str(missing))
    assert result.exit_code != 0 and "does not exist" in result.output
    assert [p.name for p in folder.iterdir()] == ["precious.sqlite3"]


def test_backup_refuses_an_old_schema_like_every_command(tmp_path):
    database = old_database(tmp_path)
    result = run_pulse(f"sqlite:///{database}", "backup", str(tmp_path / "b.sqlite3"))
    assert result.exit_code != 0 and "pulse migrate" in result.output
    assert not (tmp_path / "b.sqlite3").exists()


def test_privacy_page_says_backups_exist_and_what_they_hold(client):
    page = client.get("/privacy").get_data(as_text=True)
    assert "<h2>Backups</h2>" in page
    assert "does not hold the secret key" in page and "nor the order in which responses arrived" in page


def test_restore_leaves_the_schema_of_a_database_it_refuses(good_backup, tmp_path):
    database = old_database(tmp_path / "old")  # revision 0004, with rows
    result = run_pulse(f"sqlite:///{database}", "restore", str(good_backup))
    assert result.exit_code != 0 and "is not empty" in result.output
    with contextlib.closing(sqlite3.connect(database)) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0004"
