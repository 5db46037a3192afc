"""The admin area and the organisers' commands: accounts, sessions, limits and every action."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from survey_app import admin_auth, program_queries, snapshot_queries, state, storage
from survey_app.cli import main
from survey_app.community import voting as community
from survey_app.models import Admin, Topic

from .helpers import ROOT, SECRET, form_tokens, make_app, submit_api

pytestmark = pytest.mark.both_databases

PASSWORD = "correct horse battery"


def cli(db_url, *args, input=None):
    env = {"SECRET_KEY": SECRET, "DATABASE_URL": db_url, "PULSE_QUESTIONS": str(ROOT / "questions.yaml")}
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def admins(app) -> list[Admin]:
    with app.app_context():
        return list(storage.reader().scalars(select(Admin)))


@pytest.fixture
def ada(app):
    with app.app_context():
        admin_auth.create_admin("ada", PASSWORD)
    return "ada"


def login(client, username="ada", password=PASSWORD, code=""):
    tokens = form_tokens(client.get("/admin/login").get_data(as_text=True))
    return client.post("/admin/login", data={"username": username, "password": password, "code": code, **tokens})


def admin_post(client, path, **data):
    """POST an admin form with the CSRF token of the page that shows it."""
    page = "/admin/topics" if path.startswith(("/admin/topics", "/admin/round")) else "/admin"
    tokens = form_tokens(client.get(page).get_data(as_text=True))
    return client.post(path, data={**data, **tokens})


def new_topic(client, title="A topic") -> str:
    key = submit_api(client).get_json()["results_key"]
    return client.post("/api/v1/topics", json={"title": title}, headers={"X-Results-Key": key}).get_json()["id"]


# ------------------------------------------------------------------ accounts


def test_fresh_database_has_no_admin_and_no_way_in(app, client):
    assert admins(app) == []
    for username, password in [("admin", "admin"), ("admin", ""), ("root", "password")]:
        assert login(client, username, password).status_code == 401


def test_create_admin_from_stdin_stores_a_scrypt_hash(app, db_url):
    result = cli(db_url, "create-admin", "Ada", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    (admin,) = admins(app)
    assert admin.username == "ada"
    assert admin.password_hash.startswith("scrypt:") and PASSWORD not in admin.password_hash
    assert login(app.test_client(), "ADA", PASSWORD).status_code == 303


@pytest.mark.full_cost_passwords
def test_organiser_passwords_are_hashed_at_werkzeugs_full_scrypt_cost(app, db_url):
    """The shipped cost (N=2**15, r=8, p=1), for a new organiser and for the unknown-name check
    alike: the rest of the suite hashes at a lower cost to save time."""
    assert cli(db_url, "create-admin", "ada", input=f"{PASSWORD}\n{PASSWORD}\n").exit_code == 0
    (admin,) = admins(app)
    assert admin.password_hash.startswith("scrypt:32768:8:1$")
    assert admin_auth._dummy_hash().startswith("scrypt:32768:8:1$")
    assert login(app.test_client(), "ada", PASSWORD).status_code == 303


@pytest.mark.parametrize(
    "name, stdin, message",
    [
        ("ada", f"{PASSWORD}\nsomething else\n", "differ"),
        ("ada", "", "no password"),
        ("ada", "short\nshort\n", "at least 12"),
        ("no spaces", f"{PASSWORD}\n", "username"),
        ("", f"{PASSWORD}\n", "username"),
    ],
)
def test_create_admin_refuses_bad_input_and_changes_nothing(app, db_url, name, stdin, message):
    result = cli(db_url, "create-admin", name, input=stdin)
    assert result.exit_code != 0 and message in result.output
    assert admins(app) == []


def test_second_admin_with_the_same_name_is_refused(app, db_url, ada):
    before = admins(app)[0].password_hash
    result = cli(db_url, "create-admin", "ADA", input="another password!\nanother password!\n")
    assert result.exit_code != 0 and "already exists" in result.output and "nothing was changed" in result.output
    (admin,) = admins(app)
    assert admin.password_hash == before


# ------------------------------------------------------------------ login and sessions


def test_every_admin_page_and_action_needs_a_login(app, client):
    topic = new_topic(client)
    rules = [
        r
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/admin") and r.endpoint not in ("admin.login", "admin.login_post", "admin.logout")
    ]
    assert len(rules) >= 7
    tokens = form_tokens(client.get("/admin/login").get_data(as_text=True))
    for rule in rules:
        path = rule.rule.replace("<topic_id>", topic)
        for method in rule.methods & {"GET", "POST"}:
            response = client.open(path, method=method, data={"action": "approve", **tokens})
            if (method, path) == ("POST", "/admin/editor"):
                # The login page itself, keeping the survey text the organiser was writing.
                assert response.status_code == 401, (method, path)
                assert 'action="/admin/login"' in response.get_data(as_text=True)
                continue
            assert response.status_code == 302, (method, path)
            assert response.headers["Location"].startswith("/admin/login"), path
    with app.app_context():
        assert storage.reader().get(Topic, topic).status == "pending"


def test_wrong_user_and_wrong_password_get_the_same_answer(client, ada):
    wrong_password = login(client, "ada", "not the password")
    wrong_user = login(client, "bob", PASSWORD)
    assert wrong_password.status_code == wrong_user.status_code == 401
    messages = [
        re.search(r'id="login-error">([^<]*)<', r.get_data(as_text=True)).group(1) for r in (wrong_password, wrong_user)
    ]
    assert messages[0] == messages[1] == admin_auth.FAILED == "Wrong username, password or authenticator code."


# ------------------------------------------------------------------ two-step login (TOTP)


def enroll(db_url, username="ada") -> str:
    """`pulse admin-totp USERNAME`: the secret it shows for the authenticator app."""
    result = cli(db_url, "admin-totp", username)
    assert result.exit_code == 0, result.output
    uri = re.search(r"otpauth://totp/\S+", result.output).group(0)
    assert "issuer=Pulse" in uri and "ada" in uri
    return re.search(r"secret=([A-Z2-7]+)", uri).group(1)


def test_totp_admin_needs_a_current_code(app, client, db_url, ada):
    import pyotp

    totp = pyotp.TOTP(enroll(db_url))
    assert login(client).status_code == 401  # the password alone no longer opens /admin
    wrong = str((int(totp.now()) + 1) % 1_000_000).zfill(6)
    assert login(client, code=wrong).status_code == 401
    old = totp.at(dt.datetime.now() - dt.timedelta(minutes=5))
    assert login(client, code=old).status_code == 401
    code = totp.now()
    assert login(client, code=code[:3] + " " + code[3:]).status_code == 303
    assert client.get("/admin").status_code == 200


def test_totp_code_cannot_be_used_twice(app, client, db_url, ada):
    import pyotp

    code = pyotp.TOTP(enroll(db_url)).now()
    assert login(client, code=code).status_code == 303
    assert admin_post(client, "/admin/logout").status_code == 303
    assert login(client, code=code).status_code == 401  # replayed within its 30 seconds


def test_totp_failures_look_like_any_other_failure(app, client, db_url, ada):
    enroll(db_url)
    no_code = login(client)
    wrong_password = login(client, password="not the password", code="123456")
    for response in (no_code, wrong_password):
        assert admin_auth.FAILED in response.get_data(as_text=True) and response.status_code == 401


def test_totp_for_an_unknown_admin_changes_nothing(app, db_url, ada):
    result = cli(db_url, "admin-totp", "bob")
    assert result.exit_code != 0 and "bob" in result.output
    assert all(admin.totp_secret is None for admin in admins(app))


def test_totp_can_be_turned_off(app, client, db_url, ada):
    enroll(db_url)
    result = cli(db_url, "admin-totp", "ada", "--off")
    assert result.exit_code == 0, result.output
    assert login(client).status_code == 303


def test_login_needs_a_csrf_token(client, ada):
    response = client.post("/admin/login", data={"username": "ada", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin").status_code == 302


def test_login_starts_a_fresh_short_session(app, client, ada):
    assert submit_api(client).status_code == 201
    with client.session_transaction() as session:
        session["results_key"] = "left over from before"
    response = login(client)
    assert response.status_code == 303 and response.headers["Location"] == "/admin"
    with client.session_transaction() as session:
        assert "results_key" not in session and session["admin_id"] and session.permanent
    assert app.permanent_session_lifetime <= dt.timedelta(hours=1)
    page = client.get("/admin")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"


def test_replayed_cookie_after_logout_is_refused(app, client, ada):
    login(client)
    name = app.config["SESSION_COOKIE_NAME"]
    assert client.get("/admin").status_code == 200
    stolen = client.get_cookie(name).value
    tokens = form_tokens(client.get("/admin").get_data(as_text=True))
    assert client.post("/admin/logout", data=tokens).status_code == 303
    assert client.get("/admin").status_code == 302
    replay = app.test_client()
    replay.set_cookie(name, stolen)
    response = replay.get("/admin")
    assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login")


def test_a_new_login_ends_the_older_session(app, ada):
    first, second = app.test_client(), app.test_client()
    login(first)
    assert first.get("/admin").status_code == 200
    login(second)
    assert second.get("/admin").status_code == 200
    assert first.get("/admin").status_code == 302


def test_idle_session_times_out(client, ada, monkeypatch):
    login(client)
    assert client.get("/admin").status_code == 200
    later = admin_auth.time.time() + admin_auth.IDLE_SECONDS + 5
    monkeypatch.setattr(admin_auth.time, "time", lambda: later)
    response = client.get("/admin")
    assert response.status_code == 302 and "expired=1" in response.headers["Location"]


def test_eleventh_failed_login_is_429(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True)
    with app.app_context():
        admin_auth.create_admin("ada", PASSWORD)
    client = app.test_client()
    statuses = [login(client, "ada", f"guess {i}").status_code for i in range(10)]
    assert statuses == [401] * 10
    assert login(client, "ada", "guess 11").status_code == 429
    assert login(client).status_code == 429  # even the right password waits
    state.of(app).close()


def test_successful_logins_do_not_use_up_the_budget(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True)
    with app.app_context():
        admin_auth.create_admin("ada", PASSWORD)
    assert all(login(app.test_client()).status_code == 303 for _ in range(12))
    state.of(app).close()


# ------------------------------------------------------------------ survey and results


def test_overview_shows_responses_and_progress(client, ada):
    for _ in range(3):
        submit_api(client)
    login(client)
    html = client.get("/admin").get_data(as_text=True)
    assert re.search(r'<strong class="big-number">3</strong> responses', html)
    assert "7 more needed" in html and 'max="10" value="3"' in html
    assert "/admin/export.csv" in html and "/admin/report.zip" in html


def test_export_and_report_downloads(client, ada):
    import io
    import zipfile

    from survey_app.exports import CSV_COLUMNS

    for _ in range(10):
        submit_api(client)
    assert client.get("/admin/export.csv").status_code == 302  # not logged in yet
    login(client)
    csv_response = client.get("/admin/export.csv")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    lines = csv_response.get_data(as_text=True).splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert any(",practice_type,psychiatry,10," in line for line in lines)
    archive = zipfile.ZipFile(io.BytesIO(client.get("/admin/report.zip").data))
    assert {"report.html", "plotly.min.js", "aggregates.csv", "benchmark.json"} <= set(archive.namelist())


def test_close_and_open_the_survey(client, ada):
    login(client)
    response = admin_post(client, "/admin/survey", action="close")
    assert response.status_code == 303
    assert submit_api(client).status_code == 409
    assert "(pulse-aftercare@1) is closed." in client.get("/admin").get_data(as_text=True)
    admin_post(client, "/admin/survey", action="open")
    assert submit_api(client).status_code == 201


def test_rebuild_and_release(app, client, ada):
    for _ in range(2):
        submit_api(client)
    login(client)
    # An organiser's rebuild follows the automatic rule: the first snapshot at the release
    # threshold, then each at double the last N. Every snapshot draws the noise afresh, so a
    # rebuild on demand would let whoever asks for it average the draws.
    refused = admin_post(client, "/admin/snapshot")
    assert refused.status_code == 409  # refused on the page itself, nothing built
    assert "No snapshot is due: the first comes at 10 responses (8 more), or when the survey closes." in (
        refused.get_data(as_text=True)
    )
    page = client.get("/admin").get_data(as_text=True)
    assert "The next update comes at 10 responses." in page
    for _ in range(8):
        submit_api(client)  # the 10th builds the first snapshot by itself
    page = client.get("/admin").get_data(as_text=True)
    assert "The next update comes at 20 responses." in page
    for _ in range(9):
        submit_api(client)
    refused = admin_post(client, "/admin/snapshot")
    assert refused.status_code == 409
    page = refused.get_data(as_text=True)
    assert (
        "No snapshot is due: 9 new responses since the published figures (from 10 responses); the next "
        "update comes at 20 responses (1 more), or when the survey closes."
    ) in page
    with app.app_context():
        before = json.loads(snapshot_queries.latest_snapshot(storage.reader(), "pulse-aftercare", 1).published)
    admin_post(client, "/admin/release")  # the 9 new responses are not counted by the release
    survey = app.config["SURVEY"]
    with app.app_context():
        assert program_queries.read_survey_state(storage.reader(), survey.id, survey.version) == (True, True)
    assert "released to everyone" in client.get("/admin").get_data(as_text=True)
    with app.app_context():
        after = json.loads(snapshot_queries.latest_snapshot(storage.reader(), "pulse-aftercare", 1).published)
    # Releasing publishes the same counts again, with the same noise: nothing new to difference.
    assert after == before | {"released": True}


def test_admin_posts_need_a_csrf_token(app, client, ada):
    topic = new_topic(client)
    login(client)
    for path, data in [
        ("/admin/survey", {"action": "close"}),
        ("/admin/release", {}),
        (f"/admin/topics/{topic}", {"action": "approve"}),
        ("/admin/round", {"action": "open"}),
    ]:
        assert client.post(path, data=data).status_code == 400, path
    survey = app.config["SURVEY"]
    with app.app_context():
        db = storage.reader()
        assert program_queries.read_survey_state(db, survey.id, survey.version) == (True, False)
        assert db.get(Topic, topic).status == "pending"


# ------------------------------------------------------------------ moderation and rounds


def test_moderate_and_run_a_round_from_the_pages(app, client, ada):
    a, b, c = new_topic(client, "Alpha"), new_topic(client, '<script>alert("x")</script>'), new_topic(client, "Gamma")
    login(client)
    page = client.get("/admin/topics").get_data(as_text=True)
    assert "Waiting for moderation (3)" in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page and "<script>alert" not in page
    assert admin_post(client, f"/admin/topics/{a}", action="approve").status_code == 303
    admin_post(client, f"/admin/topics/{b}", action="reject")
    admin_post(client, f"/admin/topics/{c}", action="merge", into=a)
    with app.app_context():
        states = {t.id: t.status for t in storage.reader().scalars(select(Topic))}
    assert states == {a: "approved", b: "rejected", c: "merged"}
    assert admin_post(client, "/admin/round", action="open").status_code == 303
    assert "Round 1 is open with 1 topic" in client.get("/admin/topics").get_data(as_text=True)
    key = submit_api(client).get_json()["results_key"]
    assert client.put("/api/v1/ballot", json={"approve": [a]}, headers={"X-Results-Key": key}).status_code == 200
    page = client.get("/admin/topics").get_data(as_text=True)
    assert "1 ballot so far" in page and "Tally of round" not in page  # no running tally
    admin_post(client, "/admin/round", action="close")
    page = client.get("/admin/topics").get_data(as_text=True)
    assert "Round 1 is closed: 1 ballot." in page
    assert re.search(rf"Alpha</td><td><code>{a}</code></td><td class=\"num\">1</td>", page)


@pytest.mark.parametrize(
    "action, into, status, text",
    [
        ("merge", "self", 422, "another topic"),
        ("merge", "rejected", 422, "another topic"),
        ("merge", "", 422, "another topic"),
        ("merge", "ab\x00cd", 422, "another topic"),  # a NUL, which PostgreSQL refuses: never queried
        ("dance", None, 422, "Unknown action"),
    ],
)
def test_bad_moderation_says_why_and_changes_nothing(app, client, ada, action, into, status, text):
    topic, rejected = new_topic(client), new_topic(client, "No")
    with app.app_context():
        community.moderate(rejected, "reject")
    login(client)
    target = {"self": topic, "rejected": rejected}.get(into, into)
    response = admin_post(client, f"/admin/topics/{topic}", action=action, into=target or "")
    assert response.status_code == status and text in response.get_data(as_text=True)
    with app.app_context():
        assert storage.reader().get(Topic, topic).status == "pending"


def test_unknown_topic_is_404_and_round_errors_are_409(client, ada):
    login(client)
    response = admin_post(client, "/admin/topics/0123456789abcdef", action="approve")
    assert response.status_code == 404 and "There is no topic" in response.get_data(as_text=True)
    response = admin_post(client, "/admin/round", action="open")
    assert response.status_code == 409 and "no approved topics" in response.get_data(as_text=True)
    response = admin_post(client, "/admin/round", action="close")
    assert response.status_code == 409 and "No round is open" in response.get_data(as_text=True)


# ------------------------------------------------------------------ the same through the CLI


def test_cli_moderates_and_runs_rounds_like_the_pages(app, db_url):
    client = app.test_client()
    a, b, c = new_topic(client, "Alpha"), new_topic(client, "Beta"), new_topic(client, "Gamma")
    listing = cli(db_url, "topics", "list").output
    assert "pending (3)" in listing and all(t in listing for t in (a, b, c))
    assert "approved" in cli(db_url, "topics", "approve", a).output
    assert "rejected" in cli(db_url, "topics", "reject", b).output
    assert "merged into" in cli(db_url, "topics", "merge", c, a).output
    bad = cli(db_url, "topics", "merge", a, a)
    assert bad.exit_code != 0 and "another" in bad.output
    assert cli(db_url, "topics", "approve", "nope").exit_code != 0
    assert "Round 1 is open with 1 topic" in cli(db_url, "round", "open").output
    assert cli(db_url, "round", "open").exit_code != 0
    key = submit_api(client).get_json()["results_key"]
    assert client.put("/api/v1/ballot", json={"approve": [a]}, headers={"X-Results-Key": key}).status_code == 200
    closed = cli(db_url, "round", "close")
    assert "1 ballot." in closed.output and re.search(rf"1\s+{a}\s+Alpha", closed.output)
    assert cli(db_url, "round", "close").exit_code != 0
    with app.app_context():
        states = dict(storage.reader().execute(select(Topic.id, Topic.status)).all())
    assert states == {a: "chosen", b: "rejected", c: "merged"}  # the round's one topic had an approval


def test_tally_csv_defuses_formulas(app, client, ada):
    login(client)
    assert client.get("/admin/tally.csv").status_code == 404  # no closed round yet
    formula, plain = new_topic(client, '=HYPERLINK("http://x")'), new_topic(client, "Plain, with a comma")
    with app.app_context():
        for topic in (formula, plain):
            community.moderate(topic, "approve")
        community.open_round()
    key = submit_api(client).get_json()["results_key"]
    client.put("/api/v1/ballot", json={"approve": [formula]}, headers={"X-Results-Key": key})
    with app.app_context():
        community.close_round()
    response = client.get("/admin/tally.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).split("\r\n")
    assert lines[0] == "round,topic,title,approvals,ballots"
    assert f'1,{formula},"\'=HYPERLINK(""http://x"")",1,1' in lines
    assert f'1,{plain},"Plain, with a comma",0,1' in lines
    assert app.test_client().get("/admin/tally.csv").status_code == 302


def test_admin_links_a_survey_to_the_topic_it_answers(app, client, ada):
    key = submit_api(client).get_json()["results_key"]
    topic = client.post("/api/v1/topics", json={"title": "Patient comfort"}, headers={"X-Results-Key": key}).json["id"]
    with app.app_context():
        community.moderate(topic, "approve")
    login(client)
    page = client.get("/admin").get_data(as_text=True)
    assert f'<option value="{topic}">Patient comfort (approved)</option>' in page
    response = admin_post(client, "/admin/survey/topic", survey="pulse-aftercare@1", topic=topic)
    assert response.status_code == 303
    assert "linked to topic" in client.get(response.headers["Location"]).get_data(as_text=True)
    listed = client.get("/api/v1/surveys").get_json()["surveys"][0]["topic"]
    assert listed == {"id": topic, "title": "Patient comfort"}
    # An unknown topic is refused by name and changes nothing.
    unknown = admin_post(client, "/admin/survey/topic", survey="pulse-aftercare@1", topic="nope")
    assert unknown.status_code == 404
    assert "There is no topic nope" in unknown.get_data(as_text=True)
    assert client.get("/api/v1/surveys").get_json()["surveys"][0]["topic"] == listed
