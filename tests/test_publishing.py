"""The benchmark pipeline: tallies, disclosure rules, a participant's view and CSV rows.

Expectations are computed by hand; the audit at the end solves every hidden cell's bounds
from the published numbers with a linear program and fails if one is pinned.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.stats import binomtest

from survey_app.exports import CSV_COLUMNS, csv_rows
from survey_app.pipeline import disclosure, publishing, tallies
from survey_app.pipeline.disclosure import Disclosure
from survey_app.pipeline.publishing import publish, you
from survey_app.pipeline.tallies import Tally, tally
from survey_app.questions import load_survey

SURVEY = load_survey(Path(__file__).resolve().parents[1] / "questions.yaml")
RULES = Disclosure()

# Answer sets with a known index (points from questions.yaml, added up by hand).
WORST = {"practice_type": "dedicated_clinic", "discharge_checks": ["none"], "first_followup": "no_followup",
         "mood_tracking": "never", "integration_support": ["none"], "digital_tools": ["none"],
         "after_hours": "no_pathway", "followup_completion": "not_tracked"}
BEST = {"practice_type": "dedicated_clinic", "discharge_checks": ["vitals", "emotional_checkin"],
        "first_followup": "within_24h", "mood_tracking": "every_touchpoint",
        "integration_support": ["individual_integration", "group_integration"], "digital_tools": ["mood_app"],
        "after_hours": "clinician_24_7", "followup_completion": "pct_90_plus"}
# 8 (vitals) + 10 (72 h) + 5 (series bounds) + 15 + 5 (two integration options) + 0 + 5 (crisis line)
MIDDLE = {"practice_type": "dedicated_clinic", "discharge_checks": ["vitals"], "first_followup": "within_72h",
          "mood_tracking": "series_bounds", "integration_support": ["peer_community", "external_referral"],
          "digital_tools": ["none"], "after_hours": "crisis_line", "followup_completion": "pct_50_74"}


def dumps(answers: dict) -> str:
    return json.dumps(answers)


def responses(n: int, base: dict = MIDDLE, **columns: dict) -> list[dict]:
    """n answer sets: base, with each named question filled from {option: count} in order."""
    rows = [dict(base) for _ in range(n)]
    for question, counts in columns.items():
        values = [v for v, c in counts.items() for _ in range(c)]
        assert len(values) == n, f"{question}: counts add up to {len(values)}, not {n}"
        for row, value in zip(rows, values):
            row[question] = value
    return rows


def build(rows: list[dict], rules: Disclosure = RULES) -> dict:
    return publish(SURVEY, tally(SURVEY, [dumps(r) for r in rows]), rules, released=True)


def question(pub: dict, key: str) -> dict:
    return next(q for q in pub["questions"] if q["key"] == key)


def hidden(shares: list[dict]) -> set[str]:
    return {s["key"] for s in shares if s["suppressed"]}


def random_answers(rng: random.Random, segment_weights: list[float], option_p: dict) -> dict:
    """One plausible validated answer set."""
    out = {}
    for q in SURVEY.questions:
        weights = segment_weights if q.key == SURVEY.segment else option_p[q.key]
        if q.type == "single":
            out[q.key] = rng.choices(q.option_keys, weights=weights)[0]
        else:
            real = [o.key for o, p in zip(q.options, weights) if not o.exclusive and rng.random() < p]
            out[q.key] = real or [o.key for o in q.options if o.exclusive][:1] or [q.option_keys[0]]
    return out


def random_rows(seed: int, n: int) -> list[dict]:
    """Skewed random respondents: rare options and small segments are common on purpose."""
    rng = random.Random(seed)
    segment_weights = [rng.random() ** 3 for _ in SURVEY.question(SURVEY.segment).options]
    option_p = {q.key: [rng.random() ** 2 for _ in q.options] for q in SURVEY.questions}
    return [random_answers(rng, segment_weights, option_p) for _ in range(n)]


def reference_tally(rows: list[str]) -> Tally:
    """The slow, obvious tally: one json.loads and one Survey.index_of per row."""
    options, answered, index = Counter(), Counter(), Counter()
    for text in rows:
        a = json.loads(text)
        seg, out = a.get(SURVEY.segment, ""), a.get(SURVEY.outcome, "")
        for q, v in a.items():
            answered[seg, q] += 1
            for o in [v] if isinstance(v, str) else v:
                options[seg, q, o] += 1
        index[seg, out, SURVEY.index_of(a)] += 1
    return Tally.from_json({"options": [[*k, c] for k, c in options.items()],
                            "answered": [[*k, c] for k, c in answered.items()],
                            "index": [[*k, c] for k, c in index.items()]})


# ---------------------------------------------------------------------------- figures


@pytest.mark.parametrize("count, n, ci, pct", [
    (0, 10, [0, 28], 0),       # upper bound z²/(n+z²) = 0.2775
    (10, 10, [72, 100], 100),  # lower bound n/(n+z²) = 0.7225
    (5, 10, [23, 77], 50),     # 0.2366 .. 0.7634
    (3, 20, [5, 37], 15),      # 0.0524 .. 0.3604
    (1, 8, [2, 48], 13),       # 12.5% rounds half up; 0.0224 .. 0.4709
])
def test_wilson_interval_in_whole_percents(count, n, ci, pct):
    assert publishing.ci_percent(count, n) == ci
    assert publishing.percent(count, n) == pct
    ref = binomtest(count, n).proportion_ci(method="wilson")
    assert publishing.wilson(count, n) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_multi_select_shares_are_over_respondents():
    rows = responses(20, discharge_checks={("vitals", "ride_home"): 10, ("vitals",): 5, ("none",): 5})
    for r in rows:
        r["discharge_checks"] = list(r["discharge_checks"])
    q = question(build(rows), "discharge_checks")
    shares = {s["key"]: (s["count"], s["percent"]) for s in q["options"]}
    assert q["n"] == 20
    assert shares == {"vitals": (15, 75), "emotional_checkin": (0, 0), "dissociation_resolved": (0, 0),
                      "ride_home": (10, 50), "written_instructions": (0, 0), "none": (5, 25)}
    assert sum(p for _, p in shares.values()) == 150


@pytest.mark.parametrize("answers, index", [
    (WORST, 0), (BEST, 100), (MIDDLE, 48),
    # 7 + 20 (48 h) + 0 + 15 (one integration option) + 10 + 20 (on call)
    ({**WORST, "discharge_checks": ["emotional_checkin", "ride_home"], "first_followup": "within_48h",
      "integration_support": ["group_integration"], "digital_tools": ["mood_app", "patient_portal"],
      "after_hours": "on_call"}, 72),
])
def test_index_of_known_answer_sets(answers, index):
    assert SURVEY.index_of(answers) == index
    t = tally(SURVEY, [dumps(answers)])
    assert t.index[["value", "count"]].values.tolist() == [[index, 1]]


# ---------------------------------------------------------------------------- tally


@pytest.mark.parametrize("fmt", [
    dumps,
    lambda a: json.dumps(a, separators=(",", ":"), sort_keys=True),
    lambda a: json.dumps(dict(reversed(list(a.items()))), indent=2),
    lambda a: json.dumps(a, ensure_ascii=False),
])
def test_tally_matches_the_obvious_count(fmt, monkeypatch):
    monkeypatch.setattr(tallies, "CHUNK_ROWS", 37)  # several chunks, boundaries mid-way
    rows = [fmt(a) for a in random_rows(3, 200)]
    assert tally(SURVEY, rows) == reference_tally(rows)


def test_tally_reads_escaped_text_and_missing_answers():
    rows = ['{"practice_type": "\\u0070sychiatry", "digital_tools": ["mood_app", "none"]}', "{}", dumps(BEST)]
    t = tally(SURVEY, rows)
    assert t == reference_tally(rows)
    assert t.n == 3
    assert [r for r in t.to_json()["answered"] if r[1] == "digital_tools"] == [
        ["dedicated_clinic", "digital_tools", 1], ["psychiatry", "digital_tools", 1]]


def test_tally_merges_subtracts_and_round_trips():
    a = [dumps(r) for r in random_rows(1, 40)]
    b = [dumps(r) for r in random_rows(2, 25)]
    ta, tb, tab = tally(SURVEY, a), tally(SURVEY, b), tally(SURVEY, a + b)
    assert ta + tb == tab and tb + ta == tab
    assert tab - tb == ta
    assert (ta + tb).n == 65
    assert Tally.from_json(json.loads(json.dumps(tab.to_json()))) == tab
    assert tally(SURVEY, []) + ta == ta
    with pytest.raises(ValueError):
        ta - tab


def test_published_figures_do_not_depend_on_row_order():
    rows = [dumps(r) for r in random_rows(5, 120)]
    shuffled = random.Random(1).sample(rows, len(rows))
    first = publish(SURVEY, tally(SURVEY, rows), RULES, False)
    assert json.dumps(first) == json.dumps(publish(SURVEY, tally(SURVEY, shuffled), RULES, False))


# ---------------------------------------------------------------------------- release


@pytest.mark.parametrize("n, published, needed", [
    (0, False, 10), (9, False, 1), (10, True, 0), (11, True, 0)])
def test_release_threshold(n, published, needed):
    pub = build(responses(n))
    assert (pub["published"], pub["needed"], pub["responses"]) == (published, needed, n)
    assert bool(pub["questions"]) == published and len(pub["questions"]) == (8 if published else 0)
    assert bool(pub["index"]["histogram"]) == published
    if not published:
        assert set(pub["index"]["percentiles"].values()) == {None}
        assert csv_rows(SURVEY, pub) == []


def test_a_question_answered_by_too_few_shows_not_enough_yet():
    rows = responses(12)
    for r in rows[:5]:
        del r["mood_tracking"]
    q = question(build(rows), "mood_tracking")
    assert (q["n"], q["enough"], q["options"], q["segments"]) == (7, False, [], [])
    assert "not enough" in q["notes"][0].lower()


# ---------------------------------------------------------------------------- suppression


@pytest.mark.parametrize("k, count, total, hides", [
    (5, 0, 20, False), (5, 1, 20, True), (5, 4, 20, True), (5, 5, 20, False), (5, 15, 20, False),
    (5, 16, 20, True), (5, 19, 20, True), (5, 20, 20, False),
    (11, 10, 30, True), (11, 11, 30, False), (11, 19, 30, False), (11, 20, 30, True),
    (11, 0, 10, False), (11, 5, 10, True), (11, 10, 10, False),  # k above N: still never 0 or N
])
def test_primary_suppression_rule(k, count, total, hides):
    assert Disclosure(k=k).hides(count, total) is hides


def test_primary_suppression_hides_both_tails_and_shows_nothing_of_them():
    q = question(build(responses(20, first_followup={"within_24h": 2, "within_48h": 18})), "first_followup")
    assert hidden(q["options"]) == {"within_24h", "within_48h"}
    for s in q["options"]:
        if s["suppressed"]:
            assert (s["count"], s["percent"], s["ci"]) == (None, None, None)
        else:
            assert s["count"] == 0
    assert q["notes"]


@pytest.mark.parametrize("counts, expected", [
    # one small cell alone could be read off n: the next smallest joins it
    ({"within_24h": 3, "within_48h": 7, "within_72h": 9, "within_week": 11}, {"within_24h", "within_48h"}),
    # two hidden 1s are pinned by "never 0": a third cell is needed
    ({"within_24h": 1, "within_48h": 1, "within_72h": 8, "within_week": 10},
     {"within_24h", "within_48h", "within_72h"}),
    # an upper-tail cell alone is pinned as well
    ({"within_24h": 26, "within_week": 2, "no_followup": 2}, {"within_24h", "within_week", "no_followup"}),
    # nothing small: nothing hidden
    ({"within_24h": 5, "within_48h": 25}, set()),
])
def test_complementary_suppression_within_a_single_choice_question(counts, expected):
    q = question(build(responses(sum(counts.values()), first_followup=counts)), "first_followup")
    assert hidden(q["options"]) == expected


def test_complementary_suppression_across_segments():
    rows = responses(30, practice_type={"dedicated_clinic": 15, "psychiatry": 15},
                     digital_tools={("mood_app",): 3, ("none",): 12 + 5, ("patient_portal", "mood_app"): 10})
    for r in rows:
        r["digital_tools"] = list(r["digital_tools"])
    q = question(build(rows), "digital_tools")
    seg = {g["key"]: g for g in q["segments"]}
    assert [g["key"] for g in q["segments"]] == ["dedicated_clinic", "psychiatry"]
    # mood_app: 3 in the first group (hidden), 10 in the second, 13 overall: the 10 must go too.
    assert hidden(seg["dedicated_clinic"]["options"]) >= {"mood_app"}
    assert "mood_app" in hidden(seg["psychiatry"]["options"])
    assert "mood_app" not in hidden(q["options"])


def test_complementary_suppression_in_the_histogram():
    pub = build(responses(3, WORST) + responses(10, MIDDLE) + responses(12, BEST))
    bins = {b["from"]: b for b in pub["index"]["histogram"]}
    assert [(b["from"], b["to"]) for b in pub["index"]["histogram"]][-1] == (90, 100)
    assert {f for f, b in bins.items() if b["suppressed"]} == {0, 40}
    assert bins[90]["count"] == 12 and bins[10]["count"] == 0


def test_a_question_that_cannot_be_protected_is_withheld():
    rules = Disclosure(release_threshold=3, k=2, segment_min=2)
    rows = responses(3, first_followup={"within_24h": 1, "within_48h": 1, "within_72h": 1})
    q = question(build(rows, rules), "first_followup")
    assert q["withheld"] and all(s["suppressed"] for s in q["options"])


def test_a_histogram_that_cannot_be_protected_is_withheld():
    # ten clinics, one in each bin, and k = 11: every bin is a hidden 1, so all would be known
    step = [{}, {"digital_tools": ["mood_app"]}, {"digital_tools": ["none"], "first_followup": "within_24h"},
            {"digital_tools": ["mood_app"]}, {"digital_tools": ["none"], "after_hours": "on_call"},
            {"digital_tools": ["mood_app"]}, {"digital_tools": ["none"],
                                              "integration_support": ["group_integration", "peer_community"]},
            {"digital_tools": ["mood_app"]}, {"mood_tracking": "every_touchpoint"}]
    rows = [WORST]
    for change in step[1:]:
        rows.append({**rows[-1], **change})  # 0, 10, 20, 30, 40, 50, 60, 70, 85
    rows.append(BEST)
    assert [SURVEY.index_of(r) for r in rows] == [0, 10, 20, 30, 40, 50, 60, 70, 85, 100]
    pub = build(rows, Disclosure(k=11, segment_min=11))
    assert pub["index"]["withheld"] and all(b["suppressed"] for b in pub["index"]["histogram"])


# ---------------------------------------------------------------------------- segments


@pytest.mark.parametrize("sizes, groups", [
    # one small segment joins the other option; the merged group is big enough
    ({"dedicated_clinic": 20, "psychiatry": 15, "anesthesia_pain": 4, "other": 8},
     [("dedicated_clinic", 20), ("psychiatry", 15), ("other", 12)]),
    # the merged group is too small: the smallest shown segment joins it
    ({"dedicated_clinic": 20, "psychiatry": 12, "telehealth": 3}, [("dedicated_clinic", 20), ("other", 15)]),
    # a segment with one clinic is never shown, nor left readable from the total
    ({"dedicated_clinic": 15, "psychiatry": 14, "hospital_academic": 1},
     [("dedicated_clinic", 15), ("other", 15)]),
    # on a tie the later option joins
    ({"dedicated_clinic": 12, "psychiatry": 12, "other": 1}, [("dedicated_clinic", 12), ("other", 13)]),
    # nothing left over: no merged group
    ({"dedicated_clinic": 10, "psychiatry": 10}, [("dedicated_clinic", 10), ("psychiatry", 10)]),
    # no split into two groups of 10 remains: no breakdown
    ({"dedicated_clinic": 25, "other": 3}, []),
    ({"dedicated_clinic": 15, "psychiatry": 4}, []),
    ({"other": 40}, []),
])
def test_segment_groups(sizes, groups):
    pub = build(responses(sum(sizes.values()), practice_type=sizes))
    assert [(g["key"], g["n"]) for g in pub["segment"]["groups"]] == groups
    if groups:
        assert sum(n for _, n in groups) == pub["responses"]
        members = [m for g in pub["segment"]["groups"] for m in g["members"]]
        assert len(members) == len(set(members)) and set(members) >= set(sizes)
    for q in pub["questions"]:
        expected = [] if q["key"] == "practice_type" else groups
        assert [(g["key"], g["n"]) for g in q["segments"]] == expected


def test_segment_minimum_is_never_below_k():
    assert Disclosure(k=11, segment_min=5).group_min == 11
    rows = responses(20, practice_type={"dedicated_clinic": 10, "psychiatry": 10})
    pub = build(rows, Disclosure(k=11, segment_min=5))
    assert pub["segment"]["groups"] == []


# ---------------------------------------------------------------------------- percentiles


@pytest.mark.parametrize("n, k, shown", [
    (10, 5, {"50"}), (19, 5, {"50"}), (20, 5, {"25", "50", "75"}), (49, 5, {"25", "50", "75"}),
    (50, 5, {"10", "25", "50", "75", "90"}), (21, 11, set()), (22, 11, {"50"}),
])
def test_percentile_rule(n, k, shown):
    pub = build(responses(n), Disclosure(k=k, segment_min=k))
    assert {p for p, v in pub["index"]["percentiles"].items() if v is not None} == shown


def test_percentile_values_interpolate():
    pub = build(responses(10, WORST) + responses(10, MIDDLE))
    # sorted: ten 0s then ten 48s; p50 sits halfway between the 10th and 11th value
    assert pub["index"]["percentiles"] == {"10": None, "25": 0.0, "50": 24.0, "75": 48.0, "90": None}


def test_outcome_against_index():
    rows = responses(10, WORST) + responses(12, BEST)
    out = build(rows)["outcome"]
    by_key = {o["key"]: o for o in out["options"]}
    assert out["question"] == "followup_completion"
    assert by_key["not_tracked"]["n"] == 10 and by_key["not_tracked"]["percentiles"]["50"] == 0.0
    assert by_key["pct_90_plus"]["n"] == 12 and by_key["pct_90_plus"]["percentiles"]["50"] == 100.0
    assert by_key["pct_50_74"]["n"] == 0 and by_key["pct_50_74"]["percentiles"]["50"] is None


# ---------------------------------------------------------------------------- you


def snapshot(*groups: tuple[int, dict]) -> Tally:
    return tally(SURVEY, [dumps(a) for n, a in groups for _ in range(n)])


@pytest.mark.parametrize("groups, mine, counted, expected", [
    # self is one of the six MIDDLEs: the others are 5 / 5 / 5
    (((5, WORST), (6, MIDDLE), (5, BEST)), MIDDLE, True, (34, 33, 33)),
    # not counted: all six MIDDLEs are others
    (((5, WORST), (6, MIDDLE), (5, BEST)), MIDDLE, False, (31, 38, 31)),
    # at index 0 nobody can be lower: 0% is shown, being 0 clinics
    (((15, MIDDLE), (1, WORST)), WORST, True, (0, 0, 100)),
    (((12, MIDDLE), (5, BEST)), BEST, False, (71, 29, 0)),  # 70.6 / 29.4 / 0
])
def test_you_standing_among_other_clinics(groups, mine, counted, expected):
    out = you(SURVEY, mine, snapshot(*groups), counted, RULES)
    assert (out["lower"], out["same"], out["higher"]) == expected
    assert sum(expected) == 100 and out["reason"] is None
    assert out["index"] == SURVEY.index_of(mine)


@pytest.mark.parametrize("groups, mine, counted", [
    (((12, MIDDLE), (2, BEST)), MIDDLE, False),        # 2 higher
    (((12, MIDDLE), (3, WORST), (1, MIDDLE)), MIDDLE, False),  # 3 lower
    (((12, MIDDLE), (4, WORST)), WORST, True),          # index 0: 3 others the same
    (((12, MIDDLE), (4, BEST)), BEST, False),           # index 100: 4 the same
    (((5, MIDDLE),), MIDDLE, False),                    # nothing published yet
])
def test_you_withholds_all_three(groups, mine, counted):
    out = you(SURVEY, mine, snapshot(*groups), counted, RULES)
    assert (out["lower"], out["same"], out["higher"]) == (None, None, None)
    assert out["reason"]


def test_you_leaves_out_only_a_counted_response():
    with pytest.raises(ValueError):
        you(SURVEY, BEST, snapshot((12, MIDDLE)), True, RULES)


def test_missing_practices():
    mine = {**MIDDLE, "discharge_checks": ["ride_home"], "integration_support": ["individual_integration"],
            "digital_tools": ["mood_app"]}
    others = responses(10, MIDDLE, discharge_checks={("vitals",): 5, ("emotional_checkin", "ride_home"): 5},
                       first_followup={"within_24h": 6, "within_72h": 4})
    for r in others:
        r["discharge_checks"] = list(r["discharge_checks"])
    t = tally(SURVEY, [dumps(a) for a in [mine, *others]])
    missing = you(SURVEY, mine, t, True, RULES)["missing_practices"]
    # vitals: 5 of 11 (< half); emotional check-in 5 of 11; 24 h follow-up 6 of 11 (>= half);
    # peer community and referral 10 of 11; ride_home is not scored; 72 h and series bounds are mine.
    assert missing == [{"question": "first_followup", "option": "within_24h"},
                       {"question": "integration_support", "option": "peer_community"},
                       {"question": "integration_support", "option": "external_referral"}]
    assert you(SURVEY, mine, t, True, Disclosure(release_threshold=20))["missing_practices"] == []


# ---------------------------------------------------------------------------- csv


def test_csv_rows_columns_and_order():
    pub = build(random_rows(7, 80))
    rows = csv_rows(SURVEY, pub)
    assert rows and all(tuple(r) == CSV_COLUMNS for r in rows)
    qorder = {q.key: i for i, q in enumerate(SURVEY.questions)} | {"index": len(SURVEY.questions)}
    oorder = {(q.key, o): i for q in SURVEY.questions for i, o in enumerate(q.option_keys)}
    oorder |= {("index", f"{lo}-{hi}"): i for i, (lo, hi) in enumerate(publishing.BINS)}
    sorder = {"": -1} | {g["key"]: i for i, g in enumerate(pub["segment"]["groups"])}
    keys = [(qorder[r["question"]], oorder[r["question"], r["option"]], sorder[r["segment"]]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert [r["option"] for r in rows if r["question"] == "index"] == [
        "0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90-100"]
    assert any(r["suppressed"] for r in rows) and any(r["segment"] for r in rows)
    for r in rows:
        assert (r["survey"], r["version"]) == ("pulse-aftercare", 1)
        numbers = (r["count"], r["percent"], r["ci_low"], r["ci_high"])
        if r["suppressed"]:
            assert all(v is None for v in numbers)
        else:
            assert all(isinstance(v, int) for v in numbers)


# ---------------------------------------------------------------------------- the audit


def hidden_cell_ranges(pub: dict) -> list[tuple[str, tuple, float, float]]:
    """Each hidden cell's min and max given only the published numbers and totals."""
    problems = []
    for q in pub["questions"]:
        if q["enough"] and not q["withheld"]:
            rows = [(None, q["n"], q["options"])] + [(g["key"], g["n"], g["options"]) for g in q["segments"]]
            exclusive = [o.key for o in SURVEY.question(q["key"]).options if o.exclusive]
            problems.append((q["key"], q["type"], rows, exclusive))
    bins = [{**b, "key": f"{b['from']}-{b['to']}"} for b in pub["index"]["histogram"]]
    if bins and not pub["index"]["withheld"]:
        problems.append(("index", "single", [(None, pub["index"]["n"], bins)], []))
    return [r for p in problems for r in _solve(*p)]


