"""GET /api/v1/benchmarks and the /results page: early access, keys, numbers, thresholds."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from markupsafe import escape
from sqlalchemy import select

from survey_app import admin_actions, exports, keys, program, program_queries, snapshots, state, storage
from survey_app.models import Response
from survey_app.pipeline import publishing
from survey_app.pipeline.disclosure import Disclosure
from survey_app.pipeline.tallies import tally
from survey_app.questions import as_tuple

from .helpers import NO_PRACTICE, ROOT, clinic, fill, form_tokens, make_app, submit_api

BAD_KEYS = ["", "nonsense", "AAAA-BBBB", "ÄÖÜ" * 9, "x" * 200, "'; DROP TABLE responses; --"]


def benchmarks(client, key: str | None = None):
    return client.get("/api/v1/benchmarks", headers={"X-Results-Key": key} if key is not None else {})


def cells(body: dict, question: str) -> dict:
    q = next(q for q in body["questions"] if q["key"] == question)
    return {c["key"]: (c["count"], c["percent"], c["ci"]) for c in q["options"]}


def standing(body: dict, index: int) -> tuple[int, int, int]:
    """Below / in / above the index's 10-point band, in whole percents of the published histogram."""
    counts = [b["count"] for b in body["index"]["histogram"]]
    band = min(index // 10, 9)
    three = [sum(counts[:band]), counts[band], sum(counts[band + 1 :])]
    return tuple(publishing._whole(three))


def share(body: dict, question: str, options: list[str]) -> int:
    n = body["responses"]
    return publishing.percent(min(sum(cells(body, question)[o][0] for o in options), n), n)


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
    # The snapshot fill built, of all 16 (once CI read one whose histogram was all zeros: say which).
    assert (body["responses"], body["published"]) == (16, True), {k: body[k] for k in ("responses", "index")}
    assert body["you"]["answers"] == clinic(5)
    you = body["you"]
    assert you["index"] == 88
    # Where the clinic stands is read off the published histogram, the clinic itself included.
    assert (you["below"], you["same_band"], you["above"]) == standing(body, 88)
    assert sum(standing(body, 88)) == 100
    # It misses the emotional check-in (7 points) and a second kind of integration support (5).
    assert you["raise"] == [
        {
            "question": "discharge_checks",
            "options": ["emotional_checkin"],
            "points": 7,
            "percent": share(body, "discharge_checks", ["emotional_checkin"]),
        },
        {"question": "integration_support", "options": [], "points": 5, "percent": None},
    ]
    # 15 of 16 clinics are psychiatry practices: no split into groups of 10 is published.
    assert you["group"] is None


def test_key_accepts_lower_case_and_spaces(app, client):
    results_keys = fill(app, client)
    typed = " " + results_keys[5].lower().replace("-", " ") + " "
    assert benchmarks(client, typed).json["you"]["index"] == 88


def test_you_ranks_what_would_raise_the_index_with_published_shares(app, client):
    body = benchmarks(client, fill(app, client)[12]).json
    you = body["you"]
    assert you["index"] == 73
    # After hours: a crisis line earns 5, a clinician 24/7 or on call 20: one entry for both.
    assert you["raise"] == [
        {
            "question": "after_hours",
            "options": ["clinician_24_7", "on_call"],
            "points": 15,
            "percent": share(body, "after_hours", ["clinician_24_7", "on_call"]),
        },
        {
            "question": "discharge_checks",
            "options": ["emotional_checkin"],
            "points": 7,
            "percent": share(body, "discharge_checks", ["emotional_checkin"]),
        },
        {"question": "integration_support", "options": [], "points": 5, "percent": None},
    ]
    low, high = you["between_percentiles"]
    shown = {int(p): v for p, v in body["index"]["percentiles"].items() if v is not None}
    assert (low is None or shown[low] <= 73) and (high is None or shown[high] > 73)


def test_participant_not_yet_in_the_snapshot_reads_the_same_published_figures(app, client):
    fill(app, client)
    late = submit_api(client, clinic(5)).json["results_key"]  # pending: no rebuild before 5 new ones
    body = benchmarks(client, late).json
    assert body["responses"] == 16
    assert (body["you"]["below"], body["you"]["same_band"], body["you"]["above"]) == standing(body, 88)


def test_after_release_no_key_serves_the_snapshot_bytes(app, client):
    fill(app, client, release=True)
    response = benchmarks(client)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "you" not in response.json and response.json["released"] is True
    with app.app_context():
        assert response.data == snapshots.served(app.config["SURVEY"]).body


def test_api_numbers_are_the_pipelines_perturbed_counts(app, client):
    fill(app, client, release=True)
    body = benchmarks(client).json
    assert (body["responses"], body["published"]) == (16, True)
    assert body["disclosure"] == Disclosure().describe()
    assert (body["disclosure"]["max_change"], body["disclosure"]["small_counts"]) == (4, "0 or 5+")
    # Exactly what the pipeline publishes for these 16 responses under the app's rules.
    with app.app_context():
        db = storage.reader()
        survey = app.config["SURVEY"]
        ids, answers = zip(*[(r.id, r.answers) for r in db.scalars(select(Response))])
        counted = tally(survey, list(answers), list(ids))
        expected = publishing.publish(survey, counted, snapshots.disclosure_rules(), True)
    assert body == json.loads(json.dumps(expected.to_json()))
    true = {"within_24h": 9, "within_48h": 7, "within_72h": 0, "within_week": 0, "next_session": 0, "no_followup": 0}
    for option, (count, pct, ci) in cells(body, "first_followup").items():
        # A count moves by at most 4 (5-9 may also show as 0); 0 stays 0; every share follows from it.
        t = true[option]
        assert count == 0 if t == 0 else (abs(count - t) <= 4 or (t < 10 and count == 0)), (option, t, count)
        assert pct == (200 * count + 16) // 32 and ci == publishing.ci_percent(count, 16)
    assert cells(body, "discharge_checks")["vitals"][0] <= 16  # 16 of 16, capped at N
    # One clinic of another type: no split into groups of 10 exists, so no breakdown at all.
    assert body["segment"]["groups"] == []
    assert all(q["segments"] == [] for q in body["questions"])
    assert all(q["caution"] for q in body["questions"])
    index = body["index"]
    # With N = 16 and k = 5 only the median can be shown (8 clinics lie beyond it, 4 beyond the quartiles).
    assert [p for p, v in index["percentiles"].items() if v is not None] == ["50"]
    assert 70 <= index["percentiles"]["50"] <= 100
    assert {b["from"] for b in index["histogram"] if b["count"]} <= {70, 80, 90}


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
    # A 403 either way; while the survey is open the page invites to answer as well.
    assert response.status_code == 403 and 'href="/survey"' in response.get_data(as_text=True).split("<main", 1)[1]
    html = response.get_data(as_text=True)
    assert 'name="results_key"' in html and 'method="post"' in html and "chart-" not in html
    with app.app_context():
        program.close_survey()
    response = client.get("/results")
    assert response.status_code == 403 and 'name="results_key"' in response.get_data(as_text=True)


@pytest.mark.parametrize("release", [False, True], ids=["early-access", "released"])
def test_wrong_key_gets_401_page_without_hint(app, client, release):
    fill(app, client, n=10, release=release)
    for key in BAD_KEYS[1:] + [keys.new_results_key()]:
        response = enter(client, key)
        assert response.status_code == 401, key
        html = response.get_data(as_text=True)
        assert "That results key is not valid." in html
        # The typed key stays in the field, escaped, so a typo is not a whole key to type again.
        field = html.split('id="results_key"')[1].split(">")[0]
        assert f'value="{escape(key[:100])}"' in field, key
        with client.session_transaction() as session:
            assert "results_key" not in session


def test_valid_key_is_kept_in_session_and_shows_scorecard(app, client):
    key = fill(app, client)[5]
    response = enter(client, key)
    assert response.status_code == 303 and response.headers["Location"] == "/results/pulse-aftercare/1"
    assert key not in response.headers["Location"]
    html = client.get("/results").get_data(as_text=True)
    scorecard = html[html.index('id="your-clinic"') :]
    assert re.search(r'score-number">88<', scorecard)
    below, same, above = standing(benchmarks(client, key).json, 88)
    assert f"<strong>{below}%</strong> of clinics are in a lower 10-point band than yours (80–89)" in scorecard
    assert f"<strong>{same}%</strong> in the same band" in scorecard
    assert "not clinical guidance" in scorecard
    assert "not all clinics" in html
    # The participant's answer is marked in the table by a symbol and words, not colour alone.
    assert "◆ your answer" in html
    # Forgetting the key ends it for this browser: back to the gate.
    tokens = form_tokens(html)
    client.post("/results/forget", data={"csrf_token": tokens["csrf_token"]})
    gate = client.get("/results").get_data(as_text=True)
    assert "Results are in early access" in gate and 'id="your-clinic"' not in gate


def test_scorecard_ranks_what_would_raise_the_index(app, client):
    enter(client, fill(app, client)[12])
    html = client.get("/results").get_data(as_text=True)
    scorecard = html[html.index('id="your-clinic"') : html.index("</section>", html.index('id="your-clinic"'))]
    assert "What would raise your index" in scorecard
    items = re.findall(r'<li><span class="points">\+(\d+)</span>', scorecard)
    assert items == ["15", "7", "5"]
    # A scale's best steps (24/7 line, on-call clinician) are said as the least of them, as an action.
    assert "Have an on-call clinician reachable after hours" in scorecard
    # The question's text is not repeated per row; the reason is behind a disclosure.
    assert "how can they reach help" not in scorecard
    assert '<details class="why"><summary>Why it matters</summary><p>Distress after a session' in scorecard
    assert "% of clinics do" in scorecard
    assert "percentile" in scorecard


def test_released_page_without_key_has_charts_tables_and_notes(app, client):
    fill(app, client, release=True)
    response = client.get("/results")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="your-clinic"' not in html
    assert 'id="chart-first_followup-data"' in html and "vendor/plotly-basic.min.js" in html
    assert "figures describe the clinics that answered, not all clinics" in html
    assert "Small sample" in html  # N = 16 < 30
    # Counts are randomised, and the page says so in one plain sentence with a link to /privacy.
    assert "Counts are slightly randomised" in html and 'href="/privacy"' in html
    assert "suppressed" not in html
    # The one clinic of another practice type: no breakdown is offered.
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
    assert response.status_code == 303 and response.headers["Location"].endswith("/results/pulse-aftercare/1")


def test_below_threshold_page_says_how_many_more(app, client):
    enter(client, fill(app, client, n=3)[0])
    html = client.get("/results").get_data(as_text=True)
    assert "Results appear once 10 clinics have answered" in html and "Your answers are stored" in html
    assert "3 clinics" not in html and "7 more" not in html  # no count that moves with every answer
    assert 'score-number">95<' in html and "chart-" not in html


def test_empty_survey_page(app, client):
    with app.app_context():
        admin_actions.release(program.current_survey())
    response = client.get("/results")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Results appear once 10 clinics have answered" in html
    assert "more responses are needed" not in html
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
    # Only our own scripts run (print.js, charts.js, which fetches plotly.js from our server); every figure
    # stays inside its JSON data block.
    srcs = [s.get("src") or "" for s in code] + [s["data-plotly"] for s in code if s.get("data-plotly")]
    assert [src.rsplit("/", 1)[-1] for src in srcs] == ["print.js", "charts.js", "plotly-basic.min.js"]
    assert all(src.startswith("/") and not src.startswith("//") for src in srcs)  # our own server only
    assert len(data) == html.count('type="application/json"')
    assert "alert(1)</script>" not in html
    state.of(app).close()


@pytest.mark.parametrize("marked", [True, False])
def test_demo_banner_follows_the_database_flag(db_url, marked):
    app = make_app(db_url)
    if marked:
        with app.app_context(), storage.writer() as db:
            program_queries.mark_demo(db)
    html = app.test_client().get("/").get_data(as_text=True)
    assert ("Demo data." in html) is marked
    state.of(app).close()


def test_figures_are_cached_per_snapshot(app, client):
    fill(app, client, release=True)
    figures = state.of(app).cache.figures
    client.get("/results")
    client.get("/results")
    assert len(figures) == 1
    # A new snapshot is a new cache entry: figures never outlive the numbers they show.
    for i in range(16):  # the next snapshot doubles N
        submit_api(client, clinic(i))
    client.get("/results")
    assert len(figures) == 2


def test_public_page_is_rendered_once_per_snapshot(app, client):
    from survey_app.views import results

    fill(app, client, n=16, release=True)
    nonce = re.compile(r'nonce="([^"]+)"')
    first = client.get("/results").get_data(as_text=True)
    assert "Figures from 16 responses; they update at 32, and when the survey closes." in first
    again = client.get("/results").get_data(as_text=True)
    assert nonce.search(again).group(1) != nonce.search(first).group(1)  # a nonce per response
    assert nonce.sub("", again) == nonce.sub("", first)
    assert len(state.of(app).cache.public_pages) == 1
    other = app.test_client().get("/results").get_data(as_text=True)  # another visitor, the same page
    assert nonce.sub("", other) == nonce.sub("", first)
    assert results.NONCE_SLOT not in other
    for i in range(16):
        submit_api(client, clinic(i))
    later = client.get("/results").get_data(as_text=True)
    assert "Figures from 32 responses; they update at 64" in later  # a new snapshot, a newly rendered page


@pytest.mark.parametrize("view", ["public", "key", "waiting-key", "report"])
def test_not_clinical_guidance_is_said_once_per_view(app, client, view, tmp_path):
    from survey_app import report

    results_keys = fill(app, client, n=3 if view == "waiting-key" else 16, release=view == "public")
    if view in ("key", "waiting-key"):
        enter(client, results_keys[0])
    if view == "report":
        with app.app_context():
            paths = report.write_report(
                app.config["SURVEY"], snapshots.served(app.config["SURVEY"]).published, tmp_path
            )
        html = paths[0].read_text()
    else:
        html = client.get("/results").get_data(as_text=True)
    assert html.count("not clinical guidance") == 1
    if view != "public" and view != "report":
        scorecard = html[html.index('id="your-clinic"') :]
        assert "not clinical guidance" in scorecard[: scorecard.index("</section>")]


def fill_groups(app, client) -> dict[str, str]:
    """47 clinics in two shown practice types and three small ones merged into `other`; a key of each type.

    Published sizes move by at most 4: 16 is always shown (12 or more), 5 never (9 at most, a 6
    could publish as 10), and the merged group of 15 always reaches 10 (11 or more)."""
    sizes = {"dedicated_clinic": 16, "psychiatry": 16, "anesthesia_pain": 5, "telehealth": 5, "hospital_academic": 5}
    held = {}
    for practice, count in sizes.items():
        for i in range(count):
            response = submit_api(client, clinic(i % 15) | {"practice_type": practice})
            if i == min(10, count - 1):  # clinic(10) and clinic(6) miss the emotional check-in
                held[practice] = response.json["results_key"]
    with app.app_context():
        snapshots.rebuild(storage.engine(), app.config["SURVEY"], snapshots.disclosure_rules(), full=True)
    return held


def scorecard_of(client) -> str:
    html = client.get("/results").get_data(as_text=True)
    start = html.index('id="your-clinic"')
    return html[start : html.index("</section>", start)]


def test_scorecard_puts_clinics_like_yours_beside_all_clinics(app, client):
    held = fill_groups(app, client)
    body = benchmarks(client, held["psychiatry"]).json
    groups = {g["key"]: g for g in body["segment"]["groups"]}
    assert "psychiatry" in groups and "other" in groups and "telehealth" in groups["other"]["members"]
    enter(client, held["psychiatry"])
    card = scorecard_of(client)
    you = body["you"]
    assert (
        f"Your practice type: <strong>Psychiatry or mental-health practice offering ketamine</strong>, "
        f"{you['group']['n']} clinics" in card
    )
    # Beside each "raise" entry the group's published share; beside each answer both shares.
    group = {q["key"]: {c["key"]: c for c in q["options"]} for q in you["group"]["questions"]}
    overall = {q["key"]: {c["key"]: c for c in q["options"]} for q in body["questions"]}
    emotional = next(r for r in you["raise"] if r["options"] == ["emotional_checkin"])
    assert (
        f"{emotional['percent']}% of clinics do this · "
        f"{group['discharge_checks']['emotional_checkin']['percent']}% of clinics like yours"
    ) in card
    rows = re.findall(
        r'<a class="qref" href="#q-(\w+)">Q\d</a> ([^<]+)</th>\s*<td class="num">(\d+)%</td>\s*'
        r'<td class="num you-col">(\d+)%</td>',
        card,
    )
    survey = app.config["SURVEY"]
    expected = [
        (
            q.key,
            survey.question(q.key).option(o).label,
            str(overall[q.key][o]["percent"]),
            str(group[q.key][o]["percent"]),
        )
        for q in survey.questions
        if q.key != "practice_type"
        for o in as_tuple(you["answers"][q.key])
    ]
    assert rows == expected and len(rows) >= 7
    # The group's column is the highlighted one in every breakdown table.
    html = client.get("/results").get_data(as_text=True)
    assert html.count('class="num you-col">Psychiatry or mental-health practice offering ketamine') == 7


def test_scorecard_says_when_the_group_is_merged_or_not_shown(app, client):
    held = fill_groups(app, client)
    enter(client, held["telehealth"])
    card = scorecard_of(client)
    assert "<strong>Telehealth or at-home program</strong>, has too few clinics to be shown on its own" in card
    assert "counted in <strong>Other groups combined</strong>" in card and "Anesthesiology" in card
    assert "Like yours" in card
    html = client.get("/results").get_data(as_text=True)
    assert html.count('class="num you-col">Other groups combined') == 7


def test_scorecard_without_a_breakdown_compares_with_all_clinics_only(app, client):
    enter(client, fill(app, client)[0])  # 15 of 16 clinics are of one type: no breakdown
    card = scorecard_of(client)
    assert "No breakdown by practice type is published" in card and "compared with all clinics only" in card
    assert "Like yours" not in card and "clinics like yours" not in card.split("Clinics like yours</h3>")[0]
    assert '<td class="num">' in card  # the shares of all clinics are still there


def test_scorecard_for_a_clinic_earning_every_point_says_so_and_lists_nothing(app, client):
    fill(app, client)
    enter(client, submit_api(client).json["results_key"])  # FULL_ANSWERS: index 100
    card = scorecard_of(client)
    assert "earns every point the index gives" in card and '<ol class="raise"' not in card


@pytest.mark.parametrize("release", [False, True], ids=["early-access", "released"])
def test_aggregate_csv_sits_next_to_the_json_link(app, client, release):
    results_keys = fill(app, client, release=release)
    reader = app.test_client()
    response = reader.get("/results/aggregates.csv")
    if not release:
        assert response.status_code == 403  # early access: the figures are for key holders only
        enter(reader, results_keys[0])
        response = reader.get("/results/aggregates.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    with app.app_context():
        expected = exports.aggregates_csv(app.config["SURVEY"], snapshots.served(app.config["SURVEY"]).published)
    assert response.get_data(as_text=True) == expected
    if release:
        assert "Set-Cookie" not in response.headers
    html = reader.get("/results").get_data(as_text=True)
    downloads = html[html.index('class="downloads"') :]
    downloads = downloads[: downloads.index("</p>")]
    assert (
        'href="/results/pulse-aftercare/1/aggregates.csv"' in downloads
        and 'href="/api/v1/surveys/pulse-aftercare/1/benchmarks"' in downloads
    )


def test_results_page_offers_print_from_a_static_script(app, client):
    fill(app, client, release=True)
    html = client.get("/results").get_data(as_text=True)
    assert '<button type="button" class="secondary" data-print hidden>Print or save as PDF</button>' in html
    assert re.search(r'<script src="/assets/[0-9a-f]{12}/print.js"></script>', html)


def test_alternatives_one_rule_scores_once_are_one_row(app, client):
    fill(app, client)
    key = submit_api(client, NO_PRACTICE).json["results_key"]
    assert len(benchmarks(client, key).json["you"]["raise"]) == 16  # the API lists every option
    enter(client, key)
    card = scorecard_of(client)
    # Any digital tool earns 10 once, not 10 per tool: one row lists them as alternatives.
    rows = re.findall(r'<li><span class="points">\+(\d+)</span>', card)
    assert rows == ["20", "20", "15", "15", "10", "8", "7", "5"]
    assert card.count("Any one of these") == 2
    digital = card[card.index('href="#q-digital_tools"') :]
    digital = digital[: digital.index("</ul>")]
    assert all(
        action in digital
        for action in (
            "Suggest a mood-tracking app between sessions",
            "Give patients a portal or secure messaging to reach the team",
        )
    )
    # A bonus no option carries is said as what to do, with its question's number.
    assert "Do 2 or more of the practices in question 5" in card


def test_the_scorecard_leads_with_a_verdict_in_words_and_the_top_three_actions(app, client):
    fill(app, client)
    key = submit_api(client, NO_PRACTICE).json["results_key"]
    you = benchmarks(client, key).json["you"]
    enter(client, key)
    html = client.get("/results").get_data(as_text=True)
    # The first thing under the title is the clinic's own card; the caveats follow it in one line.
    assert re.search(r'<h1>The Pulse of Clinical Aftercare</h1>\s*<section class="scorecard" id="your-clinic"', html)
    assert html.index('class="caveats"') > html.index('id="your-clinic"')
    assert html.index('id="about-figures"') > html.index('id="q-after_hours"')
    assert html.index("data-print") > html.index('id="about-figures"')
    card = scorecard_of(client)
    assert you["above"] >= 90
    assert '<p class="verdict">Nearly all clinics score higher than yours.</p>' in card or (
        '<p class="verdict">About 9 in 10 clinics score higher than yours.</p>' in card
    )
    top = card[card.index('<ol class="top-actions"') : card.index("</ol>", card.index('<ol class="top-actions"'))]
    assert top.count('<li class="top-action">') == 3
    assert re.findall(r'<span class="points">\+(\d+)</span>', top) == ["20", "20", "15"]
    assert "Follow up with each patient within 48 hours of a session" in top
    first_followup = next(r for r in you["raise"] if r["question"] == "first_followup")
    assert f"{first_followup['percent']}% of clinics do this" in top
    assert top.count('<details class="why">') == 3 and "When does the first" not in top


@pytest.mark.parametrize(
    "above, below, words",
    [
        (74, 10, "About 3 in 4 clinics score higher than yours."),
        (50, 30, "About 1 in 2 clinics score higher than yours."),
        (96, 0, "Nearly all clinics score higher than yours."),
        (0, 80, "No clinic scores in a higher band than yours: your clinic is among the highest."),
        (20, 66, "About 2 in 3 clinics score lower than yours."),
        (30, 40, "Your clinic is near the middle: about 1 in 3 clinics score higher than yours, about 2 in 5 lower."),
        (
            3,
            40,
            "Your clinic is near the middle: fewer than 1 in 20 clinics score higher than yours, about 2 in 5 lower.",
        ),
    ],
)
def test_verdict_in_words(above, below, words):
    from survey_app.pipeline.figures import You
    from survey_app.presentation import verdict_text

    def view(below, same_band, above):
        return You({}, 50, below, same_band, above, (None, None), (), None)

    assert verdict_text(view(below, 100 - above - below, above)) == words
    assert verdict_text(view(None, None, None)) is None


def test_the_public_page_leads_with_the_most_and_least_common_practices_in_words(app, client):
    fill(app, client, release=True)
    body = client.get("/api/v1/benchmarks").get_json()
    html = client.get("/results").get_data(as_text=True)
    findings = html[html.index('id="findings-title"') : html.index("</section>", html.index('id="findings-title"'))]
    assert html.index('id="findings-title"') < html.index('class="chart-block"')
    most = findings[findings.index("Most common") : findings.index("Least common")]
    least = findings[findings.index("Least common") :]
    said = re.findall(r"<li><strong>(\d+)%</strong> of clinics: ([^<]+) <a class=\"qref\"", most)
    assert len(said) == 3 and len(re.findall(r"<li><strong>", least)) == 3
    shares = {q["key"]: {c["key"]: c["percent"] for c in q["options"]} for q in body["questions"]}
    # Every practice the index scores, with its published share: a multi-select option's own, a
    # single-choice question's best answers together (their perturbed counts added, capped at n).
    cells = {q["key"]: q for q in body["questions"]}

    def together(question, options):
        q = cells[question]
        count = min(sum(c["count"] for c in q["options"] if c["key"] in options), q["n"])
        return publishing.percent(count, q["n"])

    candidates = [shares["discharge_checks"][o] for o in ("vitals", "emotional_checkin")]
    candidates += [shares[q][o] for q in ("integration_support", "digital_tools") for o in shares[q] if o != "none"]
    candidates += [
        together("first_followup", ["within_24h", "within_48h"]),
        together("mood_tracking", ["every_touchpoint", "regular_intervals"]),
        together("after_hours", ["clinician_24_7", "on_call"]),
    ]
    assert len(candidates) == 15
    assert sorted((int(p) for p, _ in said), reverse=True) == sorted(candidates, reverse=True)[:3]
    lowest = [int(p) for p in re.findall(r"<li><strong>(\d+)%</strong>", least)]
    assert lowest == sorted(candidates)[:3]
    assert [int(p) for p, _ in said] == sorted((int(p) for p, _ in said), reverse=True)


def _stable(html: str) -> str:
    """A page without what differs per response: the script nonce and the CSRF token."""
    html = re.sub(r'nonce="[^"]+"', 'nonce=""', html)
    return re.sub(r'value="[\w.-]{40,}"', 'value=""', html)  # a signed CSRF token


def test_a_key_holders_page_is_the_same_put_together_from_kept_sections(app, client, monkeypatch):
    """Question sections are kept per snapshot and answer (views/results.py): a participant's page
    assembled from sections rendered for others equals the page rendered whole for them."""
    from survey_app.views import results as results_view

    results_keys = fill(app, client, n=16, release=True)[:6]

    def pages() -> dict[str, str]:
        seen = {}
        for key in results_keys:
            reader = app.test_client()
            enter(reader, key)
            seen[key] = _stable(reader.get("/results").get_data(as_text=True))
            assert "Your clinic" in seen[key]
        return seen

    kept = results_view._question_blocks
    monkeypatch.setattr(results_view, "_question_blocks", lambda *args: {})  # each page rendered whole
    whole = pages()
    monkeypatch.setattr(results_view, "_question_blocks", kept)
    state.of(app).cache.personal_pages.clear()  # the whole pages were kept: put them together again
    assembled = pages()  # each clinic's sections, and those it shares with the clinics before it
    blocks = state.of(app).cache.blocks
    assert 8 <= len(blocks) < len(results_keys) * 8  # shared answers share a section
    assert assembled == whole
    assert len(set(whole.values())) >= 3  # the pages do differ between clinics


def test_a_key_holders_page_is_kept_with_a_nonce_and_csrf_token_per_response(app, client, monkeypatch):
    """A key holder's whole page is kept per snapshot and answers (views/results.py): coming back
    is not rendered again, yet each response has its own nonce, each browser a CSRF token that its
    own session accepts, and the kept page is the page rendered whole."""
    from survey_app.views import results as results_view

    results_keys = fill(app, client, n=16, release=True)
    kept = state.of(app).cache.personal_pages
    nonce = re.compile(r'nonce="([^"]+)"')
    browsers = [app.test_client(), app.test_client()]
    for browser in browsers:
        enter(browser, results_keys[0])  # one clinic's key, in two browsers
    first, again = (browsers[0].get("/results").get_data(as_text=True) for _ in range(2))
    other = browsers[1].get("/results").get_data(as_text=True)
    assert len(kept) == 1  # one page for the one set of answers
    assert "Your clinic" in first and results_view.NONCE_SLOT not in first and results_view.CSRF_SLOT not in other
    assert nonce.search(again).group(1) != nonce.search(first).group(1)
    assert _stable(first) == _stable(again) == _stable(other)
    for browser, html in zip(browsers, (again, other)):
        forgot = browser.post("/results/forget", data=form_tokens(html) | {"survey": "pulse-aftercare@1"})
        assert forgot.status_code == 303  # the token put in is the one this browser's session holds
    assert form_tokens(again)["csrf_token"] != form_tokens(other)["csrf_token"]
    # Another clinic's answers are another page.
    another = app.test_client()
    enter(another, results_keys[5])
    assert _stable(another.get("/results").get_data(as_text=True)) != _stable(first) and len(kept) == 2
    # Rendered whole, the page is the same.
    monkeypatch.setattr(
        results_view,
        "_render_with_slots",
        lambda template, **c: [results_view.render_template(template, **c).encode()],
    )
    kept.clear()
    fresh = app.test_client()
    enter(fresh, results_keys[0])
    assert _stable(fresh.get("/results").get_data(as_text=True)) == _stable(first)


def test_a_key_holders_csrf_token_is_reused_for_a_minute_then_made_anew(app, client, monkeypatch):
    """The token put in a kept page is made once per session secret and minute (limits.csrf_token):
    the same for that session within the minute and accepted, another session's is its own, and
    once the minute is over a new one is made, which the session accepts too."""
    from survey_app import limits

    results_keys = fill(app, client, n=16, release=True)
    browser, other = app.test_client(), app.test_client()
    enter(browser, results_keys[0])
    enter(other, results_keys[0])
    made, original = [], limits.generate_csrf
    monkeypatch.setattr(limits, "generate_csrf", lambda: made.append(1) or original())
    token = lambda c: form_tokens(c.get("/results").get_data(as_text=True))["csrf_token"]  # noqa: E731
    first = token(browser)
    assert token(browser) == first != token(other)
    assert len(made) == 2  # one per session
    clock = [limits._clock() + limits.CSRF_TOKEN_REUSE_SECONDS]
    monkeypatch.setattr(limits, "_clock", lambda: clock[0])
    later = token(browser)
    assert len(made) == 3  # the minute is over: made anew
    assert token(browser) == later and len(made) == 3
    forgot = browser.post("/results/forget", data={"csrf_token": later, "survey": "pulse-aftercare@1"})
    assert forgot.status_code == 303
