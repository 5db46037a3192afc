"""Waves: the same survey under a new version, compared question by question on the results page.

Only each wave's own published (perturbed) figures are compared; a participant holding a key of
each wave may see their own change, and Pulse stores nothing that links the two keys.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import select

from survey_app import admin_actions, keys, program, snapshots, state, storage
from survey_app.models import Base
from survey_app.pipeline import charts, waves
from survey_app.pipeline.disclosure import Disclosure
from survey_app.pipeline.figures import Published
from survey_app.pipeline.publishing import publish
from survey_app.pipeline.tallies import tally
from survey_app.questions import Option, load_survey, parse_survey

from .helpers import ROOT, SECRET, clinic, fill, form_tokens, submit_api

THEN = load_survey(ROOT / "questions.yaml")
# Wave 2: questions.yaml again under version 2, with one answer added to one question.
_DIGITAL_NONE = "      - {key: none, label: None, exclusive: true}\n\n  - key: after_hours"
assert _DIGITAL_NONE in (ROOT / "questions.yaml").read_text()
WAVE_TWO_TEXT = (
    (ROOT / "questions.yaml")
    .read_text()
    .replace("version: 1", "version: 2", 1)
    .replace(_DIGITAL_NONE, "      - {key: wearables, label: Wearable sensors}\n" + _DIGITAL_NONE, 1)
)
NOW = parse_survey(WAVE_TWO_TEXT, "wave two")
RULES = Disclosure(key=b"waves-test-noise-key")
N = 24


def second_wave(i: int) -> dict:
    """Wave 2's clinic i: a slower first follow-up than wave 1's, and wearables for some."""
    return clinic(i) | {
        "first_followup": "within_72h" if i < 12 else "within_24h",
        "digital_tools": ["mood_app", "wearables"] if i < 8 else ["mood_app"],
    }


def published(survey, answers: list[dict]) -> Published:
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(len(answers))]
    return publish(survey, tally(survey, [json.dumps(a) for a in answers], ids), RULES, True)


# ------------------------------------------------------------------------------- the comparison


def test_unchanged_questions_are_compared_with_each_waves_published_figures():
    then_p = published(THEN, [clinic(i) for i in range(N)])
    now_p = published(NOW, [second_wave(i) for i in range(N)])
    result = waves.compare(THEN, then_p, NOW, now_p)
    compared = [q["key"] for q in result["questions"]]
    assert compared == [q.key for q in THEN.questions if q.key != "digital_tools"]
    # A wave whose options changed is not comparable: the question is listed with its reason.
    assert [(r["key"], r["reason"]) for r in result["not_comparable"]] == [
        ("digital_tools", "its answers changed in wave 2 (added: “Wearable sensors”)")
    ]
    for q in result["questions"]:
        then_cells = {c.key: c for c in then_p.question(q["key"]).options}
        now_cells = {c.key: c for c in now_p.question(q["key"]).options}
        for row in q["options"]:
            # Exactly the published cells, each from its own wave; the change is of the published shares.
            assert row["then"] == then_cells[row["key"]] and row["now"] == now_cells[row["key"]]
            assert row["change"] == row["now"].percent - row["then"].percent
    assert (result["then"], result["now"]) == ({"version": 1, "responses": N}, {"version": 2, "responses": N})


def _with_question(survey, key, **changes):
    questions = tuple(dataclasses.replace(q, **changes) if q.key == key else q for q in survey.questions)
    return dataclasses.replace(survey, version=survey.version + 1, questions=questions)


FOLLOWUP = THEN.question("first_followup")
CHANGED = [
    ("reworded", _with_question(THEN, "first_followup", text="When is the first follow-up?"), None),
    (
        "relabelled",
        _with_question(
            THEN,
            "first_followup",
            options=tuple(dataclasses.replace(o, label=o.label.upper()) for o in FOLLOWUP.options),
        ),
        None,
    ),
    ("reordered", _with_question(THEN, "first_followup", options=FOLLOWUP.options[::-1]), None),
    (
        "option renamed",
        _with_question(
            THEN,
            "first_followup",
            options=tuple(
                dataclasses.replace(o, key="next_visit") if o.key == "next_session" else o for o in FOLLOWUP.options
            ),
        ),
        "its answers changed in wave 2 (renamed: “At the next scheduled session”)",
    ),
    (
        "option removed",
        _with_question(THEN, "first_followup", options=FOLLOWUP.options[:-1]),
        "its answers changed in wave 2 (removed: “No structured follow-up”)",
    ),
    (
        "option added",
        _with_question(THEN, "first_followup", options=FOLLOWUP.options + (Option("later", "Later"),)),
        "its answers changed in wave 2 (added: “Later”)",
    ),
    (
        "type changed",
        _with_question(THEN, "first_followup", type="multi"),
        "single choice in wave 1, multi-select in wave 2",
    ),
    (
        "dropped",
        dataclasses.replace(THEN, version=2, questions=tuple(q for q in THEN.questions if q.key != "first_followup")),
        "not asked in wave 2",
    ),
    (
        "new",
        dataclasses.replace(
            THEN, version=2, questions=THEN.questions + (dataclasses.replace(FOLLOWUP, key="second_followup"),)
        ),
        None,
    ),
]


@pytest.mark.parametrize("name, now, reason", CHANGED, ids=[c[0] for c in CHANGED])
def test_a_question_is_comparable_only_with_the_same_key_type_and_option_keys(name, now, reason):
    found = waves.differences(THEN, now)
    if name == "new":
        assert found == {"second_followup": "new in wave 2"}
        return
    assert found.get("first_followup") == reason
    assert set(found) <= {"first_followup"}


def test_a_question_too_few_answered_in_a_wave_is_not_compared():
    then_p = published(THEN, [clinic(i) for i in range(N)])
    now_p = published(NOW, [second_wave(i) for i in range(N)])
    now_p = dataclasses.replace(
        now_p,
        questions=tuple(
            dataclasses.replace(q, enough=False, options=()) if q.key == "after_hours" else q for q in now_p.questions
        ),
    )
    result = waves.compare(THEN, then_p, NOW, now_p)
    assert "after_hours" not in [q["key"] for q in result["questions"]]
    assert {
        "key": "after_hours",
        "text": NOW.question("after_hours").text,
        "reason": "too few clinics answered it in wave 2 for figures to be published",
    } in result["not_comparable"]


def test_own_change_covers_comparable_questions_and_both_indexes():
    change = waves.own_change(THEN, clinic(3), NOW, second_wave(3))
    assert change["index"] == {
        "then": THEN.index_of(clinic(3)),
        "now": NOW.index_of(second_wave(3)),
        "same_scoring": True,
    }
    rows = {r["key"]: r for r in change["questions"]}
    assert "digital_tools" not in rows and len(rows) == len(THEN.questions) - 1
    assert (rows["first_followup"]["then"], rows["first_followup"]["now"]) == (["Within 24 hours"], ["Within 72 hours"])
    assert rows["first_followup"]["same"] is False and rows["mood_tracking"]["same"] is True


def test_change_chart_marks_then_and_now_by_shape_with_the_published_shares():
    then_p = published(THEN, [clinic(i) for i in range(N)])
    now_p = published(NOW, [second_wave(i) for i in range(N)])
    q = next(q for q in waves.compare(THEN, then_p, NOW, now_p)["questions"] if q["key"] == "first_followup")
    figure = charts.change_figure(NOW, q, 1, 2)
    dots = {t["name"]: t for t in figure["data"] if t.get("mode") == "markers"}
    then, now = dots["Wave 1 (then)"], dots["Wave 2 (now)"]
    assert then["marker"]["symbol"] != now["marker"]["symbol"]
    assert then["x"] == [o["then"].percent for o in q["options"]]
    assert now["x"] == [o["now"].percent for o in q["options"]]


# ------------------------------------------------------------------------------- the page


def open_second_wave(app, tmp_path: Path):
    path = tmp_path / "wave-two.yaml"
    path.write_text(WAVE_TWO_TEXT)
    with app.app_context():
        program.add(path)
        program.open_survey("pulse-aftercare@2")


def fill_second_wave(app, client, n: int = N, release: bool = True) -> list[str]:
    results_keys = []
    for i in range(n):
        response = submit_api(client, second_wave(i))
        assert response.status_code == 201, response.json
        results_keys.append(response.json["results_key"])
    with app.app_context():
        snapshots.rebuild(storage.engine(), NOW, snapshots.disclosure_rules(), full=True)
        if release:
            admin_actions.release(NOW)
    return results_keys


def two_waves(app, client, tmp_path, release_first: bool = True) -> tuple[list[str], list[str]]:
    first = fill(app, client, n=N, release=release_first)
    open_second_wave(app, tmp_path)
    return first, fill_second_wave(app, client)


def section(html: str) -> str:
    start = html.index('id="waves"')
    return html[start : html.index("</section>", start)]


def benchmarks(client, version: int, key: str | None = None) -> dict:
    headers = {"X-Results-Key": key} if key else {}
    return client.get(f"/api/v1/surveys/pulse-aftercare/{version}/benchmarks", headers=headers).json


def table_rows(html: str, question: str) -> dict[str, list[str]]:
    """The wave table of one question: {answer label: [cell texts]}."""
    start = html.index(f'id="wave-{question}"')
    table = html[start : html.index("</table>", start)]
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        head = re.search(r'<th scope="row"[^>]*>(.*?)</th>', row, re.S)
        if head:
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
            rows[unescape(head.group(1).strip())] = [unescape(c.strip()) for c in cells]
    return rows


@pytest.mark.parametrize("path", ["/results/pulse-aftercare/2", "/results"])
def test_page_shows_both_waves_published_shares_and_what_is_not_comparable(app, client, tmp_path, path):
    two_waves(app, client, tmp_path)
    html = client.get(path).get_data(as_text=True)
    waves_html = section(html)
    assert "Then and now: wave 1 → wave 2" in waves_html
    then_body, now_body = benchmarks(client, 1), benchmarks(client, 2)
    then_q = {c["key"]: c for q in then_body["questions"] if q["key"] == "first_followup" for c in q["options"]}
    now_q = {c["key"]: c for q in now_body["questions"] if q["key"] == "first_followup" for c in q["options"]}
    rows = table_rows(waves_html, "first_followup")
    for option in NOW.question("first_followup").options:
        a, b = then_q[option.key], now_q[option.key]
        change = f"{b['percent'] - a['percent']:+d}".replace("-", "−").replace("+0", "0")  # a minus sign, not a hyphen
        assert rows[option.label] == [
            f"{a['percent']}%",
            f"{a['ci'][0]}–{a['ci'][1]}%",
            f"{b['percent']}%",
            f"{b['ci'][0]}–{b['ci'][1]}%",
            change,
        ]
    # The chart of the change, drawn by charts.js like every other chart on the page.
    assert 'id="chart-wave-first_followup"' in waves_html and 'id="chart-wave-first_followup-data"' in html
    # The question whose answers changed is listed, with its reason, and has no table.
    assert "Not comparable" in waves_html and "added: “Wearable sensors”" in waves_html
    assert 'id="wave-digital_tools"' not in waves_html


def test_only_published_figures_are_compared(app, client, tmp_path):
    two_waves(app, client, tmp_path)
    with app.app_context():
        then_p = snapshots.served(THEN).published
        now_p = snapshots.served(NOW).published
        expected = waves.compare(THEN, then_p, NOW, now_p)
    # The snapshots the API serves are the published dicts compared, and the page shows exactly them.
    assert (benchmarks(client, 1), benchmarks(client, 2)) == (then_p.to_json(), now_p.to_json())
    html = client.get("/results/pulse-aftercare/2").get_data(as_text=True)
    for q in expected["questions"]:
        rows = table_rows(section(html), q["key"])
        assert [r[0] for r in rows.values()] == [f"{o['then'].percent}%" for o in q["options"]]
        assert [r[2] for r in rows.values()] == [f"{o['now'].percent}%" for o in q["options"]]
        block = re.search(rf'id="chart-wave-{q["key"]}-data"[^>]*>(.*?)</script>', html, re.S).group(1)
        data = json.loads(unescape(block))
        dots = {t["name"]: t["x"] for t in data["data"] if t.get("mode") == "markers"}
        assert dots["Wave 1 (then)"] == [o["then"].percent for o in q["options"]]
        assert dots["Wave 2 (now)"] == [o["now"].percent for o in q["options"]]


def test_earlier_wave_not_released_shows_no_comparison_until_it_is(app, client, tmp_path):
    two_waves(app, client, tmp_path, release_first=False)
    html = client.get("/results/pulse-aftercare/2").get_data(as_text=True)
    waves_html = section(html)
    assert "still in early access" in waves_html and "<table" not in waves_html
    assert "chart-wave-" not in html
    # The public page is cached per snapshot: releasing the earlier wave refreshes the comparison.
    with app.app_context():
        admin_actions.release(THEN)
    assert 'id="wave-first_followup"' in section(client.get("/results/pulse-aftercare/2").get_data(as_text=True))


def test_earlier_wave_not_published_says_so(app, client, tmp_path):
    fill(app, client, n=6)
    open_second_wave(app, tmp_path)
    fill_second_wave(app, client)
    waves_html = section(client.get("/results/pulse-aftercare/2").get_data(as_text=True))
    assert "wave 1’s figures were never published" in waves_html and "<table" not in waves_html


def test_first_wave_has_no_comparison(app, client, tmp_path):
    two_waves(app, client, tmp_path)
    assert 'id="waves"' not in client.get("/results/pulse-aftercare/1").get_data(as_text=True)


def test_two_wave_page_keeps_every_table_in_a_keyboard_region(app, client, tmp_path):
    two_waves(app, client, tmp_path)
    html = client.get("/results/pulse-aftercare/2").get_data(as_text=True)
    regions = re.findall(r'<div class="table-wrap[^"]*"[^>]*>\s*<p class="scroll-hint"', html)
    assert len(regions) == html.count("<table")
    for tag in re.findall(r'<div class="table-wrap[^"]*"[^>]*>', html):
        assert 'tabindex="0"' in tag and 'role="region"' in tag and re.search(r'aria-label="[^"]{8,}"', tag), tag


# ------------------------------------------------------------------------------- your own change


def enter(client, key):
    tokens = form_tokens(client.get("/results/key").get_data(as_text=True))
    return client.post("/results", data={"csrf_token": tokens["csrf_token"], "results_key": key})


CHANGE = "/results/pulse-aftercare/2/change"


def post_change(client, page: str, **fields):
    tokens = form_tokens(client.get(page).get_data(as_text=True))
    return client.post(CHANGE, data={"csrf_token": tokens["csrf_token"], **fields})


def own_rows(html: str) -> dict[str, list[str]]:
    start = html.index('id="own-change"')
    table = html[start : html.index("</table>", start)]
    return {
        unescape(re.sub(r"<[^>]+>", "", h).strip()): [unescape(re.sub(r"<[^>]+>", "", c).strip()) for c in cells]
        for h, cells in (
            (
                re.search(r'<th scope="row"[^>]*>(.*?)</th>', r, re.S).group(1),
                re.findall(r"<td[^>]*>(.*?)</td>", r, re.S),
            )
            for r in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
            if '<th scope="row"' in r
        )
    }


def assert_own_change(html: str, i: int):
    assert "Pulse keeps no link between your two keys" in html
    rows = own_rows(html)
    followup = THEN.question("first_followup")
    then, now = (followup.option(a["first_followup"]).label for a in (clinic(i), second_wave(i)))
    assert rows[followup.text] == [then, now, "same" if then == now else "changed"]
    assert rows[NOW.question("mood_tracking").text] == ["At every session and follow-up"] * 2 + ["same"]
    assert NOW.question("digital_tools").text not in rows
    assert f"{THEN.index_of(clinic(i))} → {NOW.index_of(second_wave(i))}" in html


def test_participant_enters_the_earlier_key_in_a_form_and_sees_their_change(app, client, tmp_path):
    first, second = two_waves(app, client, tmp_path)
    enter(client, second[3])
    page = client.get("/results/pulse-aftercare/2").get_data(as_text=True)
    form = section(page)
    # A small form on the comparison: the earlier key in a POST body with CSRF, never in the address.
    assert "See your own change" in form
    assert re.search(rf'<form method="post" action="{CHANGE}"', form) and 'name="csrf_token"' in form
    assert 'name="earlier_key"' in form and 'name="current_key"' not in form
    response = post_change(client, "/results/pulse-aftercare/2", earlier_key=first[3])
    assert response.status_code == 200
    assert_own_change(response.get_data(as_text=True), 3)
    with client.session_transaction() as session:  # the earlier key is not kept
        assert list(session["results_keys"]) == ["pulse-aftercare@2"]


def test_session_holding_both_keys_shows_the_change_on_the_page(app, client, tmp_path):
    first, second = two_waves(app, client, tmp_path)
    enter(client, first[5])
    enter(client, second[5])
    html = client.get("/results/pulse-aftercare/2").get_data(as_text=True)
    assert_own_change(section(html), 5)
    # Not kept either, not even in memory: a kept page would join the two responses.
    assert len(state.of(app).cache.personal_pages) == 0


def test_without_a_key_the_public_page_links_to_a_form_for_both_keys(app, client, tmp_path):
    first, second = two_waves(app, client, tmp_path)
    public = client.get("/results/pulse-aftercare/2")
    assert "Set-Cookie" not in public.headers  # the public page still has no form
    assert f'<a href="{CHANGE}">' in section(public.get_data(as_text=True))
    form = client.get(CHANGE).get_data(as_text=True)
    assert 'name="earlier_key"' in form and 'name="current_key"' in form
    response = post_change(client, CHANGE, earlier_key=first[12], current_key=second[12])
    assert response.status_code == 200
    assert_own_change(response.get_data(as_text=True), 12)
    with client.session_transaction() as session:
        assert "results_keys" not in session


def all_rows(app) -> dict[str, list[tuple]]:
    """Every row of every table, as stored."""
    with app.app_context():
        db = storage.reader()
        out = {
            t.name: sorted(tuple(map(repr, row)) for row in db.execute(select(t)).all())
            for t in Base.metadata.sorted_tables
        }
        storage.end_request_reads()
        return out


def test_nothing_is_stored_and_no_table_holds_both_keys(app, client, tmp_path, caplog):
    first, second = two_waves(app, client, tmp_path)
    enter(client, second[7])
    before = all_rows(app)
    caplog.set_level(logging.DEBUG)
    response = post_change(client, "/results/pulse-aftercare/2", earlier_key=first[7])
    assert response.status_code == 200
    assert all_rows(app) == before
    hashes = {
        k: {keys.keyed_hash(SECRET, d, keys.normalize(k)) for d in keys.DOMAINS} | {keys.normalize(k), k}
        for k in (first[7], second[7])
    }
    for table, rows in all_rows(app).items():
        for row in rows:
            text = " ".join(row)
            assert not all(any(h in text for h in hashes[k]) for k in hashes), table
    logged = caplog.text
    assert not any(h in logged for k in hashes for h in hashes[k])


@pytest.mark.parametrize("which", ["wrong", "other survey", "empty"])
def test_a_bad_earlier_key_is_401_naming_the_field_and_changes_nothing(app, client, tmp_path, which):
    first, second = two_waves(app, client, tmp_path)
    enter(client, second[2])
    typed = {"wrong": keys.new_results_key(), "other survey": second[4], "empty": ""}[which]
    before = all_rows(app)
    response = post_change(client, "/results/pulse-aftercare/2", earlier_key=typed)
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    error = re.search(r'<p class="error" id="earlier_key-error" role="alert">(.*?)</p>', html, re.S).group(1)
    assert "key from wave 1" in unescape(error)
    if which == "other survey":
        assert "pulse-aftercare@2" in unescape(error)
    assert 'aria-invalid="true"' in html and 'id="own-change"' not in html
    assert all_rows(app) == before


def test_a_bad_current_key_is_401_naming_its_field(app, client, tmp_path):
    first, _ = two_waves(app, client, tmp_path)
    response = post_change(client, CHANGE, earlier_key=first[0], current_key=first[1])
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert re.search(r'id="current_key-error" role="alert">[^<]*key from wave 2', unescape(html))
    assert 'id="earlier_key-error"' not in html


def test_own_change_needs_the_csrf_token(app, client, tmp_path):
    first, second = two_waves(app, client, tmp_path)
    response = client.post(CHANGE, data={"earlier_key": first[0], "current_key": second[0]})
    assert response.status_code == 400
    assert "own-change" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", ["/results/pulse-aftercare/1/change", "/results/pulse-aftercare/9/change", "/results/nope/1/change"]
)
def test_no_earlier_wave_is_404(app, client, tmp_path, path):
    two_waves(app, client, tmp_path)
    assert client.get(path).status_code == 404
    assert client.post(path, data={}).status_code in (400, 404)


def test_the_overall_index_is_compared_from_each_waves_published_percentiles(app, client, tmp_path):
    two_waves(app, client, tmp_path)
    html = client.get("/results/pulse-aftercare/2").get_data(as_text=True)
    block = html[html.index('id="wave-index"') :]
    block = block[: block.index("</dl>")]
    then, now = benchmarks(client, 1)["index"]["percentiles"], benchmarks(client, 2)["index"]["percentiles"]

    def shown(value):
        return "–" if value is None else f"{value:g}"

    median = re.search(r"<dt>Median</dt><dd>(.*?)</dd>", block).group(1)
    assert median == f"{shown(then['50'])} → {shown(now['50'])}"
    assert "aftercare index, then and now" in block