def _solve(name: str, qtype: str, rows: list, exclusive: list[str]):
    var, bounds, value = {}, [], {}
    for g, n, shares in rows:
        for s in shares:
            if s["suppressed"]:
                var[g, s["key"]] = len(var)
                bounds.append((1, n - 1))  # a hidden cell is never 0 or N
            else:
                value[g, s["key"]] = s["count"]
    if not var:
        return []
    eq, ub = ([], []), ([], [])

    def add(target, terms, rhs):
        coeffs = np.zeros(len(var))
        for cell, c in terms:
            if cell in var:
                coeffs[var[cell]] += c
            else:
                rhs -= c * value[cell]
        target[0].append(coeffs)
        target[1].append(rhs)

    keys = [s["key"] for s in rows[0][2]]
    for g, n, shares in rows:
        if qtype == "single":  # options add up to the respondents
            add(eq, [((g, o), 1) for o in keys], n)
        if exclusive:  # "None" excludes every other option, and everyone chose something
            nones = [((g, x), 1) for x in exclusive]
            real = [o for o in keys if o not in exclusive]
            for o in real:
                add(ub, nones + [((g, o), 1)], n)
            add(ub, [(cell, -1) for cell, _ in nones] + [((g, o), -1) for o in real], -n)
    if len(rows) > 1:  # segment groups partition the respondents
        for o in keys:
            add(eq, [((g, o), 1) for g, _, _ in rows[1:]] + [((None, o), -1)], 0)
    out = []
    for cell, i in var.items():
        ends = []
        for sign in (1, -1):
            c = np.zeros(len(var))
            c[i] = sign
            res = linprog(c, A_ub=ub[0] or None, b_ub=ub[1] or None, A_eq=eq[0] or None, b_eq=eq[1] or None,
                          bounds=bounds, method="highs")
            assert res.status == 0, f"{name} {cell}: {res.message}"
            ends.append(sign * res.fun)
        out.append((name, cell, *ends))
    return out


