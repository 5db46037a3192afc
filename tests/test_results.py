"""GET /api/v1/benchmarks and the /results page: early access, keys, numbers, thresholds."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from survey_app import admin_actions, keys, snapshots, state, storage

from .helpers import ROOT, clinic, fill, form_tokens, make_app, submit_api

BAD_KEYS = ["", "nonsense", "AAAA-BBBB", "ÄÖÜ" * 9, "x" * 200, "'; DROP TABLE responses; --"]


def benchmarks(client, key: str | None = None):
    return client.get("/api/v1/benchmarks", headers={"X-Results-Key": key} if key is not None else {})


def cells(body: dict, question: str) -> dict:
    q = next(q for q in body["questions"] if q["key"] == question)
    return {c["key"]: (c["count"], c["percent"], c["ci"], c["suppressed"]) for c in q["options"]}


# ------------------------------------------------------------------------------- the API


def test_early_access_answers_403_without_key(app, client):
    fill(app, client)
    response = benchmarks(client)
    assert response.status_code == 403
    assert "X-Results-Key" in response.json["error"]


@pytest.mark.parametrize("release", [False, True], ids=["early-access", "released"])
def test_malformed_or_unknown_key_is_always_401(app, client, release):
    fill(app, client, n=10, release=release)
    for key in BAD_KEYS + [keys.new_results_key()]:
        response = benchmarks(client, key)
        assert response.status_code == 401, key
        # One message for malformed and unknown keys: no hint whether a key exists.
        assert response.json == {"error": "That results key is not valid."}, key


@pytest.mark.parametrize("release", [False, True], ids=["early-access", "released"])
def test_valid_key_adds_you(app, client, release):
    results_keys = fill(app, client, release=release)
    body = benchmarks(client, results_keys[5]).json
    assert body["you"]["answers"] == clinic(5)
    assert body["you"]["index"] == 88
    # The other 15 clinics: five at 73 (lower), five at 88 (same), five at 95 (higher).
    assert (body["you"]["lower"], body["you"]["same"], body["you"]["higher"]) == (34, 33, 33)
    assert body["you"]["missing_practices"] == []


def test_key_accepts_lower_case_and_spaces(app, client):
    results_keys = fill(app, client)
    typed = " " + results_keys[5].lower().replace("-", " ") + " "
    assert benchmarks(client, typed).json["you"]["index"] == 88


def test_you_withholds_small_groups_and_lists_missing_practices(app, client):
    body = benchmarks(client, fill(app, client)[12]).json
    you = body["you"]
    assert you["index"] == 73
    # Same = 4 other clinics: lower, same and higher are all withheld, with the reason.
    assert (you["lower"], you["same"], you["higher"]) == (None, None, None) and you["reason"]
    assert you["missing_practices"] == [{"question": "first_followup", "option": "within_24h"},
                                        {"question": "after_hours", "option": "on_call"}]


def test_participant_not_yet_in_the_snapshot_is_compared_with_all_of_it(app, client):
    fill(app, client)
    late = submit_api(client, clinic(5)).json["results_key"]  # pending: no rebuild before 5 new ones
    you = benchmarks(client, late).json["you"]
    # All 16 counted clinics are "others": 5 lower, 6 the same, 5 higher.
    assert (you["lower"], you["same"], you["higher"]) == (31, 38, 31)


def test_after_release_no_key_serves_the_snapshot_bytes(app, client):
    fill(app, client, release=True)
    response = benchmarks(client)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "you" not in response.json and response.json["released"] is True
    with app.app_context():
        assert response.data == snapshots.current(app.config["SURVEY"]).body


def test_api_numbers_equal_hand_computed_ones(app, client):
    fill(app, client, release=True)
    body = benchmarks(client).json
    assert (body["responses"], body["published"]) == (16, True)
    # Wilson 95% intervals in whole percents, rounded outwards, worked out by hand.
    assert cells(body, "first_followup") == {
        "within_24h": (9, 56, [33, 77], False), "within_48h": (7, 44, [23, 67], False),
        "within_72h": (0, 0, [0, 20], False), "within_week": (0, 0, [0, 20], False),
        "next_session": (0, 0, [0, 20], False), "no_followup": (0, 0, [0, 20], False)}
    assert cells(body, "after_hours")["on_call"] == (11, 69, [44, 86], False)
    assert cells(body, "after_hours")["crisis_line"] == (5, 31, [14, 56], False)
    checks = cells(body, "discharge_checks")
    assert checks["vitals"] == (16, 100, [80, 100], False)  # unanimous: N itself is not hidden
    assert checks["emotional_checkin"] == (5, 31, [14, 56], False)
    assert checks["ride_home"] == (None, None, None, True)  # 2 clinics
    practice = cells(body, "practice_type")
    # 15 of 16 (near-unanimous) and 1 of 16 are both hidden; nothing else can reveal them.
    assert practice["psychiatry"] == practice["other"] == (None, None, None, True)
    # One clinic of another type: no split into groups of 10 exists, so no breakdown at all.
    assert body["segment"]["groups"] == []
    assert all(q["segments"] == [] for q in body["questions"])
    assert all(q["caution"] for q in body["questions"])
    index = body["index"]
    assert index["percentiles"] == {"10": None, "25": None, "50": 88.0, "75": None, "90": None}
    assert [(b["from"], b["count"]) for b in index["histogram"] if b["count"]] == [(70, 5), (80, 6), (90, 5)]


def test_below_threshold_publishes_nothing(app, client):
    results_keys = fill(app, client, n=3)
    body = benchmarks(client, results_keys[0]).json
    assert (body["published"], body["questions"], body["responses"]) == (False, [], 3)
    assert body["you"]["index"] == 95


# ------------------------------------------------------------------------------- the page


def enter(client, key):
    tokens = form_tokens(client.get("/results/key").get_data(as_text=True))
    return client.post("/results", data={"csrf_token": tokens["csrf_token"], "results_key": key})


def test_page_in_early_access_shows_the_key_form(app, client):
    fill(app, client)
    response = client.get("/results")
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert 'name="results_key"' in html and 'method="post"' in html and "chart-" not in html


@pytest.mark.parametrize("release", [False, True], ids=["early-access", "released"])
def test_wrong_key_gets_401_page_without_hint(app, client, release):
    fill(app, client, n=10, release=release)
    for key in BAD_KEYS[1:] + [keys.new_results_key()]:
        response = enter(client, key)
        assert response.status_code == 401, key
        html = response.get_data(as_text=True)
        assert "That results key is not valid." in html
        assert key not in html  # the typed key is not echoed back into the page
        with client.session_transaction() as session:
            assert "results_key" not in session


def test_valid_key_is_kept_in_session_and_shows_scorecard(app, client):
    key = fill(app, client)[5]
    response = enter(client, key)
    assert response.status_code == 303 and response.headers["Location"] == "/results"
    assert key not in response.headers["Location"]
    html = client.get("/results").get_data(as_text=True)
    scorecard = html[html.index('id="your-clinic"'):]
    assert re.search(r'score-number">88<', scorecard)
    assert "34%</strong> score lower" in scorecard and "33%</strong> the same" in scorecard
    assert "not clinical guidance" in scorecard
    assert "not all clinics" in html
    # The participant's answer is marked in the table by a symbol and words, not colour alone.
    assert "◆ your answer" in html
    # Forgetting the key ends it for this browser: back to the gate.
    tokens = form_tokens(html)
    client.post("/results/forget", data={"csrf_token": tokens["csrf_token"]})
    assert client.get("/results").status_code == 403


def test_withheld_standing_shows_index_against_percentiles(app, client):
    enter(client, fill(app, client)[12])
    html = client.get("/results").get_data(as_text=True)
    scorecard = html[html.index('id="your-clinic"'):html.index("</section>", html.index('id="your-clinic"'))]
    assert "Withheld" in scorecard and "published percentiles" in scorecard
    assert "Median" in scorecard and ">88<" in scorecard
    assert "Within 24 hours" in scorecard and "On-call clinician through an answering service" in scorecard


def test_released_page_without_key_has_charts_tables_and_notes(app, client):
    fill(app, client, release=True)
    response = client.get("/results")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="your-clinic"' not in html
    assert 'id="chart-first_followup-data"' in html and "vendor/plotly.min.js" in html
    assert "figures describe the clinics that answered, not all clinics" in html
    assert "Small sample" in html  # N = 16 < 30
    # The one clinic of another practice type: its row is suppressed, and no breakdown is offered.
    practice = html[html.index('id="q-practice_type"'):html.index('id="q-discharge_checks"')]
    assert practice.count(">suppressed<") == 2
    assert "By practice type" not in html


def test_reading_public_results_sets_no_cookie(app, client):
    """A reader of the public page gets no session: the key form lives on its own page."""
    fill(app, client, release=True)
    reader = app.test_client()
    page = reader.get("/results")
    assert page.status_code == 200 and "Set-Cookie" not in page.headers
    html = page.get_data(as_text=True)
    assert "<form" not in html and 'href="/results/key"' in html
    key_page = reader.get("/results/key")
    assert key_page.status_code == 200 and 'name="results_key"' in key_page.get_data(as_text=True)
    assert "csrf_token" in form_tokens(key_page.get_data(as_text=True))


def test_key_page_in_early_access_is_the_gate(app, client):
    fill(app, client)
    response = app.test_client().get("/results/key")
    assert response.status_code == 200 and "Results are in early access" in response.get_data(as_text=True)


def test_key_page_with_a_key_in_the_session_goes_to_the_results(app, client):
    results_keys = fill(app, client, release=True)
    assert enter(client, results_keys[0]).status_code == 303
    response = client.get("/results/key")
    assert response.status_code == 303 and response.headers["Location"].endswith("/results")


def test_below_threshold_page_says_how_many_more(app, client):
    enter(client, fill(app, client, n=3)[0])
    html = client.get("/results").get_data(as_text=True)
    assert "3 clinics have answered" in html and "7 more responses are needed" in html
    assert 'score-number">95<' in html and "chart-" not in html


def test_empty_survey_page(app, client):
    with app.app_context():
        admin_actions.set_survey_state(released=True)
    response = client.get("/results")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "No clinic has answered" in html and "10 more responses are needed" in html
    assert benchmarks(client).json["responses"] == 0


def test_session_key_from_another_database_is_dropped_quietly(app, client):
    fill(app, client, release=True)
    with client.session_transaction() as session:
        session["results_key"] = keys.new_results_key()
    response = client.get("/results")
    assert response.status_code == 200 and 'id="your-clinic"' not in response.get_data(as_text=True)
    with client.session_transaction() as session:
        assert "results_key" not in session


class _Scripts(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs))


def test_chart_data_cannot_break_out_of_its_script_element(db_url, tmp_path):
    hostile = "</script><script>alert(1)</script>"
    text = (ROOT / "questions.yaml").read_text().replace("label: Within 24 hours", f"label: '{hostile}'")
    questions = tmp_path / "questions.yaml"
    questions.write_text(text)
    app = make_app(db_url, PULSE_QUESTIONS=str(questions))
    client = app.test_client()
    fill(app, client, release=True)
    html = client.get("/results").get_data(as_text=True)
    parser = _Scripts()
    parser.feed(html)
    data = [s for s in parser.scripts if s.get("type") == "application/json"]
    code = [s for s in parser.scripts if s.get("type") != "application/json"]
    # Only our two script files run; every figure stays inside its JSON data block.
    srcs = [s.get("src") or "" for s in code]
    assert len(srcs) == 2 and srcs[0].endswith("/vendor/plotly.min.js") and srcs[1].endswith("/charts.js")
    assert all(src.startswith("/") and not src.startswith("//") for src in srcs)  # our own server only
    assert len(data) == html.count('type="application/json"')
    assert "alert(1)</script>" not in html
    state.of(app).close()


@pytest.mark.parametrize("marked", [True, False])
def test_demo_banner_follows_the_database_flag(db_url, marked):
    app = make_app(db_url)
    if marked:
        with app.app_context(), storage.writer() as db:
            storage.mark_demo(db)
    html = app.test_client().get("/").get_data(as_text=True)
    assert ("Demo data." in html) is marked
    state.of(app).close()


def test_figures_are_cached_per_snapshot(app, client):
    fill(app, client, release=True)
    figures = state.of(app).figures
    client.get("/results")
    client.get("/results")
    assert len(figures) == 1
    # A new snapshot is a new cache entry: figures never outlive the numbers they show.
    for i in range(5):
        submit_api(client, clinic(i))
    client.get("/results")
    assert len(figures) == 2


def test_public_page_is_rendered_once_per_snapshot(app, client):
    from survey_app.views import results

    fill(app, client, n=16, release=True)
    nonce = re.compile(r'nonce="([^"]+)"')
    first = client.get("/results").get_data(as_text=True)
    assert "snapshot of 16 responses" in first
    again = client.get("/results").get_data(as_text=True)
    assert nonce.search(again).group(1) != nonce.search(first).group(1)  # a nonce per response
    assert nonce.sub("", again) == nonce.sub("", first)
    assert len(state.of(app).public_pages) == 1
    other = app.test_client().get("/results").get_data(as_text=True)  # another visitor, the same page
    assert nonce.sub("", other) == nonce.sub("", first)
    assert results.NONCE_SLOT not in other
    for i in range(5):
        submit_api(client, clinic(i))
    later = client.get("/results").get_data(as_text=True)
    assert "snapshot of 21 responses" in later  # a new snapshot, a newly rendered page
