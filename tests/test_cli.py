"""The pulse command: start-up checks, demo data, snapshots, survey state and invites."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from survey_app import keys, program_queries, snapshot_queries, state, storage
from survey_app.cli import main
from survey_app.models import InviteCode, Response

from .helpers import ROOT, SECRET, make_app, submit_api

pytestmark = pytest.mark.both_databases


def run(db_url, *args, input=None, env=None):
    environ = {"SECRET_KEY": SECRET, "DATABASE_URL": db_url, "PULSE_QUESTIONS": str(ROOT / "questions.yaml")}
    environ.update(env or {})
    return CliRunner().invoke(main, list(args), env=environ, input=input, catch_exceptions=False)


def test_serve_refuses_without_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "PULSE_ENV")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "-m", "survey_app", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr and "PULSE_ENV=development" in result.stderr


def test_serve_refuses_several_workers_with_memory_limits(db_url):
    result = run(db_url, "serve", "--workers", "3")
    assert result.exit_code != 0 and "redis://" in result.output


def test_broken_questions_file_stops_start_up_with_file_and_line(db_url):
    bad = ROOT / "tests" / "data" / "bad_type.yaml"
    result = run(db_url, "snapshot", env={"PULSE_QUESTIONS": str(bad)})
    assert result.exit_code != 0
    assert str(bad) in result.output and "line 13" in result.output and "unknown type" in result.output


def test_bad_setting_is_named(db_url):
    result = run(db_url, "snapshot", env={"PULSE_SMALL_COUNT_K": "many"})
    assert result.exit_code != 0 and "PULSE_SMALL_COUNT_K" in result.output


def test_demo_data_then_snapshot(db_url):
    result = run(db_url, "demo-data", "30", "--seed", "1")
    assert result.exit_code == 0, result.output
    app = make_app(db_url)
    with app.app_context():
        db = storage.reader()
        assert db.scalar(select(func.count()).select_from(Response)) == 30
        assert program_queries.is_demo(db)
        assert snapshot_queries.latest_snapshot(db, "pulse-aftercare", 1).responses == 30
    state.of(app).close()


def test_snapshot_refuses_a_stored_answer_it_cannot_count(db_url):
    """Damaged data (a number where an option key belongs) stops the rebuild with one line naming
    the question, and stores no snapshot, instead of counting it as an answer with no option."""
    app = make_app(db_url)
    assert submit_api(app.test_client()).status_code == 201
    with app.app_context(), storage.writer() as db:
        row = db.scalars(select(Response)).one()
        row.answers = row.answers.replace('"practice_type":"psychiatry"', '"practice_type":7')
        assert '"practice_type":7' in row.answers
    state.of(app).close()
    result = run(db_url, "snapshot", "--full", env={"PULSE_RELEASE_THRESHOLD": "1", "PULSE_SNAPSHOT_MIN_NEW": "1"})
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == (
        "Error: A stored response to pulse-aftercare@1 cannot be counted: its answer to 'practice_type' "
        "must be one option key (a string). The responses table holds data Pulse did not write."
    )
    with app.app_context():
        assert snapshot_queries.latest_snapshot(storage.reader(), "pulse-aftercare", 1) is None
    state.of(app).close()


def test_demo_data_refuses_real_responses(db_url):
    app = make_app(db_url)
    assert submit_api(app.test_client()).status_code == 201
    state.of(app).close()
    result = run(db_url, "demo-data", "5")
    assert result.exit_code != 0 and "real responses" in result.output


def test_survey_close_and_open(db_url):
    assert "(pulse-aftercare@1) is closed." in run(db_url, "survey", "close").output
    app = make_app(db_url)
    assert submit_api(app.test_client()).status_code == 409
    assert "is current and open for responses" in run(db_url, "survey", "open").output
    assert submit_api(app.test_client()).status_code == 201
    state.of(app).close()


def test_invites_are_stored_only_as_hashes(db_url):
    result = run(db_url, "invites", "3")
    codes = [line for line in result.output.splitlines() if line and not line.startswith("note")]
    assert len(codes) == 3
    app = make_app(db_url)
    with app.app_context():
        stored = set(storage.reader().scalars(select(InviteCode.code_hash)))
    assert stored == {keys.keyed_hash(SECRET, "invite", c) for c in codes}
    state.of(app).close()


@pytest.mark.parametrize(
    "command", [["export"], ["topics", "list"], ["snapshot"], ["report", "--out", "{tmp}"], ["create-admin", "ada"]]
)
def test_commands_other_than_serve_and_migrate_never_change_the_schema(tmp_path, command):
    path = tmp_path / "empty.sqlite3"
    args = [part.format(tmp=tmp_path / "out") for part in command]
    result = run(f"sqlite:///{path}", *args, input="a long enough password\n")
    assert result.exit_code != 0
    assert "pulse migrate" in result.output and "nothing was changed" in result.output
    with sqlite3.connect(path) as conn:  # no table was created, not even Alembic's
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 0
    assert run(f"sqlite:///{path}", "migrate").exit_code == 0
    # now current: the same command runs (and says nothing is published yet, rather than "migrate")
    result = run(f"sqlite:///{path}", "export")
    assert "nothing is published yet" in result.output and "pulse migrate" not in result.output


def test_version_and_the_name_in_help():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and re.fullmatch(r"pulse \d+\.\d+\.\d+\n", result.output)
    via_module = subprocess.run(
        [sys.executable, "-m", "survey_app", "--help"], capture_output=True, text=True, timeout=60
    )
    assert via_module.returncode == 0 and via_module.stdout.startswith("Usage: pulse ")
    sub = subprocess.run(
        [sys.executable, "-m", "survey_app", "topics", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "SECRET_KEY"},
    )
    assert sub.returncode == 0 and sub.stdout.startswith("Usage: pulse topics ")  # --help needs no app


def dev_app(instance, db_url):
    """An app in development mode with no SECRET_KEY set, on this instance folder."""
    from survey_app import create_app

    return create_app(
        {
            "PULSE_ENV": "development",
            "SECRET_KEY": None,
            "DATABASE_URL": db_url,
            "PULSE_QUESTIONS": str(ROOT / "questions.yaml"),
            "TESTING": True,
            "RATELIMIT_ENABLED": False,
            "PULSE_MIN_FILL_SECONDS": 0,
        },
        instance_path=str(instance),
    )


def test_development_keeps_its_generated_secret_key_in_the_instance_folder(tmp_path, db_url):
    from survey_app import secret_note

    first = dev_app(tmp_path / "instance", db_url)
    kept = tmp_path / "instance" / "secret_key"
    assert kept.read_text().strip() == first.config["SECRET_KEY"] and len(first.config["SECRET_KEY"]) >= 32
    assert kept.stat().st_mode & 0o777 == 0o600  # readable by its owner only
    results_key = submit_api(first.test_client()).json["results_key"]
    state.of(first).close()
    # A restart (or another worker, or a `pulse` command) reads the same key: results keys keep working.
    again = dev_app(tmp_path / "instance", db_url)
    assert again.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    response = again.test_client().get("/api/v1/benchmarks", headers={"X-Results-Key": results_key})
    assert response.status_code == 200 and response.json["you"]["index"] == 100
    # And the start says where it is kept; a set SECRET_KEY makes no file and no note.
    assert str(kept) in secret_note(again) and "production" in secret_note(again)
    state.of(again).close()
    assert secret_note(make_app(db_url)) is None


def test_a_kept_secret_key_is_never_replaced(tmp_path):
    from survey_app import ConfigError, kept_secret

    path = tmp_path / "secret_key"
    path.write_text("k" * 64 + "\n")
    assert kept_secret(path) == "k" * 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no candidate left behind
    path.write_text("short")
    with pytest.raises(ConfigError, match="delete it"):
        kept_secret(path)


# ------------------------------------------------------------ organisers' mistakes: one line, non-zero, nothing written


def one_line_refusal(result, *parts: str) -> None:
    """A refusal as organisers must see it: a non-zero exit and the whole output (stdout and
    stderr) one line, so no usage block, traceback or second line of a message hides around it."""
    assert result.exit_code != 0
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for part in parts:
        assert part in lines[0], result.output


@pytest.mark.parametrize("how", ["survey add", "start-up"])
def test_a_scoring_value_of_another_type_is_refused_in_one_line(db_url, tmp_path, how):
    # `at_least: two` reached int() unchecked: a ValueError's traceback, at start-up too.
    path = tmp_path / "survey.yaml"
    text = (ROOT / "questions.yaml").read_text()
    path.write_text(text.replace("extra: {at_least: 2, points: 5}", "extra: {at_least: two, points: 5}"))
    before = run(db_url, "survey", "list").output
    result = (
        run(db_url, "survey", "add", str(path))
        if how == "survey add"
        else run(db_url, "survey", "list", env={"PULSE_QUESTIONS": str(path)})
    )
    one_line_refusal(
        result, f"{path}, line 230: index scoring for 'integration_support': 'at_least' in 'extra' must be a whole"
    )
    assert run(db_url, "survey", "list").output == before


def test_export_and_report_say_nothing_is_published_and_write_nothing(db_url, tmp_path):
    out = tmp_path / "report"
    one_line_refusal(
        run(db_url, "report", "--out", str(out)), "nothing is published yet", "pulse-aftercare@1", "10 clinics"
    )
    one_line_refusal(run(db_url, "export", "--out", str(tmp_path / "x.csv")), "nothing is published yet")
    one_line_refusal(run(db_url, "export"), "nothing is published yet")
    assert not out.exists() and not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("where", ["missing", "file", "unwritable"])
def test_export_and_report_into_a_bad_place_say_so(db_url, tmp_path, where):
    app = make_app(db_url)
    client = app.test_client()
    for _ in range(10):
        assert submit_api(client).status_code == 201
    state.of(app).close()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    target = {"missing": tmp_path / "no" / "such" / "folder", "file": blocker, "unwritable": locked / "inner"}[where]
    try:
        if where == "unwritable" and os.access(locked, os.W_OK):  # root writes anywhere: use a file's child
            target = blocker / "inner"
        csv_target = target / "export.csv" if where != "file" else blocker / "export.csv"
        one_line_refusal(run(db_url, "export", "--out", str(csv_target)), str(csv_target.parent))
        result = run(db_url, "report", "--out", str(target))
        if where == "missing":  # a missing folder is made
            assert result.exit_code == 0, result.output
        else:
            one_line_refusal(result, str(target))
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize(
    "content, parts",
    [
        (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), ["not UTF-8 text"]),
        (b"\x7fELF\x02\x01\x01\x00" * 8, ["line 1: invalid YAML: unacceptable character #x007f"]),
        (b"\0" * 4096, ["line 1: invalid YAML: unacceptable character #x0000"]),
        (b"#" * (1 << 20), ["larger than 64 KB"]),
        ("/dev/zero", ["a folder, a device or a pipe"]),
    ],
    ids=["binary", "ELF of ASCII", "NUL bytes", "1 MiB", "/dev/zero"],
)
def test_survey_add_refuses_a_file_that_is_no_survey_in_one_line(db_url, tmp_path, content, parts):
    path = Path(content) if isinstance(content, str) else tmp_path / "survey.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    before = run(db_url, "survey", "list").output
    one_line_refusal(run(db_url, "survey", "add", str(path)), str(path), *parts)
    assert run(db_url, "survey", "list").output == before


@pytest.mark.parametrize(
    "args",
    [["report", "--out", ""], ["export", "--out", ""], ["survey", "add", ""], ["backup", ""], ["restore", ""]],
    ids=["report", "export", "survey add", "backup", "restore"],
)
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(db_url, tmp_path, monkeypatch, args):
    # Path("") is Path("."): `pulse report --out ''` wrote its files wherever the command ran.
    app = make_app(db_url)
    for _ in range(10):
        assert submit_api(app.test_client()).status_code == 201
    state.of(app).close()
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    one_line_refusal(run(db_url, *args), "empty; name one, or '.' for the current folder")
    assert list(here.iterdir()) == []


def test_survey_add_refuses_a_control_character_in_a_title_in_one_line(db_url, tmp_path):
    # Stored, the title would reach /feed.atom and make it XML no reader takes.
    path = tmp_path / "comfort.yaml"
    text = (ROOT / "surveys" / "patient-comfort.yaml").read_text()
    path.write_text(text.replace("title: The Pulse of Patient Comfort", r'title: "Comfort \x0b \e title"'))
    before = run(db_url, "survey", "list").output
    one_line_refusal(
        run(db_url, "survey", "add", str(path)), f"{path}, line 7: survey: 'title' contains the character U+000B"
    )
    assert run(db_url, "survey", "list").output == before


@pytest.mark.parametrize(
    "args, says, command",
    [
        (["export", "--out", "{dir}"], "'{dir}' is a directory", "export"),
        (["survey", "add", "{dir}"], "'{dir}' is a directory", "survey add"),
        (["invites", "0"], "0 is not in the range 1<=x<=100000", "invites"),
        (["invites", "--", "-1"], "-1 is not in the range 1<=x<=100000", "invites"),
        (["invites", "100001"], "100001 is not in the range 1<=x<=100000", "invites"),
        (["invites", "abc"], "'abc' is not a valid whole number", "invites"),
        (["invites"], "Missing argument 'N'", "invites"),
        (["demo-data", "many"], "'many' is not a valid whole number", "demo-data"),
        (["serve", "--port", "0"], "0 is not in the range 1<=x<=65535", "serve"),
        (["restore", "{dir}/none.sqlite3"], "does not exist", "restore"),
        (["survey", "schedule", "comfort"], "give --opens TIME, --closes TIME or both", "survey schedule"),
        (["topics", "merge", "t1"], "Missing argument 'INTO_ID'", "topics merge"),
        (["export", "--bogus"], "No such option '--bogus'", "export"),
        (["no-such-command"], "No such command 'no-such-command'", ""),
    ],
)
def test_usage_errors_are_one_line_and_change_nothing(db_url, tmp_path, args, says, command):
    """click's usage block (usage, hint, blank line, error) is four lines; organisers get one."""
    folder = tmp_path / "folder"
    folder.mkdir()
    before = run(db_url, "survey", "list").output
    result = run(db_url, *[arg.format(dir=folder) for arg in args])
    one_line_refusal(result, says.format(dir=folder))
    assert result.exit_code == 2 and result.output.endswith(f" (pulse {command} --help)\n".replace("  ", " "))
    assert "integer range" not in result.output
    assert run(db_url, "survey", "list").output == before
    assert list(folder.iterdir()) == []
    app = make_app(db_url)
    with app.app_context():
        assert storage.reader().scalar(select(func.count()).select_from(InviteCode)) == 0
    state.of(app).close()


def test_help_keeps_its_usage_block():
    result = CliRunner().invoke(main, ["invites", "--help"])
    assert result.exit_code == 0 and result.output.startswith("Usage: pulse invites [OPTIONS] N\n\n")
    assert "Print N single-use invite codes" in result.output and "--help" in result.output


def test_serve_on_a_busy_port_names_the_port_option(db_url):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        one_line_refusal(run(db_url, "serve", "--port", str(port)), f"port {port}", "in use", "--port")
