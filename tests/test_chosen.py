"""From vote to survey: closing a round chooses its topic; a tie waits for the organisers."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from survey_app import admin_auth, storage, wording
from survey_app.cli import main
from survey_app.community import voting as community
from survey_app.domain_errors import DomainError
from survey_app.models import Round, Topic

from .helpers import ROOT, SECRET, form_tokens, submit_api

pytestmark = pytest.mark.both_databases

PASSWORD = "correct horse battery"


def cli(db_url, *args):
    env = {"SECRET_KEY": SECRET, "DATABASE_URL": db_url, "PULSE_QUESTIONS": str(ROOT / "questions.yaml")}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def act(app, call, *args):
    with app.app_context():
        return call(*args)


def new_key(client) -> str:
    return submit_api(client).get_json()["results_key"]


def run_round(app, client, approvals: list[list[int]], n=3) -> list[str]:
    """n approved topics ("Topic 0".."Topic n-1") and a round over them; one ballot per list of
    topic indexes. The round is left open; the topic ids in order."""
    key = new_key(client)
    ids = [
        client.post("/api/v1/topics", json={"title": f"Topic {i}"}, headers={"X-Results-Key": key}).get_json()["id"]
        for i in range(n)
    ]
    for topic_id in ids:
        act(app, community.moderate, topic_id, "approve")
    act(app, community.open_round)
    for ballot in approvals:
        response = client.put(
            "/api/v1/ballot", json={"approve": [ids[i] for i in ballot]}, headers={"X-Results-Key": new_key(client)}
        )
        assert response.status_code == 200
    return ids


def state_of(app) -> tuple:
    """Every round's choice and every topic's status: what a refused choice must leave alone."""
    with app.app_context():
        db = storage.reader()
        rounds = [
            (r.id, r.status, r.chosen_topic_id, r.chosen_by) for r in db.scalars(select(Round).order_by(Round.id))
        ]
        topics = sorted((t.id, t.status) for t in db.scalars(select(Topic)))
    return rounds, topics


def login(client):
    with client.application.app_context():
        admin_auth.create_admin("ada", PASSWORD)
    tokens = form_tokens(client.get("/admin/login").get_data(as_text=True))
    assert client.post("/admin/login", data={"username": "ada", "password": PASSWORD, **tokens}).status_code == 303


def admin_post(client, **data):
    tokens = form_tokens(client.get("/admin/topics").get_data(as_text=True))
    return client.post("/admin/round", data={**data, **tokens})


def page_text(client, path="/topics") -> str:
    """The page's text, tags removed and spaces collapsed, for reading sentences."""
    html = client.get(path).get_data(as_text=True)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# ------------------------------------------------------------------ a winner


def test_closing_marks_the_most_approved_topic_chosen_by_the_community(app, client):
    a, b, c = run_round(app, client, [[0, 1], [0], [0, 2], [1]])
    message = wording.round_closed(act(app, community.close_round))
    assert 'Chosen by the community: "Topic 0"' in message.splitlines()[0]
    assert state_of(app) == ([(1, "closed", a, "votes")], sorted([(a, "chosen"), (b, "approved"), (c, "approved")]))
    expected = {"round": 1, "topic": {"id": a, "title": "Topic 0"}, "chosen_by": "votes"}
    assert act(app, community.chosen_topics) == [expected]
    assert act(app, community.round_that_chose, a) == expected
    assert act(app, community.round_that_chose, b) is None
    assert act(app, community.round_that_chose, "nope") is None
    listing = client.get("/api/v1/topics").get_json()
    assert listing["round"] == {"id": 1, "status": "closed", "chosen": a, "closes": None}
    assert [t["id"] for t in listing["topics"]][0] == a  # the tally keeps its shape and order
    text = page_text(client)
    assert "Chosen by the community: Topic 0" in text and "organisers" not in text.split("Propose a topic")[0]


def test_chosen_topic_leaves_later_ballots(app, client):
    a, b, c = run_round(app, client, [[0], [0, 1]])
    act(app, community.close_round)
    assert "Round 2 is open with 2 topics" in act(app, community.open_round)
    listing = client.get("/api/v1/topics").get_json()
    assert sorted(t["id"] for t in listing["topics"]) == sorted([b, c])
    assert listing["round"] == {"id": 2, "status": "open", "chosen": None, "closes": None}
    response = client.put("/api/v1/ballot", json={"approve": [a]}, headers={"X-Results-Key": new_key(client)})
    assert response.status_code == 422 and a in response.get_json()["errors"]["approve"]
    assert f'value="{a}"' not in client.get("/topics").get_data(as_text=True)


