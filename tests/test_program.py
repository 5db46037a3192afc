"""The survey program (PRODUCT.md, "The survey program"): `pulse survey add|open|close|list`, the
current survey, closing with a final snapshot, /surveys and /results per survey, results keys
across surveys, `--survey` on the organisers' commands, and disclosure control per survey.

Every "refused" case also checks that nothing changed: every row of every table, before and after.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from survey_app import (
    admin_actions,
    admin_auth,
    keys,
    program,
    program_queries,
    response_queries,
    snapshot_queries,
    snapshots,
    state,
    storage,
)
from survey_app.models import Ballot, Base, Response, Snapshot
from survey_app.pipeline.tallies import Tally
from survey_app.questions import load_survey

from .helpers import (
    ADMIN_PASSWORD,
    FULL_ANSWERS,
    ROOT,
    SECRET,
    admin_login,
    clinic,
    form_tokens,
    make_app,
    post_form,
    row_count,
    run_pulse,
    submit_api,
)

pytestmark = pytest.mark.both_databases

AFTERCARE_FILE = ROOT / "questions.yaml"
COMFORT_FILE = ROOT / "surveys" / "patient-comfort.yaml"
AFTERCARE = load_survey(AFTERCARE_FILE)
COMFORT = load_survey(COMFORT_FILE)
# Every invalid survey file the start-up tests use (good_small.yaml is the one valid file there).
BAD_FILES = sorted(p for p in (ROOT / "tests" / "data").glob("*.yaml") if p.name != "good_small.yaml")


# ------------------------------------------------------------------ helpers


def every_row(url: str) -> dict[str, list]:
    """Every row of every Pulse table and Alembic's, as sorted text: what "nothing changed" compares."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = {
                t.name: sorted(tuple(repr(v) for v in row) for row in conn.execute(select(t)))
                for t in Base.metadata.sorted_tables
            }
            rows["alembic_version"] = list(conn.scalars(text("SELECT version_num FROM alembic_version")))
    finally:
        engine.dispose()
    return rows


@contextmanager
def web(db_url: str):
    """An app and a client built now (after a command changed the program), closed afterwards."""
    app = make_app(db_url)
    try:
        yield app, app.test_client()
    finally:
        state.of(app).close()


def comfort(i: int, practice_type: str = "dedicated_clinic") -> dict:
    """Answers to the patient-comfort survey: clinic i of a few, all of one practice type."""
    return {
        "practice_type": practice_type,
        "session_preferences": ["lighting", "music"] if i % 2 else ["physical_comfort"],
        "settle_before": "min_15_plus",
        "recovery_space": "private_room" if i % 3 else "shared_quiet_area",
        "settle_after": "when_ready",
        "discomfort_signals": ["withdrawn", "patient_feedback"],
        "series_completion": "pct_90_plus",
    }


def submit_to(client, survey, answers):
    """POST one response to a survey's own path."""
    return client.post(f"/api/v1/surveys/{survey.id}/{survey.version}/responses", json={"answers": answers})


def benchmarks_of(client, survey, key: str | None = None):
    headers = {"X-Results-Key": key} if key is not None else {}
    return client.get(f"/api/v1/surveys/{survey.id}/{survey.version}/benchmarks", headers=headers)


def ok(result):
    """A command that must succeed; its output."""
    assert result.exit_code == 0, result.output
    return result.output


def refused(db_url: str, *args, message: tuple[str, ...] = (), env=None):
    """`pulse ARGS` fails with a clean message holding every part of `message`, and changes no row."""
    before = every_row(db_url)
    result = run_pulse(db_url, *args, env=env)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    for part in message:
        assert part in result.output, result.output
    assert every_row(db_url) == before
    return result.output


def listed(output: str) -> dict[str, dict]:
    """`pulse survey list` as {id@version: {survey, title, status, weeks, responses, topic, current}}."""
    lines = [line for line in output.splitlines() if line.strip() and not line.startswith("(")]
    header = re.split(r"\s{2,}", lines[0].strip())
    rows = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line[2:].strip())
        row = dict(zip(header, cells)) | {"current": line.startswith("* ")}
        rows[row["survey"]] = row
    return rows


def answer_aftercare(db_url: str, n: int) -> list[str]:
    """n responses to the current survey (the aftercare survey); their keys."""
    with web(db_url) as (_app, client):
        found = [submit_api(client, clinic(i % 16)).get_json()["results_key"] for i in range(n)]
    assert all(found)
    return found


def answer_comfort(db_url: str, n: int, practice_type: str = "dedicated_clinic") -> list[str]:
    """n responses to the current survey (the comfort survey); their keys."""
    with web(db_url) as (_app, client):
        found = []
        for i in range(n):
            response = submit_api(client, comfort(i, practice_type))
            assert response.status_code == 201, response.get_json()
            found.append(response.get_json()["results_key"])
    return found


def two_surveys(db_url: str, n_aftercare: int = 12, n_comfort: int = 12) -> tuple[list[str], list[str]]:
    """The aftercare survey answered n_aftercare times and closed by opening the comfort survey,
    which is current and answered n_comfort times; both surveys' keys."""
    aftercare_keys = answer_aftercare(db_url, n_aftercare)
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    ok(run_pulse(db_url, "survey", "open", "patient-comfort"))
    return aftercare_keys, answer_comfort(db_url, n_comfort)


def snapshot_n(db_url: str, survey) -> int | None:
    with web(db_url) as (app, _client), app.app_context():
        return snapshot_queries.latest_snapshot_responses(storage.reader(), survey.id, survey.version)


def variant(tmp_path: Path, name: str, old: str, new: str, source: Path = COMFORT_FILE) -> Path:
    """A copy of a survey file with one change."""
    content = source.read_text()
    assert old in content, old
    path = tmp_path / f"{name}.yaml"
    path.write_text(content.replace(old, new, 1))
    return path


def enter_key(client, key: str):
    """The key form (POST /results) as a browser sends it, with a CSRF token of this session."""
    tokens = form_tokens(client.get("/survey").get_data(as_text=True))
    return client.post("/results", data={"csrf_token": tokens["csrf_token"], "results_key": key})


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return response.get_data(as_text=True)


def score_on(html: str) -> int:
    """The index the scorecard ("Your clinic") shows."""
    found = re.search(r'<span class="score-number">(\d+)</span>', html)
    assert found, "no scorecard on the page"
    return int(found.group(1))


# ------------------------------------------------------------------ pulse survey add


