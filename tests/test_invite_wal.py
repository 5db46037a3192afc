"""Invite mode on SQLite: a copy of the database files cannot pair an invite code with a response.

The attacker here holds the files as they were copied from a running Pulse (the database, its
-wal and its -shm), the full list of invite codes and the SECRET_KEY, so they can compute every
code's stored hash. Without the checkpoint after each invite submission, the WAL keeps each
commit's pages together: replaying it commit by commit shows which code's row disappeared in the
same commit as which response appeared (test_without_the_checkpoint_the_wal_pairs_every_code).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from survey_app import keys, response_queries, state, storage
from survey_app.questions import load_survey

from .helpers import FULL_ANSWERS, ROOT, form_tokens, make_app, post_form, submit_api, wal_commits

N = 8
SURVEY_ID = "pulse-aftercare"


@pytest.fixture
def live_db(sqlite_template, tmp_path) -> Path:
    (tmp_path / "live").mkdir()
    path = tmp_path / "live" / "pulse.sqlite3"
    shutil.copy(sqlite_template, path)
    return path


@pytest.fixture
def invite_app(live_db, tmp_path):
    survey_file = tmp_path / "invite.yaml"
    survey_file.write_text((ROOT / "questions.yaml").read_text().replace("invite_only: false", "invite_only: true"))
    app = make_app(f"sqlite:///{live_db}", PULSE_QUESTIONS=str(survey_file), SURVEY=load_survey(survey_file))
    assert app.config["SURVEY"].invite_only
    yield app
    state.of(app).close()


def add_codes(app, n: int) -> list[str]:
    codes = [keys.new_invite_code() for _ in range(n)]
    with app.app_context(), storage.writer() as db:
        response_queries.add_invites(db, SURVEY_ID, [code_hash(app, c) for c in codes])
    return codes


def code_hash(app, code: str) -> str:
    return keys.keyed_hash(app.config["SECRET_KEY"], "invite", code)


def submit_with_every_code(app) -> dict[str, str]:
    """Each code used once through the API: {code hash: the id of the response it let in}."""
    client = app.test_client()
    truth = {}
    for code in add_codes(app, N):
        response = submit_api(client, invite_code=code)
        assert response.status_code == 201
        with app.app_context():
            key_hash = keys.keyed_hash(app.config["SECRET_KEY"], "response", response.get_json()["results_key"])
            truth[code_hash(app, code)] = response_queries.response_by_key(storage.reader(), key_hash).id
    return truth


def copy_files(live: Path, to: Path) -> Path:
    """What an attacker copies from the running server: the database file, -wal and -shm."""
    to.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = live.with_name(live.name + suffix)
        if source.exists():
            shutil.copy(source, to / source.name)
    return to / live.name


def wal_bytes(copy: Path) -> bytes:
    wal = copy.with_name(copy.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


def replay(copy: Path, scratch: Path, hashes: set[str]) -> dict[str, str]:
    """The attack: open the copy as it stood after each commit in its WAL, and pair the code
    that disappeared with the response that appeared in the same commit."""
    states = []
    for path in wal_commits(copy, scratch):
        with contextlib.closing(sqlite3.connect(path)) as db:
            states.append(
                (
                    {row[0] for row in db.execute("SELECT code_hash FROM invite_codes")},
                    {row[0] for row in db.execute("SELECT id FROM responses")},
                )
            )
    links = {}
    for (codes_before, rows_before), (codes_after, rows_after) in zip(states, states[1:]):
        burned, added = (codes_before - codes_after) & hashes, rows_after - rows_before
        if len(burned) == 1 and len(added) == 1:
            links[burned.pop()] = added.pop()
    return links


def shm_frame_pages(copy: Path) -> list[int]:
    """The pages the -shm file says the WAL's frames wrote (first block, native byte order)."""
    shm = copy.with_name(copy.name + "-shm")
    if not shm.exists() or shm.stat().st_size < 136 + 4 * 4062:
        return []
    return [p for p in struct.unpack("=4062I", shm.read_bytes()[136 : 136 + 4 * 4062]) if p]


def table_pages(copy: Path, table: str) -> set[int]:
    with contextlib.closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as db:
        try:
            return {row[0] for row in db.execute("SELECT pageno FROM dbstat WHERE name = ?", (table,))}
        except sqlite3.OperationalError:  # SQLite built without the dbstat table
            pytest.skip("this SQLite has no dbstat")


def traces(copy: Path, app, truth: dict[str, str]) -> list[str]:
    """Where any code, or any code's hash, occurs in the copied bytes."""
    found = []
    for path in sorted(copy.parent.iterdir()):
        data = path.read_bytes()
        for hashed in truth:
            for form in (hashed.encode(), hashed.upper().encode(), bytes.fromhex(hashed)):
                if form in data:
                    found.append(f"{path.name}: code hash {hashed[:12]}…")
    return found


def test_a_copy_of_the_files_pairs_no_code_with_a_response(invite_app, live_db, tmp_path):
    truth = submit_with_every_code(invite_app)
    copy = copy_files(live_db, tmp_path / "attacker")
    assert len(wal_bytes(copy)) == 0, "the WAL still holds commits"
    assert replay(copy, tmp_path / "replay", set(truth)) == {}
    assert traces(copy, invite_app, truth) == []
    # The copy is a working database: every response is there, and only the link is gone.
    with contextlib.closing(sqlite3.connect(copy)) as db:
        assert {row[0] for row in db.execute("SELECT id FROM responses")} == set(truth.values())
        assert db.execute("SELECT count(*) FROM invite_codes").fetchone()[0] == 0
    print(f"invite WAL: {N} codes used; copy has WAL {len(wal_bytes(copy))} bytes, 0 links, 0 code hashes")