def test_the_audit_finds_a_pinned_cell():
    pub = build(responses(30, first_followup={"within_24h": 3, "within_48h": 7, "within_72h": 9,
                                              "within_week": 11}))
    q = question(pub, "first_followup")
    share = next(s for s in q["options"] if s["key"] == "within_48h")
    share.update(count=7, suppressed=False)  # undo the complementary cell
    ranges = {(n, c): (lo, hi) for n, c, lo, hi in hidden_cell_ranges(pub)}
    assert ranges["first_followup", (None, "within_24h")] == pytest.approx((3, 3))


def exclusive_fixture() -> list[dict]:
    """Group 2's 'none' (2) forces group 1's 'none' (7) hidden; vitals (8) is group 1's only other
    choice, so 'none' = 15 - 8 unless vitals goes too: only the exclusive-option inequalities see it."""
    rows = responses(30, practice_type={"dedicated_clinic": 15, "psychiatry": 15},
                     discharge_checks={("none",): 7, ("vitals",): 8, ("none", ""): 2, ("ride_home",): 13})
    for r in rows:
        r["discharge_checks"] = [o for o in r["discharge_checks"] if o]
    return rows


def test_the_audit_needs_the_exclusive_option_check(monkeypatch):
    q = question(build(exclusive_fixture()), "discharge_checks")
    assert "vitals" in hidden(q["segments"][0]["options"])
    monkeypatch.setattr(disclosure, "_lp_pinned", lambda cells, exclusive: None)
    pinned = [r for r in hidden_cell_ranges(build(exclusive_fixture())) if r[3] - r[2] < 1 - 1e-6]
    assert ("discharge_checks", ("dedicated_clinic", "none"), 7, 7) in pinned