def test_add_stores_a_survey_and_lists_it_as_added(db_url):
    output = ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    assert "patient-comfort@1" in output and "pulse survey open patient-comfort@1" in output
    rows = listed(ok(run_pulse(db_url, "survey", "list")))
    added = rows["patient-comfort@1"]
    assert (added["title"], added["status"], added["responses"], added["topic"], added["current"]) == (
        COMFORT.title,
        "added",
        "0",
        "-",
        False,
    )
    # The PULSE_QUESTIONS survey was stored and made current at the first start.
    assert rows["pulse-aftercare@1"]["status"] == "open" and rows["pulse-aftercare@1"]["current"]
    with web(db_url) as (app, _client), app.app_context():
        stored = program_queries.stored_survey(storage.reader(), "patient-comfort", 1)
        assert stored.definition == COMFORT_FILE.read_text() and stored.topic_id is None


def test_adding_the_same_survey_again_changes_nothing(db_url, tmp_path):
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    before = every_row(db_url)
    assert "already stored, unchanged; nothing to do" in ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    # The same definition written differently (a comment, other quoting) is the same survey.
    reformatted = tmp_path / "reformatted.yaml"
    reformatted.write_text(
        "# polished layout, same survey\n"
        + COMFORT_FILE.read_text().replace(
            "title: The Pulse of Patient Comfort", 'title: "The Pulse of Patient Comfort"'
        )
    )
    assert "nothing to do" in ok(run_pulse(db_url, "survey", "add", str(reformatted)))
    # And the packaged survey, stored at start, is the same.
    assert "nothing to do" in ok(run_pulse(db_url, "survey", "add", str(AFTERCARE_FILE)))
    assert every_row(db_url) == before


