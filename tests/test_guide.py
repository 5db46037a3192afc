"""/guide: every practice the survey scores, grouped by question, with its action, reason and share."""

from __future__ import annotations

import re
from html import unescape

from survey_app import program

from .helpers import FULL_ANSWERS, NO_PRACTICE, fill, form_tokens, submit_api


def enter(client, key):
    tokens = form_tokens(client.get("/results/key").get_data(as_text=True))
    return client.post("/results", data={"csrf_token": tokens["csrf_token"], "results_key": key})


def practices(html: str) -> list[str]:
    return [unescape(a) for a in re.findall(r'<strong class="action">([^<]+)</strong>', html)]


def test_before_any_result_the_guide_lists_every_practice_without_shares(client, survey):
    response = client.get("/guide")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    scored = survey.scored_options()
    # Every scored option once, as its action, plus the one bonus ("2 or more").
    expected = [survey.question(q).option(o).action for q, o in scored] + ["Do 2 or more of these"]
    assert sorted(practices(html)) == sorted(expected) and len(scored) == 21
    assert html.count('<section class="guide-question"') == 6  # the scored questions
    assert "Why" not in practices(html)[0]
    assert "Ketamine can raise blood pressure" in html and "not clinical guidance" in html
    assert "% of clinics do this" not in html
    assert "results appear once 10 clinics have answered" in html
    # Questions in the survey's order, each titled with its number.
    numbers = re.findall(r'<span class="qnum">Question (\d)</span>', html)
    assert numbers == ["2", "3", "4", "5", "6", "7"]


def test_in_early_access_shares_show_to_key_holders_only(app, client):
    keys = fill(app, client)
    anonymous = app.test_client().get("/guide").get_data(as_text=True)
    assert "% of clinics do this" not in anonymous and "only to clinics holding a results key" in anonymous
    enter(client, keys[0])
    html = client.get("/guide").get_data(as_text=True)
    assert html.count("% of clinics do this") >= 15 and "(95% interval " in html


def test_after_the_release_everyone_sees_the_published_share_with_its_interval(app, client):
    fill(app, client, release=True)
    body = client.get("/api/v1/benchmarks").get_json()
    cell = next(
        c for q in body["questions"] if q["key"] == "discharge_checks" for c in q["options"] if c["key"] == "vitals"
    )
    html = app.test_client().get("/guide").get_data(as_text=True)
    vitals = html[html.index("Re-check blood pressure and heart rate before each patient leaves") :]
    vitals = vitals[: vitals.index("</li>")]
    low, high = cell["ci"]
    assert f'{cell["percent"]}% of clinics do this <span class="muted">(95% interval {low}–{high}%)' in vitals
    assert '<span class="status' not in html  # no key: nothing is marked


def test_with_a_key_each_practice_is_marked_and_ordered_by_points_to_gain(app, client):
    fill(app, client, release=True)
    key = submit_api(
        client,
        FULL_ANSWERS | {"first_followup": "within_72h", "digital_tools": ["none"], "discharge_checks": ["vitals"]},
    ).json["results_key"]
    enter(client, key)
    html = client.get("/guide").get_data(as_text=True)
    assert "Your clinic’s aftercare index is <strong>73</strong>" in html
    # The questions with most to gain first: follow-up (+10), digital tools (+10), discharge (+7), then the rest.
    numbers = re.findall(r'<span class="qnum">Question (\d)</span>', html)
    assert numbers[:3] == ["3", "6", "2"]
    followup = html[html.index('id="g-first_followup"') : html.index("</section>", html.index('id="g-first_followup"'))]
    statuses = re.findall(r'<span class="status (done|todo)">', followup)
    assert statuses == ["todo", "todo", "done"]  # 24 h and 48 h (+10 each) not yet; 72 h done
    assert "○ not yet · +10 for you" in followup and "✓ you do this" in followup
    discharge = html[html.index('id="g-discharge_checks"') :]
    assert discharge.index("Check in on emotional comfort") < discharge.index("Re-check blood pressure")


def test_the_guide_of_a_stored_survey_and_the_links_to_it(app, client):
    survey = program_current(app)
    assert client.get(f"/guide/{survey.id}/{survey.version}").status_code == 200
    assert client.get("/guide/nope/1").status_code == 404
    assert 'href="/guide"' in client.get("/").get_data(as_text=True)
    key = submit_api(client, NO_PRACTICE).json["results_key"]
    enter(client, key)
    assert 'href="/guide"' in client.get("/thanks").get_data(as_text=True)
    card = client.get("/results").get_data(as_text=True)
    assert 'href="/guide/pulse-aftercare/1">The guide' in card[card.index('id="your-clinic"') :]


def program_current(app):
    with app.test_request_context():
        return program.current_survey()


def test_the_comfort_survey_has_its_guide_too(db_url):
    from survey_app import state
    from survey_app.questions import load_survey

    from .helpers import ROOT, make_app

    path = ROOT / "surveys" / "patient-comfort.yaml"
    comfort = load_survey(path)
    app = make_app(db_url, PULSE_QUESTIONS=str(path))
    try:
        html = app.test_client().get("/guide").get_data(as_text=True)
        assert sorted(practices(html)) == sorted(
            comfort.question(q).option(o).action for q, o in comfort.scored_options()
        )
        assert "comfort index" in html and "Guide · The Pulse of Patient Comfort" in html
    finally:
        state.of(app).close()