# Random fixtures: (respondents, k); the segment minimum is 2k.
RANDOM = [(10, 5), (14, 5), (23, 5), (31, 5), (47, 5), (64, 5), (88, 5), (120, 5), (170, 5), (260, 5),
          (40, 3), (75, 3), (33, 11), (90, 11), (150, 11), (400, 11)]
AUDITED = [
    ("exclusive", exclusive_fixture, RULES),
    ("single", lambda: responses(30, first_followup={"within_24h": 3, "within_48h": 7, "within_72h": 9,
                                                     "within_week": 11}), RULES),
    ("histogram", lambda: responses(3, WORST) + responses(10, MIDDLE) + responses(12, BEST), RULES),
    ("segments", lambda: responses(36, practice_type={"dedicated_clinic": 12, "psychiatry": 12,
                                                      "telehealth": 12},
                                   first_followup={"within_24h": 11, "within_48h": 2, "within_72h": 13,
                                                   "no_followup": 10}), RULES),
] + [(f"random-{seed}-{n}-k{k}", (lambda seed=seed, n=n: random_rows(seed, n)),
       Disclosure(k=k, segment_min=2 * k)) for seed, (n, k) in enumerate(RANDOM)]


@pytest.mark.parametrize("name, make, rules", AUDITED, ids=[a[0] for a in AUDITED])
def test_no_hidden_cell_can_be_worked_out(name, make, rules):
    pub = build(make(), rules)
    ranges = hidden_cell_ranges(pub)
    assert ranges, "the fixture should hide something"
    pinned = [(q, cell, lo, hi) for q, cell, lo, hi in ranges if hi - lo < 1 - 1e-6]
    assert pinned == []