CHANGES = {
    "title": ("title: The Pulse of Patient Comfort", "title: The Pulse of Comfort"),
    "intro": ("It takes about three minutes.", "It takes about four minutes."),
    "question text": (
        "text: After a session, where do patients usually rest?",
        "text: After a session, where do patients rest?",
    ),
    "option label": ("        label: Music or other sound", "        label: Music"),
    "option added": (
        "      - {key: none, label: None of these routinely, exclusive: true}\n\n  - key: settle_before",
        "      - {key: aroma, label: Scent}\n"
        "      - {key: none, label: None of these routinely, exclusive: true}\n\n  - key: settle_before",
    ),
    "points": ("{lighting: 7, music: 7, physical_comfort: 6}", "{lighting: 6, music: 7, physical_comfort: 7}"),
    "invite mode": ("invite_only: false", "invite_only: true"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_survey_under_a_stored_version_is_refused_and_nothing_changes(db_url, tmp_path, change):
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    changed = variant(tmp_path, "changed", *CHANGES[change])
    refused(
        db_url,
        "survey",
        "add",
        str(changed),
        message=(str(changed), "patient-comfort@1", "a changed survey needs a new version", "Nothing was changed"),
    )


def test_a_changed_survey_with_a_topic_links_nothing_and_a_new_version_is_a_new_wave(db_url, tmp_path):
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    with web(db_url) as (_app, client):
        key = submit_api(client).get_json()["results_key"]
        topic = client.post("/api/v1/topics", json={"title": "Comfort"}, headers={"X-Results-Key": key}).get_json()
    changed = variant(tmp_path, "changed", *CHANGES["question text"])
    refused(db_url, "survey", "add", str(changed), "--topic", topic["id"], message=("needs a new version",))
    # Under a new version the same change is a new wave, stored beside the first.
    wave = variant(tmp_path, "wave", "version: 1", "version: 2", source=changed)
    ok(run_pulse(db_url, "survey", "add", str(wave)))
    rows = listed(ok(run_pulse(db_url, "survey", "list")))
    assert rows["patient-comfort@1"]["status"] == rows["patient-comfort@2"]["status"] == "added"


def test_a_changed_packaged_survey_is_refused_by_add_and_at_start(db_url, tmp_path):
    ok(run_pulse(db_url, "survey", "list"))  # started: pulse-aftercare@1 stored
    changed = variant(
        tmp_path, "questions", "Which best describes your practice?", "What is your practice?", source=AFTERCARE_FILE
    )
    refused(db_url, "survey", "add", str(changed), message=("pulse-aftercare@1", "needs a new version"))
    # A server started on the changed file stops with the same message rather than serve another survey.
    refused(
        db_url,
        "survey",
        "list",
        env={"PULSE_QUESTIONS": str(changed)},
        message=(str(changed), "pulse-aftercare@1", "needs a new version"),
    )


def unreadable_files(tmp_path: Path) -> dict[str, Path]:
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- a\n- b\n")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("title: Caf\xe9\n".encode("latin-1"))
    return {"missing": tmp_path / "no-such-file.yaml", "not a mapping": not_a_mapping, "not UTF-8": latin1}


@pytest.mark.parametrize("bad", BAD_FILES, ids=lambda p: p.stem)
def test_an_invalid_file_gets_the_start_up_message_and_stores_nothing(db_url, bad):
    ok(run_pulse(db_url, "survey", "list"))
    at_start = refused(db_url, "survey", "list", env={"PULSE_QUESTIONS": str(bad)})
    added = refused(db_url, "survey", "add", str(bad), message=(str(bad), ", line "))
    assert added == at_start  # the same words: file, line, question and problem


def test_the_invalid_file_message_names_file_line_question_and_problem(db_url):
    bad = ROOT / "tests" / "data" / "bad_type.yaml"
    ok(run_pulse(db_url, "survey", "list"))
    refused(db_url, "survey", "add", str(bad), message=(f"{bad}, line 13: question 'b': unknown type 'ranking'",))


@pytest.mark.parametrize("case", ["missing", "not a mapping", "not UTF-8"])
def test_an_unreadable_file_is_refused_by_name_and_stores_nothing(db_url, tmp_path, case):
    ok(run_pulse(db_url, "survey", "list"))
    path = unreadable_files(tmp_path)[case]
    at_start = refused(db_url, "survey", "list", env={"PULSE_QUESTIONS": str(path)})
    assert refused(db_url, "survey", "add", str(path), message=(str(path),)) == at_start
    expected = {
        "missing": "cannot read the survey file",
        "not a mapping": "must be a mapping",
        "not UTF-8": "is not UTF-8 text",
    }[case]
    assert expected in at_start


def test_add_refuses_a_folder(db_url, tmp_path):
    ok(run_pulse(db_url, "survey", "list"))
    refused(db_url, "survey", "add", str(tmp_path), message=("is a directory",))


UNSTORABLE = {
    "id with @": ("id: patient-comfort", "id: patient@comfort", "'id' must be 1 to 100 letters, digits, '-' or '_'"),
    "id with /": ("id: patient-comfort", "id: patient/comfort", "'id' must be 1 to 100 letters, digits, '-' or '_'"),
    "id too long": ("id: patient-comfort", "id: " + "p" * 101, "'id' must be 1 to 100 letters, digits, '-' or '_'"),
    "title too long": (
        "title: The Pulse of Patient Comfort",
        "title: " + "T" * 201,
        "'title' must be at most 200 characters",
    ),
    "version too large": ("version: 1", "version: 2147483648", "'version' must be a whole number from 1 to 2147483647"),
}


@pytest.mark.parametrize("case", UNSTORABLE)
def test_a_survey_the_database_cannot_hold_or_name_is_refused_by_name(db_url, tmp_path, case):
    old, new, problem = UNSTORABLE[case]
    path = variant(tmp_path, "unstorable", old, new)
    ok(run_pulse(db_url, "survey", "list"))
    added = refused(db_url, "survey", "add", str(path), message=(f"{path}, line ", f"survey: {problem}"))
    assert refused(db_url, "survey", "list", env={"PULSE_QUESTIONS": str(path)}) == added  # the same at start


def test_add_with_an_unknown_topic_is_refused_and_stores_nothing(db_url):
    ok(run_pulse(db_url, "survey", "list"))
    refused(
        db_url,
        "survey",
        "add",
        str(COMFORT_FILE),
        "--topic",
        "0123456789abcdef",
        message=("There is no topic 0123456789abcdef", "pulse topics list"),
    )
    # Nor for a survey stored already: it stays unlinked.
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    refused(db_url, "survey", "add", str(COMFORT_FILE), "--topic", "nope", message=("There is no topic nope",))


def test_add_with_a_known_topic_links_it(db_url, tmp_path):
    with web(db_url) as (_app, client):
        key = submit_api(client).get_json()["results_key"]
        topic = client.post(
            "/api/v1/topics", json={"title": "Comfort in the room"}, headers={"X-Results-Key": key}
        ).get_json()
    ok(run_pulse(db_url, "topics", "approve", topic["id"]))
    assert f"linked to topic {topic['id']}" in ok(
        run_pulse(db_url, "survey", "add", str(COMFORT_FILE), "--topic", topic["id"])
    )
    rows = listed(ok(run_pulse(db_url, "survey", "list")))
    assert rows["patient-comfort@1"]["topic"] == f"{topic['id']} Comfort in the room"
    # A survey stored already is linked by adding it again with --topic (nothing else changes).
    wave = variant(tmp_path, "wave", "version: 1", "version: 2")
    ok(run_pulse(db_url, "survey", "add", str(wave)))
    before = every_row(db_url)
    assert "linked it to topic" in ok(run_pulse(db_url, "survey", "add", str(wave), "--topic", topic["id"]))
    after = every_row(db_url)
    assert {k: v for k, v in after.items() if k != "surveys"} == {k: v for k, v in before.items() if k != "surveys"}
    # Once opened, the archive and the API show the topic.
    ok(run_pulse(db_url, "survey", "open", "patient-comfort@1"))
    with web(db_url) as (_app, client):
        [entry] = [s for s in client.get("/api/v1/surveys").get_json()["surveys"] if s["id"] == "patient-comfort"]
        assert entry["topic"] == {"id": topic["id"], "title": "Comfort in the room"}
        assert "Comfort in the room" in client.get("/surveys").get_data(as_text=True)


# ------------------------------------------------------------------ pulse survey open and list


def test_open_makes_a_survey_current_and_open_and_closes_the_previous(db_url):
    answer_aftercare(db_url, 1)
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    output = ok(run_pulse(db_url, "survey", "open", "patient-comfort@1"))
    assert "(patient-comfort@1) is current and open" in output and "pulse-aftercare@1 was closed" in output
    with web(db_url) as (app, client):
        assert client.get("/api/v1/survey").get_json()["id"] == "patient-comfort"
        assert COMFORT.title in client.get("/").get_data(as_text=True)
        assert COMFORT.question("recovery_space").text in client.get("/survey").get_data(as_text=True)
        assert submit_api(client, comfort(0)).status_code == 201  # /api/v1/responses: the current survey
        assert submit_api(client).status_code == 422  # aftercare answers do not fit the comfort survey
        closed = submit_to(client, AFTERCARE, FULL_ANSWERS)
        assert closed.status_code == 409 and "closed" in closed.get_json()["error"]
        assert row_count(app) == 2
        week = storage.iso_week()
        assert client.get("/api/v1/surveys").get_json()["surveys"] == [
            {
                "id": "patient-comfort",
                "version": 1,
                "title": COMFORT.title,
                "status": "open",
                "weeks": {"opened": week, "closed": None},
                "responses": None,
                "topic": None,
                "schedule": {"opens": None, "closes": None},
            },
            {
                "id": "pulse-aftercare",
                "version": 1,
                "title": AFTERCARE.title,
                "status": "closed",
                "weeks": {"opened": week, "closed": week},
                "responses": None,
                "topic": None,
                "schedule": {"opens": None, "closes": None},
            },
        ]
    # Opening the earlier survey again makes it current and open, and closes this one.
    assert "patient-comfort@1 was closed" in ok(run_pulse(db_url, "survey", "open", "pulse-aftercare"))
    rows = listed(ok(run_pulse(db_url, "survey", "list")))
    assert [(r["survey"], r["status"], r["current"]) for r in rows.values()] == [
        ("pulse-aftercare@1", "open", True),
        ("patient-comfort@1", "closed", False),
    ]


def test_open_without_a_version_opens_the_highest(db_url, tmp_path):
    for version in (10, 2):  # added out of order; 10 is higher than 2 as a number, not as text
        ok(
            run_pulse(
                db_url, "survey", "add", str(variant(tmp_path, f"v{version}", "version: 1", f"version: {version}"))
            )
        )
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    assert "(patient-comfort@10) is current and open" in ok(run_pulse(db_url, "survey", "open", "patient-comfort"))
    with web(db_url) as (_app, client):
        assert client.get("/api/v1/survey").get_json()["version"] == 10
    rows = listed(ok(run_pulse(db_url, "survey", "list")))
    assert rows["patient-comfort@10"]["current"] and rows["patient-comfort@2"]["status"] == "added"


@pytest.mark.parametrize(
    "ref, message",
    [
        ("no-such-survey", "There is no stored survey 'no-such-survey'"),
        ("patient-comfort", "There is no stored survey 'patient-comfort'"),
        ("pulse-aftercare@2", "There is no stored survey 'pulse-aftercare@2'"),
        ("pulse-aftercare@0", "must be a positive whole number"),
        ("pulse-aftercare@one", "must be a positive whole number"),
        ("pulse-aftercare@-1", "must be a positive whole number"),
        ("@1", "There is no stored survey '@1'"),
        ("pulse-aftercare@99999999999", "There is no stored survey 'pulse-aftercare@99999999999'"),
        ("pulse-aftercare@" + "9" * 30, "There is no stored survey"),
        ("p" * 300, "There is no stored survey"),
    ],
)
def test_opening_a_survey_that_does_not_exist_is_a_clear_error_and_changes_nothing(db_url, ref, message):
    ok(run_pulse(db_url, "survey", "list"))
    refused(db_url, "survey", "open", ref, message=(message,))


def test_list_shows_id_version_title_status_weeks_responses_and_topic(db_url, tmp_path):
    answer_aftercare(db_url, 3)
    with web(db_url) as (_app, client):
        key = submit_api(client).get_json()["results_key"]
        topic = client.post("/api/v1/topics", json={"title": "Comfort"}, headers={"X-Results-Key": key}).get_json()
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE), "--topic", topic["id"]))
    ok(run_pulse(db_url, "survey", "add", str(variant(tmp_path, "v2", "version: 1", "version: 2"))))
    ok(run_pulse(db_url, "survey", "open", "patient-comfort@1"))
    answer_comfort(db_url, 2)
    output = ok(run_pulse(db_url, "survey", "list"))
    assert output.splitlines()[0].split() == ["survey", "title", "status", "weeks", "responses", "topic", "schedule"]
    week = storage.iso_week()
    assert listed(output) == {
        "patient-comfort@1": {
            "survey": "patient-comfort@1",
            "title": COMFORT.title,
            "status": "open",
            "weeks": f"{week}..",
            "responses": "2",
            "topic": f"{topic['id']} Comfort",
            "schedule": "-",
            "current": True,
        },
        "pulse-aftercare@1": {
            "survey": "pulse-aftercare@1",
            "title": AFTERCARE.title,
            "status": "closed",
            "weeks": f"{week}..{week}",
            "responses": "4",
            "topic": "-",
            "schedule": "-",
            "current": False,
        },
        "patient-comfort@2": {
            "survey": "patient-comfort@2",
            "title": COMFORT.title,
            "status": "added",
            "weeks": "-..",
            "responses": "0",
            "topic": "-",
            "schedule": "-",
            "current": False,
        },
    }