@pytest.mark.parametrize("action, into", [("approve", None), ("reject", None), ("merge", "other")])
def test_chosen_topic_cannot_be_moderated(app, client, db_url, action, into):
    a, b, _ = run_round(app, client, [[0]])
    act(app, community.close_round)
    before = state_of(app)
    with pytest.raises(DomainError) as exc:
        act(app, community.moderate, a, action, b if into else None)
    said = wording.for_http(exc.value)
    assert said.status == 409 and "chosen" in said.message and "topic" in said.errors
    result = cli(db_url, "topics", action, a, *([b] if into else []))
    assert result.exit_code != 0 and "chosen" in result.output
    login(client)
    tokens = form_tokens(client.get("/admin/topics").get_data(as_text=True))
    response = client.post(f"/admin/topics/{a}", data={"action": action, "into": b if into else "", **tokens})
    assert response.status_code == 409 and "chosen" in response.get_data(as_text=True)
    # Nor can another topic be merged into it: a chosen topic is settled.
    with pytest.raises(DomainError) as exc:
        act(app, community.moderate, b, "merge", a)
    said = wording.for_http(exc.value)
    assert said.status == 422 and "into" in said.errors
    assert state_of(app) == before


# ------------------------------------------------------------------ a tie


@pytest.mark.parametrize(
    "approvals, tied",
    [
        ([[0, 1], [1, 0], [2]], [0, 1]),  # two topics with two approvals each
        ([], [0, 1, 2]),  # no ballots at all
        ([[], []], [0, 1, 2]),  # ballots that approve nothing
    ],
    ids=["tie", "no ballots", "all zero"],
)
def test_a_tie_waits_and_the_organisers_choose_with_the_cli(app, client, db_url, approvals, tied):
    ids = run_round(app, client, approvals)
    message = cli(db_url, "round", "close")
    assert message.exit_code == 0, message.output
    first = message.output.splitlines()[0]
    assert "A tie between" in first and "pulse round choose" in first
    assert all(f'"Topic {i}" ({ids[i]})' in first for i in tied)
    assert all(f"Topic {i}" not in first for i in range(3) if i not in tied)
    assert state_of(app) == ([(1, "closed", None, None)], sorted((t, "approved") for t in ids))
    assert act(app, community.chosen_topics) == []
    assert client.get("/api/v1/topics").get_json()["round"] == {
        "id": 1,
        "status": "closed",
        "chosen": None,
        "closes": None,
    }
    assert "A tie: the organisers choose between Topic" in page_text(client)

    # While the tie waits, no new round opens: its topics would be on two ballots at once.
    opened = cli(db_url, "round", "open")
    assert opened.exit_code != 0 and "pulse round choose" in opened.output

    pick = ids[tied[-1]]
    result = cli(db_url, "round", "choose", pick)
    assert result.exit_code == 0, result.output
    assert f'"Topic {tied[-1]}"' in result.output and "organisers" in result.output
    rounds, topics = state_of(app)
    assert rounds == [(1, "closed", pick, "organisers")]
    assert dict(topics) == {t: ("chosen" if t == pick else "approved") for t in ids}
    assert act(app, community.round_that_chose, pick) == {
        "round": 1,
        "topic": {"id": pick, "title": f"Topic {tied[-1]}"},
        "chosen_by": "organisers",
    }
    assert client.get("/api/v1/topics").get_json()["round"]["chosen"] == pick
    assert f"A tie, chosen by the organisers: Topic {tied[-1]}" in page_text(client)
    assert cli(db_url, "round", "open").exit_code == 0  # the others go on the next ballot


def test_one_topic_nobody_approved_is_the_organisers_to_choose(app, client, db_url):
    (a,) = run_round(app, client, [[]], n=1)
    first = wording.round_closed(act(app, community.close_round)).splitlines()[0]
    assert "No ballot approved" in first and "pulse round choose" in first
    assert state_of(app)[0] == [(1, "closed", None, None)]
    assert "organisers" in cli(db_url, "round", "choose", a).output
    assert state_of(app)[0] == [(1, "closed", a, "organisers")]


