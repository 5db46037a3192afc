"""Topics and approval voting: proposals, moderation, rounds, ballots, the API and /topics."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import DateTime, select
from werkzeug.datastructures import MultiDict

from survey_app import keys, state, storage, wording
from survey_app.community import voting as community
from survey_app.domain_errors import DomainError
from survey_app.models import Ballot, BallotApproval, Base, Response, RoundTopic, Topic

from .helpers import FULL_ANSWERS, form_tokens, make_app, post_form, row_count, submit_api

pytestmark = pytest.mark.both_databases

COMMUNITY_TABLES = ("topics", "rounds", "round_topics", "ballots", "ballot_approvals")
# Whole words of a column name ("description" holds "ip" but is no address).
IDENTIFYING = re.compile(
    r"(^|_)(ip|addr|address|agent|session|token|created|updated|time|timestamp|date|"
    r"referr?er|cookie|fingerprint)(_|$)",
    re.I,
)


def new_key(client) -> str:
    response = submit_api(client)
    assert response.status_code == 201
    return response.get_json()["results_key"]


def propose(client, key, title="Follow-up after esketamine", description="", **extra):
    body = {"title": title, "description": description} | extra
    return client.post("/api/v1/topics", json=body, headers={"X-Results-Key": key} if key else {})


def vote(client, key, ids):
    return client.put("/api/v1/ballot", json={"approve": ids}, headers={"X-Results-Key": key} if key else {})


def act(app, call, *args):
    with app.app_context():
        return call(*args)


def approved_round(app, client, key, n=3) -> list[str]:
    """n approved topics and an open round over them; their ids."""
    ids = [propose(client, key, f"Topic {i}").get_json()["id"] for i in range(n)]
    for topic_id in ids:
        act(app, community.moderate, topic_id, "approve")
    act(app, community.open_round)
    return ids


def tally(client) -> dict[str, int]:
    return {t["id"]: t["votes"] for t in client.get("/api/v1/topics").get_json()["topics"]}


# ------------------------------------------------------------------ proposals


def test_proposal_is_pending_until_approved(app, client):
    key = new_key(client)
    response = propose(client, key, "Integration groups", "How often?")
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "pending" and set(body) == {"id", "status"}
    assert client.get("/api/v1/topics").get_json() == {"round": None, "topics": []}
    assert "Integration groups" not in client.get("/topics").get_data(as_text=True)
    act(app, community.moderate, body["id"], "approve")
    listing = client.get("/api/v1/topics").get_json()
    assert listing == {
        "round": None,
        "topics": [{"id": body["id"], "title": "Integration groups", "description": "How often?", "votes": None}],
    }


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Results-Key": "not-a-key"}, {"X-Results-Key": keys.new_results_key()}],
    ids=["none", "malformed", "forged"],
)
def test_proposal_needs_a_valid_key(app, client, headers):
    new_key(client)
    response = client.post("/api/v1/topics", json={"title": "A topic"}, headers=headers)
    assert response.status_code == 401
    assert row_count(app, Topic) == 0


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({"title": ""}, "title", "required"),
        ({"title": "   "}, "title", "required"),
        ({}, "title", "required"),
        ({"title": "x" * 121}, "title", "at most 120"),
        ({"title": "ok", "description": "d" * 1001}, "description", "at most 1000"),
        ({"title": "bell\x07"}, "title", "control characters"),
        ({"title": "nul\x00byte"}, "title", "control characters"),
        ({"title": "lone \ud800 surrogate"}, "title", "control characters"),
        ({"title": "trailing newline\n"}, "title", "control characters"),
        ({"title": "two\nlines"}, "title", "control characters"),
        ({"title": "bidi \u202egnp.exe"}, "title", "control characters"),
        ({"title": "ok", "description": "escape \x1b[31m"}, "description", "control characters"),
        # Not characters: XML (the Atom feed carries a chosen topic's title) cannot hold them.
        ({"title": "not a character \ufffe"}, "title", "control characters"),
        ({"title": "ok", "description": "not a character \uffff"}, "description", "control characters"),
        ({"title": 42}, "title", "must be text"),
        ({"title": "ok", "description": None}, "description", "must be text"),
        ({"title": "ok", "author": "me"}, "author", "unknown field"),
    ],
)
def test_bad_proposal_is_422_naming_the_field(app, client, body, field, message):
    key = new_key(client)
    response = client.post("/api/v1/topics", json=body, headers={"X-Results-Key": key})
    assert response.status_code == 422
    assert message in response.get_json()["errors"][field]
    assert row_count(app, Topic) == 0


def test_longest_allowed_proposal_is_accepted(app, client):
    key = new_key(client)
    response = propose(client, key, "t" * 120, "line one\nline two\t" + "d" * 980)
    assert response.status_code == 201
    with app.app_context():
        topic = storage.reader().get(Topic, response.get_json()["id"])
    assert len(topic.title) == 120 and topic.description.startswith("line one\nline two")


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
def test_proposal_body_that_is_not_an_object(app, client, body):
    key = new_key(client)
    response = client.post("/api/v1/topics", data=body, content_type="application/json", headers={"X-Results-Key": key})
    assert response.status_code in (400, 422)
    assert client.post("/api/v1/topics", data="title=x", headers={"X-Results-Key": key}).status_code == 415
    assert row_count(app, Topic) == 0


def test_proposal_text_is_escaped_everywhere(app, client):
    key = new_key(client)
    attack = '"><img src=x onerror=alert(1)>'
    topic_id = propose(client, key, attack, "</script><script>alert(2)</script>").get_json()["id"]
    act(app, community.moderate, topic_id, "approve")
    for page in (client.get("/topics").get_data(as_text=True),):
        assert "&lt;img src=x" in page and "<img src=x" not in page
        assert "&lt;/script&gt;&lt;script&gt;" in page and "<script>alert" not in page
    act(app, community.open_round)
    page = client.get("/topics").get_data(as_text=True)
    assert "&lt;img src=x" in page and "<img src=x" not in page


# ------------------------------------------------------------------ moderation and rounds


def test_moderation_rules(app, client):
    key = new_key(client)
    a, b, c = (propose(client, key, t).get_json()["id"] for t in ("A", "B", "C"))
    with pytest.raises(DomainError) as exc:
        act(app, community.open_round)
    said = wording.for_http(exc.value)
    assert said.status == 409  # nothing approved yet
    act(app, community.moderate, a, "approve")
    act(app, community.moderate, b, "reject")
    for args, status in [
        ((c, "merge", c), 422),
        ((c, "merge", b), 422),
        ((c, "merge", "nope"), 422),
        (("nope", "approve"), 404),
        ((c, "delete"), 422),
    ]:
        with pytest.raises(DomainError) as exc:
            act(app, community.moderate, *args)
        said = wording.for_http(exc.value)
        assert said.status == status
    act(app, community.moderate, c, "merge", a)
    with pytest.raises(DomainError) as exc:
        act(app, community.moderate, c, "approve")
    said = wording.for_http(exc.value)
    assert said.status == 409  # a merged topic stays merged
    with app.app_context():
        db = storage.reader()
        states = {t.id: (t.status, t.merged_into) for t in db.scalars(select(Topic))}
    assert states == {a: ("approved", None), b: ("rejected", None), c: ("merged", a)}
    assert "Round 1 is open with 1 topic" in act(app, community.open_round)
    with pytest.raises(DomainError) as exc:
        act(app, community.open_round)
    said = wording.for_http(exc.value)
    assert said.status == 409


def test_round_lists_topics_in_random_order_and_votes_only_once_closed(app, client):
    key = new_key(client)
    ids = approved_round(app, client, key, n=6)
    orders = set()
    for _ in range(15):
        listing = client.get("/api/v1/topics").get_json()
        assert listing["round"] == {"id": 1, "status": "open", "chosen": None, "closes": None}
        assert sorted(t["id"] for t in listing["topics"]) == sorted(ids)
        assert all(t["votes"] is None for t in listing["topics"])
        orders.add(tuple(t["id"] for t in listing["topics"]))
    assert len(orders) > 1  # 720 orders: fifteen identical draws would be a bug, not luck
    other = new_key(client)
    assert vote(client, key, ids[:2]).status_code == 200
    assert vote(client, other, ids[1:3]).status_code == 200
    act(app, community.close_round)
    listing = client.get("/api/v1/topics").get_json()
    assert listing["round"] == {"id": 1, "status": "closed", "chosen": ids[1], "closes": None}  # the most approved
    votes = [t["votes"] for t in listing["topics"]]
    assert votes == sorted(votes, reverse=True)  # the tally reads most approved first
    assert tally(client) == {ids[0]: 1, ids[1]: 2, ids[2]: 1, ids[3]: 0, ids[4]: 0, ids[5]: 0}
    assert vote(client, key, ids[:1]).status_code == 409  # closed: no more ballots


# ------------------------------------------------------------------ ballots


def test_ballot_needs_an_open_round(app, client):
    key = new_key(client)
    assert vote(client, key, []).status_code == 409
    assert row_count(app, Ballot) == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Results-Key": "nonsense"}, {"X-Results-Key": keys.new_results_key()}],
    ids=["none", "malformed", "forged"],
)
def test_ballot_needs_a_valid_key(app, client, headers):
    key = new_key(client)
    ids = approved_round(app, client, key, n=1)
    assert client.put("/api/v1/ballot", json={"approve": ids}, headers=headers).status_code == 401
    assert row_count(app, Ballot) == 0


def test_same_key_votes_twice_one_ballot_replaced(app, client):
    key = new_key(client)
    a, b, c = approved_round(app, client, key)
    first = vote(client, key, [a, b, a])
    assert first.status_code == 200
    assert first.get_json() == {"round": {"id": 1, "status": "open"}, "approve": sorted([a, b])}
    assert vote(client, key, [c]).status_code == 200
    assert row_count(app, Ballot) == 1 and row_count(app, BallotApproval) == 1
    act(app, community.close_round)
    assert tally(client) == {a: 0, b: 0, c: 1}


def test_new_round_takes_a_new_ballot_from_the_same_key(app, client):
    key = new_key(client)
    a, b = approved_round(app, client, key, n=2)
    assert vote(client, key, [a]).status_code == 200
    act(app, community.close_round)  # a is chosen: only b goes on the next ballot
    act(app, community.open_round)
    assert vote(client, key, [b]).status_code == 200
    assert row_count(app, Ballot) == 2


@pytest.mark.parametrize(
    "body, message",
    [
        ({"approve": "abc"}, "list of topic ids"),
        ({"approve": [1, 2]}, "list of topic ids"),
        ({"approve": None}, "list of topic ids"),
        ({}, "required"),
        ({"approve": [], "extra": 1}, None),
        ({"approve": ["x"] * 501}, "at most 500"),
    ],
)
def test_bad_ballot_body_is_422_and_changes_nothing(app, client, body, message):
    key = new_key(client)
    (a,) = approved_round(app, client, key, n=1)
    assert vote(client, key, [a]).status_code == 200
    response = client.put("/api/v1/ballot", json=body, headers={"X-Results-Key": key})
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert message is None or message in errors["approve"]
    act(app, community.close_round)
    assert tally(client) == {a: 1}


@pytest.mark.parametrize("which", ["rejected", "merged", "unknown", "approved later", "pending"])
def test_ballot_for_a_topic_outside_the_round_is_422(app, client, which):
    key = new_key(client)
    a, b = approved_round(app, client, key, n=2)
    assert vote(client, key, [a]).status_code == 200
    if which == "rejected":
        act(app, community.moderate, b, "reject")
        target = b
    elif which == "merged":
        act(app, community.moderate, b, "merge", a)
        target = b
    elif which == "unknown":
        target = "0123456789abcdef"
    else:
        target = propose(client, key, "Late").get_json()["id"]
        if which == "approved later":
            act(app, community.moderate, target, "approve")
    response = vote(client, key, [a, target])
    assert response.status_code == 422
    assert target in response.get_json()["errors"]["approve"]
    act(app, community.close_round)
    assert tally(client)[a] == 1 and target not in tally(client)


def test_merged_topic_leaves_the_ballot_and_its_approvals_move(app, client):
    keys_ = [new_key(client) for _ in range(3)]
    a, b = approved_round(app, client, keys_[0], n=2)
    vote(client, keys_[0], [a])
    vote(client, keys_[1], [b])
    vote(client, keys_[2], [a, b])
    act(app, community.moderate, b, "merge", a)
    assert [t["id"] for t in client.get("/api/v1/topics").get_json()["topics"]] == [a]
    assert f'value="{b}"' not in client.get("/topics").get_data(as_text=True)
    act(app, community.close_round)
    assert tally(client) == {a: 3}  # each ballot approves a once, however it got there


def test_rejected_topic_leaves_the_open_round(app, client):
    key = new_key(client)
    a, b = approved_round(app, client, key, n=2)
    vote(client, key, [a, b])
    act(app, community.moderate, a, "reject")
    act(app, community.close_round)
    assert tally(client) == {b: 1}


# ------------------------------------------------------------------ unlinkability


def test_community_tables_keep_no_identifiers_or_timestamps():
    for name in COMMUNITY_TABLES:
        table = Base.metadata.tables[name]
        for column in table.columns:
            assert not isinstance(column.type, DateTime), f"{name}.{column.name}"
            assert not IDENTIFYING.search(column.name), f"{name}.{column.name}"
    assert {c.name for c in Topic.__table__.columns} == {"id", "title", "description", "status", "merged_into", "week"}
    assert {c.name for c in Ballot.__table__.columns} == {"id", "round_id", "ballot_hash"}


def test_no_stored_ballot_or_proposal_value_appears_in_a_response_row(app, client):
    key = new_key(client)
    ids = approved_round(app, client, key, n=2)
    assert vote(client, key, ids).status_code == 200
    propose(client, key, "Another")
    secret = app.config["SECRET_KEY"]
    with app.app_context():
        db = storage.reader()
        response_values = {str(v) for row in db.execute(select(Response.__table__)).all() for v in row}
        stored = []
        for model in (Topic, RoundTopic, Ballot, BallotApproval):
            for row in db.execute(select(model.__table__)).all():
                # Ids, hashes and text. Left out: the ISO week, which everyone who answered that
                # week shares, and round numbers and states, which every ballot of a round shares.
                stored.extend(
                    v
                    for name, v in row._mapping.items()
                    if isinstance(v, str) and len(v) >= 4 and name not in ("week", "status")
                )
        ballot = db.scalars(select(Ballot)).one()
        response = db.scalars(select(Response)).one()
    assert stored and not set(stored) & response_values
    assert not any(v in r or r in v for v in stored for r in response_values if len(v) >= 8 and len(r) >= 8)
    assert ballot.ballot_hash == keys.keyed_hash(secret, "ballot", key)
    assert ballot.ballot_hash != response.key_hash
    hashes = {keys.keyed_hash(secret, d, key) for d in ("response", "proposal", "invite")}
    assert not hashes & set(stored)


# ------------------------------------------------------------------ the /topics page


def topics_form(client, path, pairs):
    tokens = form_tokens(client.get("/topics").get_data(as_text=True))
    return client.post(path, data=MultiDict(list(pairs) + [("csrf_token", tokens["csrf_token"])]))


def test_page_propose_and_vote_with_the_session_key(app, client):
    assert post_form(client, FULL_ANSWERS).status_code == 303  # the session now holds the key
    page = client.get("/topics").get_data(as_text=True)
    assert 'name="results_key"' not in page  # no need to type the key
    response = topics_form(client, "/topics/propose", [("title", "Peer support"), ("description", "a\r\nb")])
    assert response.status_code == 303 and "done=proposed" in response.headers["Location"]
    assert "sent to the organisers" in client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        topic = storage.reader().scalars(select(Topic)).one()
    assert topic.description == "a\nb"
    act(app, community.moderate, topic.id, "approve")
    act(app, community.open_round)
    response = topics_form(client, "/topics/ballot", [("approve", topic.id)])
    assert response.status_code == 303 and "done=voted" in response.headers["Location"]
    page = client.get("/topics").get_data(as_text=True)
    assert re.search(rf'value="{topic.id}"\s+checked', page)  # the saved ballot shows as ticked
    response = topics_form(client, "/topics/ballot", [])  # untick everything: an empty ballot
    assert response.status_code == 303
    act(app, community.close_round)
    assert tally(client) == {topic.id: 0}
    assert row_count(app, Ballot) == 1


def test_page_takes_the_key_from_the_form_body(app, client):
    key = new_key(client)
    fresh = app.test_client()  # no session key
    assert 'name="results_key"' in fresh.get("/topics").get_data(as_text=True)
    response = topics_form(fresh, "/topics/propose", [("title", "From the form"), ("results_key", key)])
    assert response.status_code == 303
    assert row_count(app, Topic) == 1


@pytest.mark.parametrize(
    "pairs, status, text",
    [
        ([("title", "No key")], 401, "A results key is needed"),
        ([("title", "Bad key"), ("results_key", "ABCD")], 401, "That results key is not valid"),
    ],
)
def test_page_without_a_valid_key_is_401(app, client, pairs, status, text):
    new_key(client)
    fresh = app.test_client()
    response = topics_form(fresh, "/topics/propose", pairs)
    assert response.status_code == status and text in response.get_data(as_text=True)
    assert row_count(app, Topic) == 0


@pytest.mark.parametrize(
    "title, message", [("", "the title is required"), ("x" * 121, "at most 120"), ("tab\there", "control characters")]
)
def test_page_bad_title_is_shown_beside_the_field(app, client, title, message):
    key = new_key(client)
    response = topics_form(
        client, "/topics/propose", [("title", title), ("description", "kept <b>text</b>"), ("results_key", key)]
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="title-error"' in html and message in html and 'aria-describedby="title-error"' in html
    assert "kept &lt;b&gt;text&lt;/b&gt;" in html  # what was typed is kept, escaped
    assert row_count(app, Topic) == 0


def test_page_shows_the_ballot_cast_with_a_typed_key(app, client):
    key = new_key(client)
    a, b, c = approved_round(app, client, key, n=3)
    fresh = app.test_client()  # no key in its session: the key is typed into the ballot form
    response = topics_form(fresh, "/topics/ballot", [("approve", a), ("approve", c), ("results_key", key)])
    assert response.status_code == 303
    page = fresh.get(response.headers["Location"]).get_data(as_text=True)
    ballot = page[page.index('id="your-ballot"') : page.index("</div>", page.index('id="your-ballot"'))]
    assert "Your ballot approves:" in ballot
    assert "<li>Topic 0</li>" in ballot and "<li>Topic 2</li>" in ballot and "Topic 1" not in ballot
    assert re.search(rf'value="{a}"\s+checked', page) and not re.search(rf'value="{b}"\s+checked', page)
    assert 'name="results_key"' not in page  # kept in the session, as the results key form does
    topics_form(fresh, "/topics/ballot", [])
    assert "approves none of the topics" in fresh.get("/topics").get_data(as_text=True)


@pytest.mark.parametrize("path", ["/topics/propose", "/topics/ballot"])
def test_page_keeps_a_mistyped_key_in_its_field(app, client, path):
    key = new_key(client)
    approved_round(app, client, key, n=1)
    typo = ("A" if key[0] != "A" else "B") + key[1:]
    response = topics_form(app.test_client(), path, [("title", "x"), ("results_key", typo)])
    assert response.status_code == 401
    assert f'value="{typo}"' in response.get_data(as_text=True)


def test_page_ballot_for_a_rejected_topic_is_422(app, client):
    key = new_key(client)
    a, b = approved_round(app, client, key, n=2)
    act(app, community.moderate, b, "reject")
    response = topics_form(client, "/topics/ballot", [("approve", b), ("results_key", key)])
    assert response.status_code == 422 and 'id="approve-error"' in response.get_data(as_text=True)
    assert row_count(app, Ballot) == 0


@pytest.mark.parametrize("path", ["/topics/propose", "/topics/ballot"])
def test_page_posts_need_a_csrf_token(app, client, path):
    key = new_key(client)
    approved_round(app, client, key, n=1)
    response = client.post(path, data={"title": "x", "results_key": key, "approve": "x"})
    assert response.status_code == 400
    assert row_count(app, Ballot) == 0 and row_count(app, Topic) == 1


def test_no_html_post_route_is_exempt_from_csrf(app):
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/static")) or not ({"POST", "PUT", "DELETE"} & rule.methods):
            continue
        path = re.sub(r"<[^>]+>", "x", re.sub(r"<int:[^>]+>", "1", rule.rule))
        assert client.post(path, data={}).status_code == 400, rule.rule


# ------------------------------------------------------------------ limits and the API document


def test_one_key_cannot_flood_the_moderation_queue(db_url):
    app = make_app(db_url, RATELIMIT_ENABLED=True)
    client = app.test_client()
    key = new_key(client)
    statuses = [propose(client, key, f"Topic {i}").status_code for i in range(6)]
    assert statuses == [201] * 5 + [429]
    assert row_count(app, Topic) == 5
    state.of(app).close()


def test_openapi_describes_the_topic_endpoints(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    topics, ballot = doc["paths"]["/api/v1/topics"], doc["paths"]["/api/v1/ballot"]
    assert set(topics) == {"get", "post"} and set(ballot) == {"put"}
    assert {"201", "401", "422"} <= set(topics["post"]["responses"])
    assert {"200", "401", "409", "422"} <= set(ballot["put"]["responses"])
    body = topics["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["title"]["maxLength"] == community.TITLE_MAX
    assert body["properties"]["description"]["maxLength"] == community.DESCRIPTION_MAX


def test_concurrent_ballots_and_round_opens_stay_single(app, client):
    import threading

    key = new_key(client)
    topic = propose(client, key, "Only").get_json()["id"]
    act(app, community.moderate, topic, "approve")
    outcomes = []

    def run(call, *args):
        with app.app_context():
            try:
                outcomes.append(call(*args))
            except DomainError as exc:
                outcomes.append(wording.for_http(exc).status)

    threads = [threading.Thread(target=run, args=(community.open_round,)) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert outcomes.count(409) == 5
    ballot_hash = keys.keyed_hash(app.config["SECRET_KEY"], "ballot", key)
    threads = [threading.Thread(target=run, args=(community.cast_ballot, ballot_hash, [topic])) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert row_count(app, Ballot) == 1 and row_count(app, BallotApproval) == 1