# ------------------------------------------------------------------ closing: the final snapshot, and no more responses


def close_by(how: str, db_url: str) -> str:
    """Close the current (aftercare) survey the given way; what the organiser is told."""
    if how == "cli":
        return ok(run_pulse(db_url, "survey", "close"))
    if how == "opening another":
        ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
        return ok(run_pulse(db_url, "survey", "open", "patient-comfort"))
    ok(run_pulse(db_url, "create-admin", "ada", input=f"{ADMIN_PASSWORD}\n"))
    with web(db_url) as (_app, client):
        assert admin_login(client).status_code == 303
        tokens = form_tokens(client.get("/admin").get_data(as_text=True))
        assert client.post("/admin/survey", data={"action": "close", **tokens}).status_code == 303
        return client.get("/admin").get_data(as_text=True)


@pytest.mark.parametrize("how", ["cli", "admin", "opening another"])
def test_closing_builds_the_final_snapshot_over_every_response(db_url, how):
    keys_ = answer_aftercare(db_url, 12)
    assert snapshot_n(db_url, AFTERCARE) == 10  # the first snapshot, at the release threshold
    # Two new responses: no snapshot is due (the next comes at 20), so an organiser's rebuild is refused...
    refused(db_url, "snapshot", message=("No snapshot is due: 2 new responses", "the next update comes at 20"))
    told = close_by(how, db_url)
    # ...but closing counts every response the survey received.
    assert "Final snapshot: 12 responses." in told
    assert snapshot_n(db_url, AFTERCARE) == 12
    with web(db_url) as (app, client):
        assert benchmarks_of(client, AFTERCARE, keys_[0]).get_json()["responses"] == 12
        with app.app_context():
            db = storage.reader()
            assert response_queries.count_responses(db, AFTERCARE.id, AFTERCARE.version, pending_only=True) == 0
            assert db.scalar(select(Snapshot.responses).filter_by(survey_id=AFTERCARE.id)) == 12


def test_the_final_snapshot_counts_responses_that_came_while_the_closing_request_read(db_url):
    """SQLite reads one state of the file per transaction: a request that read before responses
    arrived must still count them when it closes the survey."""
    answer_aftercare(db_url, 10)  # the first snapshot counts all 10: none waiting
    with web(db_url) as (app, _client), app.test_request_context("/admin/survey", method="POST"):
        assert program.current_survey() == AFTERCARE  # this worker has started the program
        db = storage.reader()
        assert response_queries.count_responses(db, AFTERCARE.id, AFTERCARE.version, pending_only=True) == 0
        answer_aftercare(db_url, 2)  # meanwhile, through another worker
        assert "Final snapshot: 12 responses." in program.close_survey()
    assert snapshot_n(db_url, AFTERCARE) == 12


def test_closing_below_the_release_threshold_publishes_nothing(db_url):
    keys_ = answer_aftercare(db_url, 6)
    assert "Final snapshot" not in ok(run_pulse(db_url, "survey", "close"))
    with web(db_url) as (app, client):
        body = benchmarks_of(client, AFTERCARE, keys_[0]).get_json()
        assert body["published"] is False and body["questions"] == [] and body["needed"] == 4
        assert row_count(app, Snapshot) == 0


def test_closing_a_survey_already_closed_is_refused(db_url):
    answer_aftercare(db_url, 12)
    ok(run_pulse(db_url, "survey", "close"))
    refused(db_url, "survey", "close", message=("pulse-aftercare@1 is already closed",))


def test_after_closing_responses_are_refused_and_nothing_is_stored(db_url):
    answer_aftercare(db_url, 3)
    ok(run_pulse(db_url, "survey", "close"))
    with web(db_url) as (app, client):
        before = every_row(db_url)
        for response in (submit_api(client), submit_to(client, AFTERCARE, FULL_ANSWERS)):
            assert response.status_code == 409
            assert response.get_json() == {
                "error": "The survey is closed: the organisers are not taking responses now."
            }
        form = client.get("/survey").get_data(as_text=True)
        assert "The survey is closed" in form
        page = post_form(client, FULL_ANSWERS, form_tokens(form))
        assert page.status_code == 409 and page.mimetype == "text/html"
        assert "the organisers are not taking responses now" in page.get_data(as_text=True)
        with client.session_transaction() as session:
            assert "results_keys" not in session  # no key was handed out
        assert every_row(db_url) == before