def test_organisers_choose_on_the_admin_page(app, client):
    a, b, c = run_round(app, client, [[0, 1], [0, 1], [2]])
    act(app, community.close_round)
    login(client)
    page = client.get("/admin/topics").get_data(as_text=True)
    assert "A tie: the organisers choose between" in page and "pulse round choose TOPIC_ID" in page
    form = page[page.index('id="choose"') : page.index("</form>", page.index('id="choose"'))]
    assert 'name="csrf_token"' in form and 'name="action" value="choose"' in form
    assert f'value="{a}"' in form and f'value="{b}"' in form and f'value="{c}"' not in form
    assert client.post("/admin/round", data={"action": "choose", "topic": b}).status_code == 400  # no CSRF token
    assert state_of(app)[0] == [(1, "closed", None, None)]
    response = admin_post(client, action="choose", topic=b)
    assert response.status_code == 303
    page = client.get("/admin/topics").get_data(as_text=True)
    assert "organisers chose" in page and 'id="choose"' not in page
    assert re.search(r"chosen by the organisers", page)
    assert state_of(app)[0] == [(1, "closed", b, "organisers")]


def test_admin_page_shows_the_winner_by_votes(app, client):
    a, _, _ = run_round(app, client, [[0]])
    act(app, community.close_round)
    login(client)
    page = client.get("/admin/topics").get_data(as_text=True)
    assert "chosen by the community" in page and 'id="choose"' not in page
    assert "Chosen (1)" in page and a in page


# ------------------------------------------------------------------ refused choices


def tie_then(app, client, what: str) -> str:
    """Set up the case; the topic id to choose."""
    if what == "no round":
        return "0123456789abcdef"
    if what == "open round":
        return run_round(app, client, [[0]])[0]
    ids = run_round(app, client, [[0, 1], [0, 1], [2]])
    act(app, community.close_round)
    return {
        "unknown": "0123456789abcdef",
        "not tied": ids[2],
        "empty": "",
        "a long id": "x" * 5000,
        "a NUL": ids[0][:4] + "\x00",
    }.get(what, ids[0])


@pytest.mark.parametrize(
    "what, status, field, words",
    [
        ("no round", 409, "round", "No round has closed"),
        ("open round", 409, "round", "still open"),
        ("unknown", 404, "topic", "There is no topic"),
        ("not tied", 422, "topic", "not tied for the most approvals"),
        ("empty", 422, "topic", "required"),
        ("a long id", 404, "topic", "There is no topic"),
        ("a NUL", 404, "topic", "There is no topic"),  # PostgreSQL refuses NUL: never asked
    ],
)
def test_bad_choice_is_refused_and_changes_nothing(app, client, db_url, what, status, field, words):
    topic = tie_then(app, client, what)
    before = state_of(app)
    with pytest.raises(DomainError) as exc:
        act(app, community.choose, topic)
    said = wording.for_http(exc.value)
    assert (said.status, list(said.errors)) == (status, [field]) and words in said.message
    if topic:  # click refuses an empty argument by itself
        result = cli(db_url, "round", "choose", topic)
        assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
    login(client)
    response = admin_post(client, action="choose", topic=topic)
    assert response.status_code == status and words in response.get_data(as_text=True)
    assert state_of(app) == before


@pytest.mark.parametrize("first_by", ["votes", "organisers"])
def test_a_round_is_chosen_only_once(app, client, db_url, first_by):
    approvals = [[0]] if first_by == "votes" else [[0, 1]]
    a, b, _ = run_round(app, client, approvals)
    act(app, community.close_round)
    if first_by == "organisers":
        act(app, community.choose, a)
    before = state_of(app)
    for topic in (a, b):
        with pytest.raises(DomainError) as exc:
            act(app, community.choose, topic)
        said = wording.for_http(exc.value)
        assert said.status == 409 and "already chose" in said.message and "round" in said.errors
    result = cli(db_url, "round", "choose", b)
    assert result.exit_code != 0 and "already chose" in result.output
    assert state_of(app) == before


def test_a_tied_topic_rejected_since_cannot_be_chosen(app, client):
    a, b, _ = run_round(app, client, [[0, 1]])
    act(app, community.close_round)
    act(app, community.moderate, a, "reject")
    before = state_of(app)
    with pytest.raises(DomainError) as exc:
        act(app, community.choose, a)
    said = wording.for_http(exc.value)
    assert said.status == 409 and "rejected" in said.message and "topic" in said.errors
    assert state_of(app) == before
    assert "A tie: the organisers may choose Topic 1" in page_text(client)  # the one still on offer
    act(app, community.choose, b)
    assert state_of(app)[0] == [(1, "closed", b, "organisers")]


# ------------------------------------------------------------------ the API document


def test_openapi_describes_the_chosen_topic(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert schemas["Round"]["properties"]["chosen"]["type"] == ["string", "null"]
    listed = schemas["Topics"]["properties"]["round"]["oneOf"][0]
    assert "chosen" in listed["allOf"][1]["required"]