def test_the_shm_file_names_no_page_of_the_responses(invite_app, live_db, tmp_path):
    """The -shm lists the page each WAL frame wrote until the next write: after the
    checkpoint it names page 1 alone, not the page that took the last response."""
    submit_with_every_code(invite_app)
    copy = copy_files(live_db, tmp_path / "attacker")
    written = set(shm_frame_pages(copy))
    assert written <= {1}
    assert not written & (table_pages(copy, "responses") | table_pages(copy, "invite_codes"))


def test_without_the_checkpoint_the_wal_pairs_every_code(invite_app, live_db, tmp_path, monkeypatch):
    """The attack works on the files as they were before the checkpoint: it is the checkpoint
    that stops it (this fails if the attack itself were broken)."""
    monkeypatch.setattr(storage, "checkpoint_wal", lambda bind=None: True)
    truth = submit_with_every_code(invite_app)
    copy = copy_files(live_db, tmp_path / "attacker")
    assert replay(copy, tmp_path / "replay", set(truth)) == truth


def test_without_zeroing_the_file_keeps_used_code_hashes(invite_app, live_db, tmp_path, monkeypatch):
    """Where SQLite is built with secure_delete off (most builds but Debian's), a deleted row's
    bytes stay in the page's free space, checkpoint or not: burn_invite zeroes them."""

    @contextlib.contextmanager
    def deletes_left_in_place(db):
        db.connection().exec_driver_sql("PRAGMA secure_delete=OFF")
        yield

    monkeypatch.setattr(storage, "zeroing_deletes", deletes_left_in_place)
    truth = submit_with_every_code(invite_app)
    copy = copy_files(live_db, tmp_path / "attacker")
    assert len(wal_bytes(copy)) == 0
    assert traces(copy, invite_app, truth), "a deleted row's bytes were zeroed without being asked to"


def test_zeroing_is_set_only_for_the_delete(invite_app):
    with invite_app.app_context(), storage.writer() as db:
        connection = db.connection()
        connection.exec_driver_sql("PRAGMA secure_delete=OFF")
        response_queries.burn_invite(db, SURVEY_ID, "0" * 64)
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 0


def test_the_form_path_empties_the_wal_too(invite_app, live_db, tmp_path):
    client = invite_app.test_client()
    code = add_codes(invite_app, 1)[0]
    tokens = form_tokens(client.get("/survey").get_data(as_text=True)) | {"invite_code": code}
    assert post_form(client, FULL_ANSWERS, tokens).status_code == 303
    copy = copy_files(live_db, tmp_path / "attacker")
    assert len(wal_bytes(copy)) == 0


def test_a_failed_checkpoint_still_stores_the_response(invite_app, monkeypatch, caplog):
    def broken(bind=None):
        raise OperationalError("PRAGMA wal_checkpoint(TRUNCATE)", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(storage, "checkpoint_wal", broken)
    code = add_codes(invite_app, 1)[0]
    with caplog.at_level(logging.WARNING):
        response = submit_api(invite_app.test_client(), invite_code=code)
    assert response.status_code == 201
    with invite_app.app_context():
        assert response_queries.count_responses(storage.reader(), SURVEY_ID, 1) == 1
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "WAL checkpoint" in logged
    results_key = response.get_json()["results_key"]
    for secret in (code, code.replace("-", ""), code_hash(invite_app, code), results_key):
        assert secret not in logged


def test_a_busy_checkpoint_is_logged_and_the_next_one_empties_the_wal(
    invite_app, live_db, tmp_path, monkeypatch, caplog
):
    """A reader holding older data keeps the WAL from being emptied; nothing fails, and the
    next invite submission after that reader finished leaves no pair behind."""
    monkeypatch.setattr(storage, "CHECKPOINT_BUSY_TIMEOUT_MS", 50)
    first, second = add_codes(invite_app, 2)
    client = invite_app.test_client()
    with contextlib.closing(sqlite3.connect(live_db, isolation_level=None)) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM responses").fetchone()  # holds a read snapshot
        with caplog.at_level(logging.WARNING):
            assert submit_api(client, invite_code=first).status_code == 201
        assert "could not finish" in " ".join(r.getMessage() for r in caplog.records)
        assert len(wal_bytes(live_db)) > 0
        reader.execute("COMMIT")
    assert submit_api(client, invite_code=second).status_code == 201
    copy = copy_files(live_db, tmp_path / "attacker")
    hashes = {code_hash(invite_app, first), code_hash(invite_app, second)}
    assert len(wal_bytes(copy)) == 0
    assert replay(copy, tmp_path / "replay", hashes) == {}


def test_privacy_page_says_what_invite_mode_protects_and_what_it_trusts(db_url, tmp_path):
    survey_file = tmp_path / "invite.yaml"
    survey_file.write_text((ROOT / "questions.yaml").read_text().replace("invite_only: false", "invite_only: true"))
    app = make_app(db_url, PULSE_QUESTIONS=str(survey_file), SURVEY=load_survey(survey_file))
    try:
        html = app.test_client().get("/privacy").get_data(as_text=True)
    finally:
        state.of(app).close()
    assert "Your invite code" in html
    assert "even together with the list of codes, cannot tell which code went with which response" in html
    assert "we trust them not to record submissions as they happen" in html
    if db_url.startswith("postgresql"):
        assert "its own transaction log keeps the code&#39;s deletion and your response side by side" in html
    else:
        assert "empties the database&#39;s write log" in html


def test_privacy_page_says_nothing_of_invites_without_invite_mode(client):
    assert "Your invite code" not in client.get("/privacy").get_data(as_text=True)