# ------------------------------------------------------------------ a survey added but never opened


def test_a_survey_added_but_never_opened_is_not_shown_publicly(db_url):
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    with web(db_url) as (app, client):
        assert "patient-comfort" not in json.dumps(client.get("/api/v1/surveys").get_json())
        archive = client.get("/surveys").get_data(as_text=True)
        assert COMFORT.title not in archive and "patient-comfort" not in archive
        for path in (
            "/results/patient-comfort/1",
            "/results/patient-comfort/1/aggregates.csv",
            "/api/v1/surveys/patient-comfort/1",
            "/api/v1/surveys/patient-comfort/1/benchmarks",
        ):
            assert client.get(path).status_code == 404, path
        before = every_row(db_url)
        response = submit_to(client, COMFORT, comfort(0))
        assert response.status_code == 404
        assert every_row(db_url) == before
        assert row_count(app) == 0
        for path in ("/", "/survey", "/results", "/topics", "/privacy"):
            assert COMFORT.title not in client.get(path).get_data(as_text=True), path


# ------------------------------------------------------------------ /surveys and /results


def table_row(html: str, href: str) -> str:
    """The <tr> of the archive table that links to href."""
    [row] = [r for r in html.split("<tr")[1:] if f'href="{href}"' in r]
    return row


def test_the_archive_lists_opened_surveys_with_weeks_published_n_topic_and_links(db_url):
    with web(db_url) as (_app, client):
        key = submit_api(client).get_json()["results_key"]
        topic = client.post(
            "/api/v1/topics", json={"title": "Comfort in the room"}, headers={"X-Results-Key": key}
        ).get_json()
    answer_aftercare(db_url, 11)
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE), "--topic", topic["id"]))
    ok(run_pulse(db_url, "survey", "open", "patient-comfort"))  # aftercare closed: final snapshot of 12
    ok(run_pulse(db_url, "release", "--survey", "pulse-aftercare"))
    week = storage.iso_week()
    with web(db_url) as (_app, client):
        html = client.get("/surveys").get_data(as_text=True)
        aftercare = table_row(html, "/results/pulse-aftercare/1")
        # Opened and closed in the same week: that one week.
        assert AFTERCARE.title in aftercare and ">closed<" in aftercare and f'<time datetime="{week}">' in aftercare
        # Said as a date, not as an ISO week code: the week's Monday.
        year, number = week.split("-W")
        monday = datetime.date.fromisocalendar(int(year), int(number), 1)
        said = f"{monday.day} {monday:%b %Y}"
        assert f'the week of <span class="nowrap"><time datetime="{week}">{said}</time>' in aftercare
        assert '<td class="num">12</td>' in aftercare
        current = table_row(html, "/results/patient-comfort/1")
        assert COMFORT.title in current and ">open<" in current and "current" in current
        assert "not public yet" in current and "Comfort in the room" in current
        surveys = client.get("/api/v1/surveys").get_json()["surveys"]
        assert [(s["id"], s["status"], s["responses"], s["topic"]) for s in surveys] == [
            ("patient-comfort", "open", None, {"id": topic["id"], "title": "Comfort in the room"}),
            ("pulse-aftercare", "closed", 12, None),
        ]


def test_results_shows_the_current_survey_once_published_else_the_latest_published(db_url):
    answer_aftercare(db_url, 12)
    ok(run_pulse(db_url, "release"))
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    ok(run_pulse(db_url, "survey", "open", "patient-comfort"))
    ok(run_pulse(db_url, "release", "--survey", "patient-comfort"))
    with web(db_url) as (_app, client):
        shown = client.get("/results")
        html = shown.get_data(as_text=True)
        # The current survey has nothing published: the earlier survey's results, and a word on the current one.
        assert shown.status_code == 200 and AFTERCARE.question("mood_tracking").text in html
        assert "These are the results of an earlier survey" in html and COMFORT.title in html
        own = client.get("/results/patient-comfort/1")
        assert own.status_code == 200 and "Results appear once 10 clinics" in own.get_data(as_text=True)  # waiting
        assert (
            client.get("/results/pulse-aftercare/1")
            .get_data(as_text=True)
            .count(AFTERCARE.question("mood_tracking").text)
            >= 1
        )
    answer_comfort(db_url, 10)  # the comfort survey's first snapshot
    with web(db_url) as (_app, client):
        html = client.get("/results").get_data(as_text=True)
        assert COMFORT.question("recovery_space").text in html
        assert "earlier survey" not in html and AFTERCARE.question("mood_tracking").text not in html


@pytest.mark.parametrize(
    "path",
    [
        "/results/no-such-survey/1",
        "/results/pulse-aftercare/2",
        "/results/pulse-aftercare/0",
        "/results/pulse-aftercare/one",
        "/results/pulse-aftercare/2/aggregates.csv",
        "/api/v1/surveys/nope/1",
        "/api/v1/surveys/pulse-aftercare/2/benchmarks",
        "/results/pulse-aftercare/99999999999",
        "/api/v1/surveys/pulse-aftercare/2147483648",
        "/api/v1/surveys/pulse-aftercare/" + "9" * 30 + "/benchmarks",
        "/results/" + "p" * 300 + "/1",
        "/admin?survey=pulse-aftercare@99999999999",
    ],
)
def test_an_unknown_survey_is_404(client, path):
    if path.startswith("/admin"):
        with client.application.app_context():
            admin_auth.create_admin("ada", ADMIN_PASSWORD)
        admin_login(client)
    assert client.get(path).status_code == 404


def test_an_unknown_survey_takes_no_response(app, client):
    for version in ("2", "0", "x", "99999999999", "9" * 30):
        assert (
            client.post(
                f"/api/v1/surveys/pulse-aftercare/{version}/responses", json={"answers": FULL_ANSWERS}
            ).status_code
            == 404
        )
    assert row_count(app) == 0


# ------------------------------------------------------------------ results keys across surveys


def test_the_key_form_takes_a_key_of_any_survey_and_goes_to_its_results(db_url):
    aftercare_keys, comfort_keys = two_surveys(db_url)
    with web(db_url) as (_app, client):
        went = enter_key(client, aftercare_keys[3])
        assert went.status_code == 303 and went.headers["Location"].endswith("/results/pulse-aftercare/1")
        went = enter_key(client, comfort_keys[4])
        assert went.status_code == 303 and went.headers["Location"].endswith("/results/patient-comfort/1")
        wrong = enter_key(client, keys.new_results_key())
        assert wrong.status_code == 401 and "That results key is not valid." in wrong.get_data(as_text=True)


def test_the_session_keeps_one_key_per_survey_and_each_page_shows_its_own(db_url):
    aftercare_keys, comfort_keys = two_surveys(db_url)
    with web(db_url) as (_app, client):
        enter_key(client, aftercare_keys[3])
        enter_key(client, comfort_keys[4])
        with client.session_transaction() as session:
            assert session["results_keys"] == {
                "pulse-aftercare@1": aftercare_keys[3],
                "patient-comfort@1": comfort_keys[4],
            }
        assert AFTERCARE.index_of(clinic(3)) != COMFORT.index_of(comfort(4))
        assert score_on(page(client, "/results/pulse-aftercare/1")) == AFTERCARE.index_of(clinic(3))
        assert score_on(page(client, "/results/patient-comfort/1")) == COMFORT.index_of(comfort(4))
        # /results shows the current survey, with this browser's key of it.
        assert score_on(page(client, "/results")) == COMFORT.index_of(comfort(4))
        # A second key of one survey replaces that survey's first, and leaves the other's.
        enter_key(client, aftercare_keys[12 - 1])
        with client.session_transaction() as session:
            assert session["results_keys"] == {
                "pulse-aftercare@1": aftercare_keys[11],
                "patient-comfort@1": comfort_keys[4],
            }
        assert score_on(page(client, "/results/pulse-aftercare/1")) == AFTERCARE.index_of(clinic(11))


def test_a_key_of_another_survey_on_a_surveys_api_is_401_naming_its_survey(db_url):
    aftercare_keys, comfort_keys = two_surveys(db_url)
    with web(db_url) as (_app, client):
        for response in (
            benchmarks_of(client, COMFORT, aftercare_keys[0]),
            client.get("/api/v1/benchmarks", headers={"X-Results-Key": aftercare_keys[0]}),
        ):
            assert response.status_code == 401
            assert response.get_json() == {
                "error": f"That results key belongs to the survey \u201c{AFTERCARE.title}\u201d (pulse-aftercare@1), "
                "not this one."
            }
        other = benchmarks_of(client, AFTERCARE, comfort_keys[0])
        assert other.status_code == 401 and "(patient-comfort@1)" in other.get_json()["error"]
        # Each key works on its own survey; an unknown key names no survey.
        assert benchmarks_of(client, AFTERCARE, aftercare_keys[0]).get_json()["you"]["answers"] == clinic(0)
        assert benchmarks_of(client, COMFORT, comfort_keys[0]).get_json()["you"]["answers"] == comfort(0)
        assert benchmarks_of(client, COMFORT, keys.new_results_key()).get_json() == {
            "error": "That results key is not valid."
        }


@pytest.fixture
def voting(db_url):
    """Two surveys (comfort current) and an open round over one approved topic; (keys, keys, topic id)."""
    aftercare_keys, comfort_keys = two_surveys(db_url)
    with web(db_url) as (_app, client):
        # Proposing takes a key of any survey.
        proposed = client.post(
            "/api/v1/topics", json={"title": "Music in sessions"}, headers={"X-Results-Key": aftercare_keys[0]}
        )
        assert proposed.status_code == 201
    topic_id = proposed.get_json()["id"]
    ok(run_pulse(db_url, "topics", "approve", topic_id))
    ok(run_pulse(db_url, "round", "open"))
    return aftercare_keys, comfort_keys, topic_id


def test_voting_by_api_needs_a_key_of_the_current_survey(db_url, voting):
    aftercare_keys, comfort_keys, topic_id = voting
    with web(db_url) as (app, client):
        old = client.put("/api/v1/ballot", json={"approve": [topic_id]}, headers={"X-Results-Key": aftercare_keys[1]})
        assert old.status_code == 401
        error = old.get_json()["error"]
        assert "(pulse-aftercare@1)" in error and "needs a key of the current survey" in error
        assert row_count(app, Ballot) == 0
        assert (
            client.put(
                "/api/v1/ballot", json={"approve": [topic_id]}, headers={"X-Results-Key": comfort_keys[1]}
            ).status_code
            == 200
        )
        assert row_count(app, Ballot) == 1


def test_voting_on_the_topics_page_needs_a_key_of_the_current_survey(db_url, voting):
    aftercare_keys, comfort_keys, topic_id = voting
    with web(db_url) as (app, client):

        def vote(key: str = ""):
            tokens = form_tokens(client.get("/topics").get_data(as_text=True))
            return client.post(
                "/topics/ballot", data={"approve": topic_id, "results_key": key, "csrf_token": tokens["csrf_token"]}
            )

        typed = vote(aftercare_keys[1])
        assert typed.status_code == 401
        assert "needs a key of the current survey" in typed.get_data(as_text=True)
        # A browser holding only an older survey's key is told the same, not merely that a key is needed.
        enter_key(client, aftercare_keys[2])
        held = vote()
        assert held.status_code == 401
        assert "needs a key of the current survey" in held.get_data(as_text=True)
        assert row_count(app, Ballot) == 0
        assert vote(comfort_keys[1]).status_code == 303
        assert row_count(app, Ballot) == 1
        # The typed key of the current survey is now this browser's key for it, beside the older one.
        with client.session_transaction() as session:
            assert session["results_keys"] == {
                "pulse-aftercare@1": aftercare_keys[2],
                "patient-comfort@1": comfort_keys[1],
            }


def test_no_table_links_two_keys(db_url, voting):
    aftercare_keys, comfort_keys, topic_id = voting
    with web(db_url) as (_app, client):
        # One browser holds a key of each survey, votes with one and proposes with the other.
        enter_key(client, aftercare_keys[5])
        enter_key(client, comfort_keys[5])
        assert (
            client.put(
                "/api/v1/ballot", json={"approve": [topic_id]}, headers={"X-Results-Key": comfort_keys[5]}
            ).status_code
            == 200
        )
        assert (
            client.post(
                "/api/v1/topics", json={"title": "Lighting"}, headers={"X-Results-Key": aftercare_keys[5]}
            ).status_code
            == 201
        )
    derived = {}
    for n, key in enumerate(aftercare_keys + comfort_keys):
        normal = keys.normalize(key)
        derived[normal] = derived[key] = n
        for domain in keys.DOMAINS:
            derived[keys.keyed_hash(SECRET, domain, normal)] = n
    for table, rows in every_row(db_url).items():
        for row in rows:
            owners = {derived[value.strip("'")] for value in row if value.strip("'") in derived}
            assert len(owners) <= 1, f"a row of {table} holds values of {len(owners)} keys"


# ------------------------------------------------------------------ --survey on snapshot, release, report, export


def test_survey_option_acts_on_the_named_survey(db_url, tmp_path):
    two_surveys(db_url, n_aftercare=13, n_comfort=10)  # final snapshot of 13; the comfort survey's first of 10
    assert ok(run_pulse(db_url, "snapshot", "--full", "--survey", "pulse-aftercare")).endswith("13 responses.\n")
    assert ok(run_pulse(db_url, "snapshot", "--full", "--survey", "patient-comfort@1")).endswith("10 responses.\n")
    assert ok(run_pulse(db_url, "snapshot", "--full")).endswith("10 responses.\n")  # the current survey

    exported = list(csv.DictReader(io.StringIO(ok(run_pulse(db_url, "export", "--survey", "pulse-aftercare@1")))))
    assert exported and {
        (r["survey"], r["version"], r["n"]) for r in exported if r["question"] == "practice_type" and not r["segment"]
    } == {("pulse-aftercare", "1", "13")}
    current = list(csv.DictReader(io.StringIO(ok(run_pulse(db_url, "export")))))
    assert current and {r["survey"] for r in current} == {"patient-comfort"}

    ok(run_pulse(db_url, "report", "--out", str(tmp_path / "report"), "--survey", "pulse-aftercare"))
    report = json.loads((tmp_path / "report" / "benchmark.json").read_text())
    assert report["survey"] == {"id": "pulse-aftercare", "version": 1} and report["responses"] == 13

    assert "pulse-aftercare@1" in ok(run_pulse(db_url, "release", "--survey", "pulse-aftercare"))
    with web(db_url) as (_app, client):
        assert benchmarks_of(client, AFTERCARE).status_code == 200  # released
        assert benchmarks_of(client, COMFORT).status_code == 403  # still in early access


@pytest.mark.parametrize("command", [["snapshot", "--full"], ["release"], ["export"], ["report", "--out", "{out}"]])
def test_survey_option_with_an_unknown_survey_is_a_clear_error(db_url, tmp_path, command):
    ok(run_pulse(db_url, "survey", "list"))
    out = tmp_path / "out"
    for ref, message in [
        ("nope", "There is no stored survey 'nope'"),
        ("pulse-aftercare@9", "There is no stored survey 'pulse-aftercare@9'"),
        ("pulse-aftercare@x", "must be a positive whole number"),
    ]:
        refused(db_url, *[part.format(out=out) for part in command], "--survey", ref, message=(message,))
    assert not out.exists()


def test_release_of_a_survey_never_opened_is_refused(db_url):
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    refused(db_url, "release", "--survey", "patient-comfort", message=("patient-comfort@1 was never opened",))


def test_admin_acts_on_the_survey_it_names(db_url):
    two_surveys(db_url, n_aftercare=12, n_comfort=3)
    ok(run_pulse(db_url, "create-admin", "ada", input=f"{ADMIN_PASSWORD}\n"))
    with web(db_url) as (_app, client):
        assert admin_login(client).status_code == 303
        page = client.get("/admin?survey=pulse-aftercare@1").get_data(as_text=True)
        assert re.search(r'<strong class="big-number">12</strong> responses', page)
        tokens = form_tokens(page)
        assert client.post("/admin/release", data={"survey": "pulse-aftercare@1", **tokens}).status_code == 303
        assert benchmarks_of(client, AFTERCARE).status_code == 200
        assert benchmarks_of(client, COMFORT).status_code == 403
        before = every_row(db_url)
        unknown = client.post("/admin/survey", data={"action": "open", "survey": "nope@1", **tokens})
        assert unknown.status_code == 404
        assert "There is no stored survey" in unknown.get_data(as_text=True)
        assert client.get("/admin?survey=nope").status_code == 404
        assert every_row(db_url) == before


# ------------------------------------------------------------------ disclosure control per survey


def test_two_surveys_of_six_responses_each_publish_nothing(db_url):
    aftercare_keys, comfort_keys = two_surveys(db_url, n_aftercare=6, n_comfort=6)
    ok(run_pulse(db_url, "survey", "close"))
    for ref in ("pulse-aftercare", "patient-comfort"):
        ok(run_pulse(db_url, "release", "--survey", ref))
        refused(db_url, "export", "--survey", ref, message=("nothing is published yet", "nothing was written"))
    with web(db_url) as (app, client):
        assert row_count(app, Snapshot) == 0
        for survey, key in ((AFTERCARE, aftercare_keys[0]), (COMFORT, comfort_keys[0])):
            for body in (benchmarks_of(client, survey).get_json(), benchmarks_of(client, survey, key).get_json()):
                assert body["published"] is False and body["questions"] == [] and body["needed"] == 4
        assert [s["responses"] for s in client.get("/api/v1/surveys").get_json()["surveys"]] == [None, None]
        assert client.get("/surveys").get_data(as_text=True).count("not public yet") == 2
        # Both closed: no more answers will come, so the page does not promise results at 10.
        waiting = client.get("/results").get_data(as_text=True)
        assert "fewer than 10 clinics answered it: nothing is published" in waiting


def practice_cells(body: dict) -> dict[str, int]:
    [q] = [q for q in body["questions"] if q["key"] == "practice_type"]
    return {o["key"]: o["count"] for o in q["options"]}


def test_each_surveys_snapshot_counts_only_its_own_responses(db_url):
    # Every aftercare response is a psychiatry practice, every comfort response a dedicated clinic.
    two_surveys(db_url, n_aftercare=12, n_comfort=13)
    ok(run_pulse(db_url, "survey", "close"))  # the comfort survey's final snapshot: all 13
    for ref in ("pulse-aftercare", "patient-comfort"):
        ok(run_pulse(db_url, "release", "--survey", ref))
    with web(db_url) as (app, client):
        aftercare, comfort_ = benchmarks_of(client, AFTERCARE).get_json(), benchmarks_of(client, COMFORT).get_json()
        assert (aftercare["responses"], comfort_["responses"]) == (12, 13)
        assert practice_cells(aftercare)["dedicated_clinic"] == 0 and practice_cells(aftercare)["psychiatry"] > 0
        assert practice_cells(comfort_)["psychiatry"] == 0 and practice_cells(comfort_)["dedicated_clinic"] > 0
        assert {q["n"] for q in aftercare["questions"]} == {12} and {q["n"] for q in comfort_["questions"]} == {13}
        with app.app_context():
            for survey, n in ((AFTERCARE, 12), (COMFORT, 13)):
                snapshot = snapshot_queries.latest_snapshot(storage.reader(), survey.id, survey.version)
                assert snapshot.responses == Tally.from_json(json.loads(snapshot.tally)).n == n
            counted = storage.reader().execute(select(Response.survey_id, Response.in_snapshot)).all()
            assert sorted(set(counted)) == [("patient-comfort", True), ("pulse-aftercare", True)]


def test_the_release_threshold_applies_per_survey(db_url):
    aftercare_keys, comfort_keys = two_surveys(db_url, n_aftercare=12, n_comfort=8)  # 20 together
    for ref in ("pulse-aftercare", "patient-comfort"):
        ok(run_pulse(db_url, "release", "--survey", ref))
    with web(db_url) as (_app, client):
        assert benchmarks_of(client, AFTERCARE).get_json()["published"] is True
        comfort_ = benchmarks_of(client, COMFORT, comfort_keys[0]).get_json()
        assert comfort_["published"] is False and comfort_["needed"] == 2 and comfort_["questions"] == []
        assert [s["responses"] for s in client.get("/api/v1/surveys").get_json()["surveys"]] == [None, 12]
        assert "Results appear once 10 clinics" in client.get("/results/patient-comfort/1").get_data(as_text=True)


def test_results_shows_an_older_surveys_public_figures_while_the_current_is_in_early_access(db_url):
    """A visitor without a key gets public results, not the current survey's early-access gate."""
    with web(db_url) as (app, client):
        for i in range(12):
            assert submit_api(client, clinic(i)).status_code == 201
        with app.app_context():  # the snapshot was built at the release threshold, as submissions arrived
            admin_actions.release(program.current_survey())
            program.add(COMFORT_FILE)
            program.open_survey("patient-comfort")
        reader = app.test_client()
        for i in range(12):
            assert reader.post("/api/v1/responses", json={"answers": comfort(i)}).status_code == 201
        with app.app_context():
            assert snapshots.served(program.current_survey()).published.published  # in early access
        page = app.test_client().get("/results")
        assert page.status_code == 200 and "results of an earlier survey" in page.get_data(as_text=True)


def without_guide_texts(tmp_path: Path, source: Path = COMFORT_FILE) -> Path:
    """A survey file as it was before options carried actions and reasons."""
    content = re.sub(r"^ +action: .*\n", "", source.read_text(), flags=re.M)
    content = re.sub(r"^( +)why: >-\n(?:\1  .*\n)+", "", content, flags=re.M)
    assert "action:" not in content and "why:" not in content
    path = tmp_path / f"bare-{source.name}"
    path.write_text(content)
    return path


def test_actions_and_reasons_added_to_a_stored_survey_update_it_in_place(db_url, tmp_path):
    # A database that stored the survey before it had actions (every database of an earlier release).
    ok(run_pulse(db_url, "survey", "add", str(without_guide_texts(tmp_path))))
    before = every_row(db_url)
    # They are the guide's words, not the survey's: same answers, same scores, so no new version.
    output = ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    assert "patient-comfort@1 is already stored; its actions and reasons were updated." in output
    with web(db_url) as (app, _client), app.app_context():
        stored = program_queries.stored_survey(storage.reader(), "patient-comfort", 1)
        assert stored.definition == COMFORT_FILE.read_text()
        parsed = program.definition(storage.reader(), "patient-comfort", 1)
        assert parsed.question("recovery_space").option("private_room").action.startswith("Let patients rest")
    after = every_row(db_url)
    assert {k: v for k, v in after.items() if k != "surveys"} == {k: v for k, v in before.items() if k != "surveys"}
    # Once in place, adding the file again changes nothing.
    assert "unchanged; nothing to do" in ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))


# Surveys as an earlier release stored them, each with what its loader took and this one refuses
# of a new survey.
STORED_BEFORE = {
    # `at_least: 2.9` counted as 2, `extra` on a single-choice question ignored.
    "scoring": [
        (
            "    session_preferences: {points: {lighting: 7, music: 7, physical_comfort: 6}}\n"
            "    settle_before: {points: {min_15_plus: 10, min_5_to_14: 5}}",
            "    session_preferences:\n"
            "      {points: {lighting: 7, music: 7, physical_comfort: 1}, extra: {at_least: 2.9, points: 5}}\n"
            "    settle_before: {points: {min_15_plus: 10, min_5_to_14: 5}, extra: {at_least: 2, points: 3}}",
        )
    ],
    # Misspelt fields, dropped.
    "unknown fields": [("invite_only: false\n", "invite_onyl: true\ntitel: Comfort\n")],
    # A question keyed like a field of the survey form: answered through the API only.
    "a question keyed like a form field": [
        ("outcome: series_completion", "outcome: served"),
        ("  - key: series_completion", "  - key: served"),
    ],
}


@pytest.mark.parametrize("change", STORED_BEFORE)
def test_a_survey_stored_under_older_rules_still_opens_and_serves(db_url, tmp_path, change):
    # Every stored survey is parsed again at start-up and on its pages: one that a newer rule
    # refuses must not stop Pulse, nor its own pages and results.
    text = COMFORT_FILE.read_text()
    for old, new in STORED_BEFORE[change]:
        assert old in text
        text = text.replace(old, new, 1)
    answers = {
        ("served" if "key: served" in text and k == "series_completion" else k): v for k, v in comfort(1).items()
    }
    ok(run_pulse(db_url, "survey", "list"))  # the first start stores the aftercare survey
    with web(db_url) as (app, _client), app.app_context(), storage.writer() as db:
        program_queries.add_stored_survey(db, "patient-comfort", 1, COMFORT.title, text, None)
    ok(run_pulse(db_url, "survey", "open", "patient-comfort"))
    with web(db_url) as (app, client):
        for path in ("/", "/survey", "/guide", "/surveys", "/api/v1/survey"):
            assert client.get(path).status_code == 200, path
        assert submit_to(client, COMFORT, answers).status_code == 201
    ok(run_pulse(db_url, "survey", "close"))  # the current one, with its final snapshot
    # The same text as a new survey (a new version) is refused, and nothing changes.
    path = tmp_path / "again.yaml"
    path.write_text(text.replace("version: 1", "version: 2", 1))
    refused(db_url, "survey", "add", str(path), message=(f"{path}, line ",))


def test_a_changed_reason_updates_the_stored_text_but_a_changed_label_is_still_refused(db_url, tmp_path):
    ok(run_pulse(db_url, "survey", "add", str(COMFORT_FILE)))
    polished = variant(tmp_path, "polished", "Even a few quiet minutes", "Even five quiet minutes")
    assert "actions and reasons were updated" in ok(run_pulse(db_url, "survey", "add", str(polished)))
    relabelled = variant(tmp_path, "relabelled", "label: Music or other sound", "label: Music", polished)
    refused(db_url, "survey", "add", str(relabelled), message=("a changed survey needs a new version",))
