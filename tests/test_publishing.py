"""The benchmark pipeline: tallies, the published body under cell-key perturbation, a participant's
view of it and the CSV rows.

Every published count is a perturbed one (PRODUCT.md, "Disclosure control"). Tests of the noise
use the shipped table (RULES); tests of what follows from counts (shares over respondents,
percentile interpolation, segment merging, "you") also run with EXACT, a table that adds nothing,
so that their expectations can be worked out by hand. True counts are recounted here from the
answers, never read from the pipeline's own tally.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from survey_app import exports
from survey_app.exports import CSV_COLUMNS
from survey_app.pipeline import publishing, tallies
from survey_app.pipeline.disclosure import Disclosure, segment_groups
from survey_app.pipeline.figures import Published, You
from survey_app.pipeline.perturbation import PTable, set_digest
from survey_app.pipeline.tallies import Tally, tally
from survey_app.questions import as_tuple, load_survey

SURVEY = load_survey(Path(__file__).resolve().parents[1] / "questions.yaml")
KEY = b"publishing-test-noise-key"
RULES = Disclosure(key=KEY)
TOP = RULES.ptable.max_pcv
EXACT = Disclosure(key=KEY, ptable=PTable(np.zeros((TOP + 1, 256), dtype=np.int64), "exact counts"))

# Answer sets with a known index (points from questions.yaml, added up by hand).
WORST = {
    "practice_type": "dedicated_clinic",
    "discharge_checks": ["none"],
    "first_followup": "no_followup",
    "mood_tracking": "never",
    "integration_support": ["none"],
    "digital_tools": ["none"],
    "after_hours": "no_pathway",
    "followup_completion": "not_tracked",
}
BEST = {
    "practice_type": "dedicated_clinic",
    "discharge_checks": ["vitals", "emotional_checkin"],
    "first_followup": "within_24h",
    "mood_tracking": "every_touchpoint",
    "integration_support": ["individual_integration", "group_integration"],
    "digital_tools": ["mood_app"],
    "after_hours": "clinician_24_7",
    "followup_completion": "pct_90_plus",
}
# 8 (vitals) + 10 (72 h) + 5 (series bounds) + 15 + 5 (two integration options) + 0 + 5 (crisis line)
MIDDLE = {
    "practice_type": "dedicated_clinic",
    "discharge_checks": ["vitals"],
    "first_followup": "within_72h",
    "mood_tracking": "series_bounds",
    "integration_support": ["peer_community", "external_referral"],
    "digital_tools": ["none"],
    "after_hours": "crisis_line",
    "followup_completion": "pct_50_74",
}


# The tests read the published body and "you" as the API serves them (the typed figures' JSON),
# and "you" reads a body as a snapshot stores it (JSON, parsed back): both ways of the contract.


def publish(survey, t: Tally, rules: Disclosure, released: bool) -> dict:
    return publishing.publish(survey, t, rules, released).to_json()


def you(survey, answers: dict, published: dict) -> dict:
    return publishing.you(survey, answers, Published.from_json(published)).to_json()


def csv_rows(survey, published: dict) -> list[dict]:
    return exports.csv_rows(survey, Published.from_json(published))


def beside_group(survey, view: dict, published: dict) -> dict:
    typed = Published.from_json(published)
    return publishing.beside_group(survey, publishing.you(survey, view["answers"], typed), typed)


def dumps(answers: dict) -> str:
    return json.dumps(answers)


def uuids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def responses(n: int, base: dict = MIDDLE, **columns: dict) -> list[dict]:
    """n answer sets: base, with each named question filled from {option: count} in order."""
    rows = [dict(base) for _ in range(n)]
    for question, counts in columns.items():
        values = [v for v, c in counts.items() for _ in range(c)]
        assert len(values) == n, f"{question}: counts add up to {len(values)}, not {n}"
        for row, value in zip(rows, values):
            row[question] = list(value) if isinstance(value, tuple) else value
    return rows


def counted(rows: list[dict], seed: int = 0) -> Tally:
    """The tally of these answer sets, as a snapshot counts them: with response ids."""
    return tally(SURVEY, [dumps(r) for r in rows], uuids(len(rows), seed))


def build(rows: list[dict], rules: Disclosure = RULES, seed: int = 0) -> dict:
    return publish(SURVEY, counted(rows, seed), rules, released=True)


def question(pub: dict, key: str) -> dict:
    return next(q for q in pub["questions"] if q["key"] == key)


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


def reference_tally(rows: list[str], ids: list[str] | None = None) -> Tally:
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
    digest = sum(uuid.UUID(x).int for x in ids or []) % 2**128
    return Tally.from_json(
        {
            "options": [[*k, c] for k, c in options.items()],
            "answered": [[*k, c] for k, c in answered.items()],
            "index": [[*k, c] for k, c in index.items()],
            "ids": f"{digest:032x}",
        }
    )


def bin_of(value: int) -> int:
    return min(value // 10, 9)


def true_rows(rows: list[dict], pub: dict) -> dict:
    """Each published row's true counts, recounted from the answers: {(question, segment): (n, {cell: count})}."""
    groups = {g["key"]: set(g["members"]) for g in pub["segment"]["groups"]}
    out = {}
    for q in SURVEY.questions:
        answered = [r for r in rows if q.key in r]
        out[q.key, ""] = (len(answered), Counter(o for r in answered for o in as_tuple(r[q.key])))
        for g, members in groups.items():
            mine = [r for r in answered if r.get(SURVEY.segment) in members]
            out[q.key, g] = (None, Counter(o for r in mine for o in as_tuple(r[q.key])))
    bins = Counter(bin_of(SURVEY.index_of(r)) for r in rows)
    out["index", ""] = (len(rows), Counter({f"{lo}-{hi}": bins[i] for i, (lo, hi) in enumerate(publishing.BINS)}))
    return out


def published_rows(pub: dict) -> dict:
    """Each published row: {(question, segment): (n, {cell: published cell})}."""
    out = {}
    for q in pub["questions"]:
        if q["options"]:
            out[q["key"], ""] = (q["n"], {c["key"]: c for c in q["options"]})
        for g in q["segments"]:
            out[q["key"], g["key"]] = (g["n"], {c["key"]: c for c in g["options"]})
    hist = pub["index"]["histogram"]
    if hist:
        out["index", ""] = (pub["index"]["n"], {f"{b['from']}-{b['to']}": b for b in hist})
    return out


def all_counts(pub: dict) -> list[int]:
    return [c["count"] for _, cells in published_rows(pub).values() for c in cells.values()]


def wilson_ci(count: int, n: int) -> list[int]:
    ref = binomtest(count, n).proportion_ci(method="wilson")
    return [math.floor(ref.low * 100 + 1e-9), math.ceil(ref.high * 100 - 1e-9)]


def whole_percent(count: int, n: int) -> int:
    return math.floor(100 * count / n + 0.5)


# ---------------------------------------------------------------------------- figures


@pytest.mark.parametrize(
    "count, n, ci, pct",
    [
        (0, 10, [0, 28], 0),  # upper bound z²/(n+z²) = 0.2775
        (10, 10, [72, 100], 100),  # lower bound n/(n+z²) = 0.7225
        (5, 10, [23, 77], 50),  # 0.2366 .. 0.7634
        (3, 20, [5, 37], 15),  # 0.0524 .. 0.3604
        (1, 8, [2, 48], 13),  # 12.5% rounds half up; 0.0224 .. 0.4709
    ],
)
def test_wilson_interval_in_whole_percents(count, n, ci, pct):
    assert publishing.ci_percent(count, n) == ci
    assert publishing.percent(count, n) == pct
    ref = binomtest(count, n).proportion_ci(method="wilson")
    assert publishing.wilson(count, n) == pytest.approx((ref.low, ref.high), abs=1e-9)


def test_multi_select_shares_are_over_respondents():
    rows = responses(20, discharge_checks={("vitals", "ride_home"): 10, ("vitals",): 5, ("none",): 5})
    q = question(build(rows, EXACT), "discharge_checks")
    shares = {s["key"]: (s["count"], s["percent"]) for s in q["options"]}
    assert q["n"] == 20
    assert shares == {
        "vitals": (15, 75),
        "emotional_checkin": (0, 0),
        "dissociation_resolved": (0, 0),
        "ride_home": (10, 50),
        "written_instructions": (0, 0),
        "none": (5, 25),
    }
    assert sum(p for _, p in shares.values()) == 150
    # With noise the denominator is still the respondents, not the sum of the (perturbed) counts.
    for seed in range(5):
        q = question(build(rows, seed=seed), "discharge_checks")
        assert q["n"] == 20
        assert all(s["percent"] == whole_percent(s["count"], 20) for s in q["options"])


@pytest.mark.parametrize(
    "answers, index",
    [
        (WORST, 0),
        (BEST, 100),
        (MIDDLE, 48),
        # 7 + 20 (48 h) + 0 + 15 (one integration option) + 10 + 20 (on call)
        (
            {
                **WORST,
                "discharge_checks": ["emotional_checkin", "ride_home"],
                "first_followup": "within_48h",
                "integration_support": ["group_integration"],
                "digital_tools": ["mood_app", "patient_portal"],
                "after_hours": "on_call",
            },
            72,
        ),
    ],
)
def test_index_of_known_answer_sets(answers, index):
    assert SURVEY.index_of(answers) == index
    t = tally(SURVEY, [dumps(answers)])
    assert t.index[["value", "count"]].values.tolist() == [[index, 1]]


# ---------------------------------------------------------------------------- tally


@pytest.mark.parametrize(
    "fmt",
    [
        dumps,
        lambda a: json.dumps(a, separators=(",", ":"), sort_keys=True),
        lambda a: json.dumps(dict(reversed(list(a.items()))), indent=2),
        lambda a: json.dumps(a, ensure_ascii=False),
    ],
)
def test_tally_matches_the_obvious_count(fmt, monkeypatch):
    monkeypatch.setattr(tallies, "CHUNK_ROWS", 37)  # several chunks, boundaries mid-way
    rows = [fmt(a) for a in random_rows(3, 200)]
    ids = uuids(len(rows), 3)
    assert tally(SURVEY, rows, ids) == reference_tally(rows, ids)
    assert tally(SURVEY, rows) == reference_tally(rows)  # no ids: digest 0
    assert tally(SURVEY, rows, ids).digest == set_digest(ids) != 0


def test_tally_reads_escaped_text_and_missing_answers():
    rows = ['{"practice_type": "\\u0070sychiatry", "digital_tools": ["mood_app", "none"]}', "{}", dumps(BEST)]
    t = tally(SURVEY, rows)
    assert t == reference_tally(rows)
    assert t.n == 3
    assert [r for r in t.to_json()["answered"] if r[1] == "digital_tools"] == [
        ["dedicated_clinic", "digital_tools", 1],
        ["psychiatry", "digital_tools", 1],
    ]


def test_tally_merges_subtracts_and_round_trips():
    a = [dumps(r) for r in random_rows(1, 40)]
    b = [dumps(r) for r in random_rows(2, 25)]
    ia, ib = uuids(40, 1), uuids(25, 2)
    ta, tb, tab = tally(SURVEY, a, ia), tally(SURVEY, b, ib), tally(SURVEY, a + b, ia + ib)
    assert ta + tb == tab and tb + ta == tab
    assert tab - tb == ta
    assert (ta + tb).n == 65
    assert Tally.from_json(json.loads(json.dumps(tab.to_json()))) == tab
    assert tally(SURVEY, []) + ta == ta
    assert ta + tally(SURVEY, b) != tab  # same counts, another set of ids: another tally
    with pytest.raises(ValueError):
        ta - tab


def test_published_figures_do_not_depend_on_row_order():
    rows = [dumps(r) for r in random_rows(5, 120)]
    ids = uuids(len(rows), 5)
    order = random.Random(1).sample(range(len(rows)), len(rows))
    first = publish(SURVEY, tally(SURVEY, rows, ids), RULES, False)
    again = publish(SURVEY, tally(SURVEY, [rows[i] for i in order], [ids[i] for i in order]), RULES, False)
    assert json.dumps(first) == json.dumps(again)


# ---------------------------------------------------------------------------- release


@pytest.mark.parametrize("n, published, needed", [(0, False, 10), (9, False, 1), (10, True, 0), (11, True, 0)])
def test_release_threshold(n, published, needed):
    pub = build(responses(n))
    assert (pub["published"], pub["needed"], pub["responses"]) == (published, needed, n)
    assert bool(pub["questions"]) == published and len(pub["questions"]) == (8 if published else 0)
    assert bool(pub["index"]["histogram"]) == published
    if not published:
        # Nothing at all: no count, share, percentile, group or outcome, and the page says how many more.
        assert set(pub["index"]["percentiles"].values()) == {None}
        assert pub["segment"]["groups"] == [] and pub["outcome"] is None and all_counts(pub) == []
        assert csv_rows(SURVEY, pub) == []
        assert any(f"{needed} more" in note for note in pub["notes"])
        view = you(SURVEY, MIDDLE, pub)
        assert (view["below"], view["same_band"], view["above"], view["group"]) == (None, None, None, None)
        assert view["between_percentiles"] == [None, None]


@pytest.mark.parametrize("threshold", [5, 20])
def test_release_threshold_is_a_setting(threshold):
    rules = Disclosure(release_threshold=threshold, key=KEY)
    assert build(responses(threshold - 1), rules)["published"] is False
    assert build(responses(threshold), rules)["published"] is True


def test_a_question_answered_by_too_few_shows_not_enough_yet():
    rows = responses(12)
    for r in rows[:5]:
        del r["mood_tracking"]
    q = question(build(rows), "mood_tracking")
    assert (q["n"], q["enough"], q["options"], q["segments"]) == (7, False, [], [])
    assert "not enough" in q["notes"][0].lower()
    assert not any(r["question"] == "mood_tracking" for r in csv_rows(SURVEY, build(rows)))


def test_the_body_says_how_counts_are_protected():
    pub = build(responses(12))
    assert pub["disclosure"] == RULES.ptable.describe()
    assert (pub["disclosure"]["max_change"], pub["disclosure"]["small_counts"]) == (4, "0 or 5+")
    assert any("randomised" in note and "0 or 5+" in note for note in pub["notes"])
    assert "suppressed" not in json.dumps(pub) and "withheld" not in json.dumps(pub)


# ---------------------------------------------------------------------------- perturbation


def test_the_same_responses_publish_the_same_numbers_everywhere():
    rows = random_rows(11, 90)
    ids = uuids(90, 11)
    texts = [dumps(r) for r in rows]
    t = tally(SURVEY, texts, ids)
    first = publish(SURVEY, t, RULES, True)
    assert publish(SURVEY, t, RULES, True) == first
    # as a snapshot stores its counts, and as a snapshot grows by a batch
    assert publish(SURVEY, Tally.from_json(json.loads(json.dumps(t.to_json()))), RULES, True) == first
    grown = tally(SURVEY, texts[:60], ids[:60]) + tally(SURVEY, texts[60:], ids[60:])
    assert publish(SURVEY, grown, RULES, True) == first
    # releasing results re-publishes the same numbers, never fresh noise
    assert publish(SURVEY, t, RULES, False) == first | {"released": False}
    # one cell is one number wherever it appears: a segment group's n is its option's count, an
    # outcome answer's n is that answer's count, a "you" share is the question's count
    segment = {c["key"]: c["count"] for c in question(first, SURVEY.segment)["options"]}
    assert first["segment"]["groups"], "the fixture should show a breakdown"
    for g in first["segment"]["groups"]:
        if len(g["members"]) == 1:
            assert g["n"] == segment[g["key"]]
    outcome = {c["key"]: c["count"] for c in question(first, SURVEY.outcome)["options"]}
    assert {o["key"]: o["n"] for o in first["outcome"]["options"]} == outcome


def test_another_set_of_responses_draws_afresh():
    """Same answers, other response ids: another set, so other noise (somewhere), same N."""
    rows = random_rows(12, 80)
    bodies = [build(rows, seed=seed) for seed in range(4)]
    assert len({b["responses"] for b in bodies}) == 1
    counts = [all_counts(b) for b in bodies]
    assert all(len(c) == len(counts[0]) for c in counts)
    assert len({tuple(c) for c in counts}) == 4


@pytest.mark.parametrize("seed", range(12))
def test_every_count_is_within_the_tables_change_and_capped_at_n(seed):
    rng = random.Random(seed)
    rows = random_rows(100 + seed, rng.choice([10, 14, 23, 40, 75, 150, 300]))
    pub = build(rows, seed=seed)
    k, change = RULES.k, RULES.ptable.max_change
    truth, shown = true_rows(rows, pub), published_rows(pub)
    assert set(shown) <= set(truth) and shown
    moved = 0
    for row, (n, cells) in shown.items():
        true = truth[row][1]
        assert set(cells) == set(SURVEY.question(row[0]).option_keys if row[0] != "index" else true)
        for key, cell in cells.items():
            t, p = true[key], cell["count"]
            assert isinstance(p, int) and 0 <= p <= n, (row, key, t, p, n)
            if t == 0:
                assert p == 0, (row, key)
            elif t < k:
                assert p == 0 or k <= p <= min(n, k + change), (row, key, t, p)
            elif t < 2 * k:  # 5..9 may also fall to 0, as small counts do
                assert p == 0 or max(k, t - change) <= p <= min(t + change, n), (row, key, t, p, n)
            else:
                assert min(t - change, n) <= p <= min(t + change, n), (row, key, t, p, n)
            moved += p != t
    assert moved  # the counts are perturbed


@pytest.mark.parametrize(
    "key",
    [
        "mood_tracking",
        SURVEY.segment,
    ],
)
def test_counts_are_capped_at_the_questions_n_when_some_did_not_answer(key):
    exceeded = []
    for seed in range(40):
        rows = responses(20, first_followup={"within_24h": 20})
        for r in rows[:3]:
            del r[key]
        q = question(build(rows, seed=seed), key)
        assert q["n"] == 17
        exceeded += [(seed, c["key"], c["count"]) for c in q["options"] if c["count"] > q["n"]]
    assert exceeded == []


def test_shares_and_intervals_come_from_the_published_counts():
    rows = random_rows(21, 60)
    pub = build(rows, seed=21)
    truth = true_rows(rows, pub)
    differs = 0
    for row, (n, cells) in published_rows(pub).items():
        for key, cell in cells.items():
            assert cell["percent"] == whole_percent(cell["count"], n), (row, key)
            assert cell["ci"] == wilson_ci(cell["count"], n), (row, key)
            differs += cell["percent"] != whole_percent(truth[row][1][key], n)
    assert differs  # so the shares above are not the true ones
    for q in pub["questions"]:
        widths = [c["ci"][1] - c["ci"][0] for c in q["options"]]
        assert q["caution"] == (q["n"] < 30 or max(widths) > 30)


# ---------------------------------------------------------------------------- segments


def exact_size(sizes: dict[str, int]):
    """A merged group's size with no noise: its members' true sizes added."""
    return lambda members: sum(sizes.get(m, 0) for m in members)


@pytest.mark.parametrize(
    "sizes, groups",
    [
        # one small segment joins the other option; the merged group is big enough
        (
            {"dedicated_clinic": 20, "psychiatry": 15, "anesthesia_pain": 4, "other": 8},
            [("dedicated_clinic", 20), ("psychiatry", 15), ("other", 12)],
        ),
        # the merged group is too small: the smallest shown segment joins it
        ({"dedicated_clinic": 20, "psychiatry": 12, "telehealth": 3}, [("dedicated_clinic", 20), ("other", 15)]),
        # a segment with one clinic is never shown, nor left readable from the total
        ({"dedicated_clinic": 15, "psychiatry": 14, "hospital_academic": 1}, [("dedicated_clinic", 15), ("other", 15)]),
        # on a tie the later option joins
        ({"dedicated_clinic": 12, "psychiatry": 12, "other": 1}, [("dedicated_clinic", 12), ("other", 13)]),
        # nothing left over: no merged group
        ({"dedicated_clinic": 10, "psychiatry": 10}, [("dedicated_clinic", 10), ("psychiatry", 10)]),
        # no split into two groups of 10 remains: no breakdown
        ({"dedicated_clinic": 25, "other": 3}, []),
        ({"dedicated_clinic": 15, "psychiatry": 4}, []),
        ({"other": 40}, []),
    ],
)
def test_segment_groups(sizes, groups):
    """The merging rules, on given (published) sizes, and through publish with exact counts."""
    options = SURVEY.question(SURVEY.segment).option_keys
    made = segment_groups(SURVEY, sizes, RULES, exact_size(sizes))
    assert [(g["key"], g["n"]) for g in made] == groups
    if groups:
        members = [m for g in made for m in g["members"]]
        # the groups partition the respondents: no option twice, every answered option in one
        assert len(members) == len(set(members)) and set(members) <= set(options)
        assert {o for o, size in sizes.items() if size} <= set(members)
        alone = {g["key"] for g in made if g["key"] != "other"}
        assert all(g["members"] == [o for o in options if o not in alone] for g in made if g["key"] == "other")
        for g in made:
            assert g["n"] == sum(sizes.get(m, 0) for m in g["members"]) >= RULES.segment_min
            assert g["members"] == [g["key"]] or g["key"] == "other"
    pub = build(responses(sum(sizes.values()), practice_type=sizes), EXACT)
    assert [(g["key"], g["n"]) for g in pub["segment"]["groups"]] == groups
    for q in pub["questions"]:
        expected = [] if q["key"] == SURVEY.segment else groups
        assert [(g["key"], g["n"]) for g in q["segments"]] == expected
    assert bool(groups) != any("No breakdown" in note for note in pub["notes"])


def test_segment_minimum_is_a_setting():
    sizes = {"dedicated_clinic": 12, "psychiatry": 12}
    assert segment_groups(SURVEY, sizes, Disclosure(segment_min=13), exact_size(sizes)) == []
    assert len(segment_groups(SURVEY, sizes, Disclosure(segment_min=12), exact_size(sizes))) == 2


def shifted(changes: dict[int, int]) -> Disclosure:
    """A (biased, test-only) table moving each given count by a fixed amount, every other count by 0."""
    values = np.zeros((TOP + 1, 256), dtype=np.int64)
    for count, change in changes.items():
        values[count] = change
    return Disclosure(key=KEY, ptable=PTable(values, "shifted"))


@pytest.mark.parametrize(
    "psychiatry, table, shown",
    [
        (10, EXACT, True),
        (10, shifted({10: -1}), False),  # exactly 10, published 9: merged
        (9, EXACT, False),
        (9, shifted({9: +1}), True),  # exactly 9, published 10: shown
    ],
)
def test_segment_groups_are_decided_on_published_sizes(psychiatry, table, shown):
    sizes = {"dedicated_clinic": 20, "psychiatry": psychiatry, "telehealth": 12}
    pub = build(responses(sum(sizes.values()), practice_type=sizes), table)
    published = {c["key"]: c["count"] for c in question(pub, SURVEY.segment)["options"]}
    groups = {g["key"]: g for g in pub["segment"]["groups"]}
    if shown:
        assert list(groups) == ["dedicated_clinic", "psychiatry", "telehealth"]
        assert groups["psychiatry"]["n"] == published["psychiatry"] == 10
    else:
        # psychiatry merges into "other"; too small alone, it takes the smallest shown segment with it
        assert list(groups) == ["dedicated_clinic", "other"]
        assert {"psychiatry", "telehealth"} <= set(groups["other"]["members"])
        # its size is one perturbed count of its true size (this table leaves 21 and 22 alone)
        assert groups["other"]["n"] == psychiatry + 12


def test_a_merged_groups_size_is_counted_once():
    """Three practice types of 3, 3 and 4 clinics, each published as 5: the merged group holds 10
    clinics, and its n is one perturbed count of 10, not 5 + 5 + 5; its shares are over that n."""
    sizes = {"dedicated_clinic": 20, "psychiatry": 15, "anesthesia_pain": 3, "telehealth": 3, "other": 4}
    pub = build(responses(sum(sizes.values()), practice_type=sizes), shifted({3: +2, 4: +1}))
    published = {c["key"]: c["count"] for c in question(pub, SURVEY.segment)["options"]}
    assert [published[o] for o in ("anesthesia_pain", "telehealth", "other")] == [5, 5, 5]
    groups = {g["key"]: g for g in pub["segment"]["groups"]}
    assert set(groups) == {"dedicated_clinic", "psychiatry", "other"}
    assert groups["other"]["n"] == 10
    for q in pub["questions"]:
        for segment in q["segments"]:
            assert segment["n"] == groups[segment["key"]]["n"]
            if q["type"] == "single" and segment["key"] == "other":
                assert sum(c["count"] for c in segment["options"]) == 10


def test_a_merged_group_too_small_by_its_own_count_takes_the_smallest_shown():
    """3, 3 and 2 clinics publish as 5, 5 and 5, but the group they make is one count of 8, below
    10: the smallest shown segment joins it, and the group's n is one count of 23, not a sum."""
    sizes = {"dedicated_clinic": 20, "psychiatry": 15, "anesthesia_pain": 3, "telehealth": 3, "other": 2}
    pub = build(responses(sum(sizes.values()), practice_type=sizes), shifted({3: +2, 2: +3}))
    groups = {g["key"]: g for g in pub["segment"]["groups"]}
    assert set(groups) == {"dedicated_clinic", "other"}
    assert "psychiatry" in groups["other"]["members"] and groups["other"]["n"] == 23


def test_segment_groups_follow_the_shipped_tables_noise():
    """With the shipped table, a segment of exactly 10 is shown in some snapshots and merged in
    others, as its published size says; one of exactly 9 likewise."""
    seen = Counter()
    for exact in (10, 9):
        sizes = {"dedicated_clinic": 20, "psychiatry": exact, "telehealth": 12}
        rows = responses(sum(sizes.values()), practice_type=sizes)
        for seed in range(40):
            pub = build(rows, seed=seed)
            size = next(c["count"] for c in question(pub, SURVEY.segment)["options"] if c["key"] == "psychiatry")
            keys = [g["key"] for g in pub["segment"]["groups"]]
            assert ("psychiatry" in keys) == (size >= 10), (exact, seed, size, keys)
            seen[exact, size >= 10] += 1
    assert set(seen) == {(10, True), (10, False), (9, True), (9, False)}, seen


def test_a_participants_group_is_their_published_segment():
    sizes = {"dedicated_clinic": 20, "psychiatry": 15, "telehealth": 4, "other": 12}
    pub = build(responses(51, practice_type=sizes), seed=3)
    groups = {g["key"]: g for g in pub["segment"]["groups"]}
    assert set(groups) == {"dedicated_clinic", "psychiatry", "other"}
    for practice, key in [
        ("psychiatry", "psychiatry"),
        ("telehealth", "other"),
        ("other", "other"),
        ("anesthesia_pain", "other"),
    ]:
        group = you(SURVEY, MIDDLE | {"practice_type": practice}, pub)["group"]
        assert (group["key"], group["n"]) == (key, groups[key]["n"])
        expected = [
            {"key": q["key"], "type": q["type"], "n": s["n"], "caution": s["caution"], "options": s["options"]}
            for q in pub["questions"]
            for s in q["segments"]
            if s["key"] == key
        ]
        assert group["questions"] == expected and len(expected) == len(SURVEY.questions) - 1
    no_breakdown = build(responses(30, practice_type={"dedicated_clinic": 27, "other": 3}))
    assert no_breakdown["segment"]["groups"] == []
    assert you(SURVEY, MIDDLE, no_breakdown)["group"] is None
    assert you(SURVEY, {k: v for k, v in MIDDLE.items() if k != SURVEY.segment}, pub)["group"] is None


# ---------------------------------------------------------------------------- percentiles


@pytest.mark.parametrize(
    "n, k, shown",
    [
        (10, 5, {"50"}),
        (19, 5, {"50"}),
        (20, 5, {"25", "50", "75"}),
        (49, 5, {"25", "50", "75"}),
        (50, 5, {"10", "25", "50", "75", "90"}),
        (21, 11, set()),
        (22, 11, {"50"}),
    ],
)
def test_percentile_rule(n, k, shown):
    """p is shown only if min(p, 100 - p)% of N is at least k: never the minimum or maximum."""
    for seed in range(3):
        pub = build(responses(n), Disclosure(k=k, key=KEY), seed=seed)
        assert {p for p, v in pub["index"]["percentiles"].items() if v is not None} == shown


def reference_percentiles(histogram: list[dict], n: int, k: int) -> dict:
    """Linear interpolation within the published 10-point bins (the last bin is 90-100)."""
    counts = [b["count"] for b in histogram]
    total, out = sum(counts), {}
    for p in (10, 25, 50, 75, 90):
        if min(p, 100 - p) * n < 100 * k or not total:
            out[str(p)] = None
            continue
        target, before = total * p / 100, 0
        for b, c in zip(histogram, counts):
            if c and before + c >= target:
                value = b["from"] + (target - before) / c * (b["to"] + 1 - b["from"])
                break
            before += c
        out[str(p)] = round(min(max(value, 0), 100), 1)
    return out


def test_percentile_values_interpolate_within_bins():
    pub = build(responses(10, WORST) + responses(10, MIDDLE), EXACT)
    # ten in 0-9, ten in 40-49: the 25th is halfway into the first bin, the median at its top,
    # the 75th halfway into 40-49
    assert pub["index"]["percentiles"] == {"10": None, "25": 5.0, "50": 10.0, "75": 45.0, "90": None}
    pub = build(responses(12, BEST) + responses(8, MIDDLE), EXACT)
    # eight in 40-49, twelve in 90-100 (11 points wide): the median is 2/12 into that bin, the
    # 75th 7/12 into it
    assert (pub["index"]["percentiles"]["50"], pub["index"]["percentiles"]["75"]) == (91.8, 96.4)


def test_percentiles_come_from_the_published_histogram():
    moved = 0
    for seed, n in enumerate([30, 60, 120, 250, 40, 90]):
        rows = random_rows(200 + seed, n)
        index = build(rows, seed=seed)["index"]
        assert index["n"] == n
        assert index["percentiles"] == reference_percentiles(index["histogram"], n, RULES.k)
        true = Counter(bin_of(SURVEY.index_of(r)) for r in rows)
        exact = reference_percentiles([b | {"count": true[i]} for i, b in enumerate(index["histogram"])], n, RULES.k)
        moved += index["percentiles"] != exact
    assert moved  # the noise moves percentiles: they are not the exact ones


def test_outcome_against_index():
    rows = responses(10, WORST) + responses(12, BEST)
    out = build(rows, EXACT)["outcome"]
    by_key = {o["key"]: o for o in out["options"]}
    assert out["question"] == "followup_completion"
    # ten at 0: the median is halfway into 0-9; twelve at 100: halfway into 90-100
    assert by_key["not_tracked"]["n"] == 10 and by_key["not_tracked"]["percentiles"]["50"] == 5.0
    assert by_key["pct_90_plus"]["n"] == 12 and by_key["pct_90_plus"]["percentiles"]["50"] == 95.5
    assert by_key["pct_90_plus"]["percentiles"]["25"] is None  # 25% of 12 is 3 < k
    assert by_key["pct_50_74"]["n"] == 0 and set(by_key["pct_50_74"]["percentiles"].values()) == {None}
    for seed in range(5):  # with noise: each answer's n is its published count
        pub = build(random_rows(300 + seed, 80), seed=seed)
        counts = {c["key"]: c["count"] for c in question(pub, SURVEY.outcome)["options"]}
        for o in pub["outcome"]["options"]:
            assert o["n"] == counts[o["key"]]
            shown = {p for p, v in o["percentiles"].items() if v is not None}
            assert all(min(int(p), 100 - int(p)) * o["n"] >= 100 * RULES.k for p in shown)


# ---------------------------------------------------------------------------- you


def test_you_reads_the_published_body_only():
    assert list(inspect.signature(publishing.you).parameters) == ["survey", "answers", "published"]
    assert inspect.signature(publishing.you).parameters["published"].annotation == "Published"
    assert inspect.signature(publishing.you).return_annotation == "You" == You.__name__
    pub = build(random_rows(31, 60), seed=31)
    view = you(SURVEY, MIDDLE, pub)
    assert you(SURVEY, MIDDLE, json.loads(json.dumps(pub))) == view  # plain JSON is all it needs
    assert set(view) == {"answers", "index", "below", "same_band", "above", "between_percentiles", "raise", "group"}
    # Change the published histogram and "you" follows it.
    moved = json.loads(json.dumps(pub))
    for b in moved["index"]["histogram"]:
        b["count"] = 10 if b["from"] < 40 else 0
    assert (you(SURVEY, MIDDLE, moved)["below"], you(SURVEY, MIDDLE, moved)["above"]) == (100, 0)


@pytest.mark.parametrize(
    "groups, mine, expected",
    [
        # MIDDLE (48) among 5 at 0, 6 at 48 (itself included) and 5 at 100: 31.25 / 37.5 / 31.25
        (((5, WORST), (6, MIDDLE), (5, BEST)), MIDDLE, (31, 38, 31)),
        # at index 0 nobody can be lower: 1 / 16 in the band, 15 / 16 above
        (((15, MIDDLE), (1, WORST)), WORST, (0, 6, 94)),
        (((12, MIDDLE), (5, BEST)), BEST, (71, 29, 0)),  # 70.6 / 29.4 / 0
    ],
)
def test_you_standing_against_the_published_histogram(groups, mine, expected):
    rows = [a for n, a in groups for _ in range(n)]
    out = you(SURVEY, mine, build(rows, EXACT))
    assert (out["below"], out["same_band"], out["above"]) == expected
    assert out["index"] == SURVEY.index_of(mine) and out["answers"] == mine


@pytest.mark.parametrize("seed", range(8))
def test_you_standing_is_the_published_histograms_shares(seed):
    rng = random.Random(seed)
    rows = random_rows(400 + seed, 50)
    pub = build(rows, seed=seed)
    counts = [b["count"] for b in pub["index"]["histogram"]]
    mine = rng.choice(rows)
    out = you(SURVEY, mine, pub)
    band = bin_of(out["index"])
    three = [sum(counts[:band]), counts[band], sum(counts[band + 1 :])]
    shares = [out["below"], out["same_band"], out["above"]]
    assert sum(shares) == 100
    assert all(abs(s - 100 * c / sum(three)) < 1 for s, c in zip(shares, three))
    assert [s == 0 for s in shares] == [c == 0 for c in three]


def test_between_percentiles_brackets_the_index():
    pub = build(responses(10, WORST) + responses(10, MIDDLE), EXACT)  # 25th 5.0, median 10.0, 75th 45.0
    ten = {**WORST, "digital_tools": ["mood_app"]}
    assert SURVEY.index_of(ten) == 10
    assert you(SURVEY, WORST, pub)["between_percentiles"] == [None, 25]
    assert you(SURVEY, ten, pub)["between_percentiles"] == [50, 75]  # 10.0 <= 10 < 45.0
    assert you(SURVEY, MIDDLE, pub)["between_percentiles"] == [75, None]
    for seed in range(10):
        rows = random_rows(500 + seed, 60)
        pub = build(rows, seed=seed)
        shown = {int(p): v for p, v in pub["index"]["percentiles"].items() if v is not None}
        for mine in rows[:10]:
            low, high = you(SURVEY, mine, pub)["between_percentiles"]
            index = SURVEY.index_of(mine)
            assert low is None or shown[low] <= index
            assert high is None or index < shown[high]
            assert not [p for p, v in shown.items() if (low is None or p > low) and (high is None or p < high)]


def raise_of(view: dict) -> list[tuple]:
    return [(e["question"], e["options"], e["points"]) for e in view["raise"]]


DIGITAL = ["mood_app", "grounding_videos", "online_community", "patient_portal", "automated_reminders"]
INTEGRATION = [
    "individual_integration",
    "group_integration",
    "peer_community",
    "guided_reflection",
    "external_referral",
]


@pytest.mark.parametrize(
    "mine, expected",
    [
        (
            MIDDLE,
            [
                ("after_hours", ["clinician_24_7", "on_call"], 15),
                ("first_followup", ["within_24h", "within_48h"], 10),
                ("mood_tracking", ["every_touchpoint", "regular_intervals"], 10),
                *[("digital_tools", [o], 10) for o in DIGITAL],
                ("discharge_checks", ["emotional_checkin"], 7),
            ],
        ),
        (
            WORST,
            [
                ("first_followup", ["within_24h", "within_48h"], 20),
                ("after_hours", ["clinician_24_7", "on_call"], 20),
                ("mood_tracking", ["every_touchpoint", "regular_intervals"], 15),
                *[("integration_support", [o], 15) for o in INTEGRATION],
                *[("digital_tools", [o], 10) for o in DIGITAL],
                ("discharge_checks", ["vitals"], 8),
                ("discharge_checks", ["emotional_checkin"], 7),
                ("integration_support", [], 5),
            ],
        ),
        # one integration option: only the "two or more" bonus is left there
        (BEST | {"integration_support": ["peer_community"]}, [("integration_support", [], 5)]),
        (BEST, []),
    ],
)
def test_what_would_raise_the_index(mine, expected):
    pub = build(random_rows(41, 60) + [mine], seed=41)
    view = you(SURVEY, mine, pub)
    assert raise_of(view) == expected
    n = pub["responses"]
    for e in view["raise"]:
        if not e["options"]:  # a bonus no single option carries
            assert e["percent"] is None
            continue
        cells = {c["key"]: c["count"] for c in question(pub, e["question"])["options"]}
        assert e["percent"] == whole_percent(min(n, sum(cells[o] for o in e["options"])), n), e


def test_a_clinic_earning_every_point_is_given_no_list():
    pub = build(responses(20, BEST))
    view = you(SURVEY, BEST, pub)
    assert view["index"] == 100 and view["raise"] == []


def test_clinics_like_yours_beside_all_clinics_reads_published_shares_only():
    sizes = {"dedicated_clinic": 20, "psychiatry": 15, "telehealth": 4, "other": 12}
    rows = responses(51, practice_type=sizes)
    rng = random.Random(5)
    for row in rows:  # vary the answers so that group and overall shares differ
        row["after_hours"] = rng.choice(["clinician_24_7", "on_call", "crisis_line", "no_pathway"])
        row["discharge_checks"] = rng.choice([["vitals"], ["vitals", "emotional_checkin"], ["none"]])
    pub = build(rows, seed=3)
    mine = MIDDLE | {"practice_type": "psychiatry"}
    view = you(SURVEY, mine, pub)
    beside = beside_group(SURVEY, view, pub)
    group = {q["key"]: {c["key"]: c for c in q["options"]} for q in view["group"]["questions"]}
    n_group = {q["key"]: q["n"] for q in view["group"]["questions"]}
    # One group share per "raise" entry: the group's published counts added, as the overall share is.
    assert len(beside["raise"]) == len(view["raise"])
    for entry, share in zip(view["raise"], beside["raise"]):
        if not entry["options"]:
            assert share is None  # a bonus no option carries has no share
            continue
        n = n_group[entry["question"]]
        assert share == whole_percent(min(n, sum(group[entry["question"]][o]["count"] for o in entry["options"])), n)
    # One row per chosen option of every question but the segment, with both published shares.
    expected = [(q.key, o) for q in SURVEY.questions if q.key != SURVEY.segment for o in as_tuple(mine[q.key])]
    assert [(r["question"], r["option"]) for r in beside["answers"]] == expected
    for r in beside["answers"]:
        cells = {c["key"]: c for c in question(pub, r["question"])["options"]}
        assert r["percent"] == cells[r["option"]]["percent"]
        assert r["group"] == group[r["question"]][r["option"]]["percent"]
    # Without a published breakdown there is no group share, and nothing is made up.
    flat = build(responses(30, practice_type={"dedicated_clinic": 27, "other": 3}))
    alone = beside_group(SURVEY, you(SURVEY, MIDDLE, flat), flat)
    assert all(r["group"] is None for r in alone["answers"]) and set(alone["raise"]) == {None}
    assert all(r["percent"] is not None for r in alone["answers"])


# ---------------------------------------------------------------------------- csv


def test_csv_rows_columns_and_order():
    pub = build(random_rows(7, 80))
    rows = csv_rows(SURVEY, pub)
    assert rows and all(tuple(r) == CSV_COLUMNS for r in rows)
    assert "suppressed" not in CSV_COLUMNS
    qorder = {q.key: i for i, q in enumerate(SURVEY.questions)} | {"index": len(SURVEY.questions)}
    oorder = {(q.key, o): i for q in SURVEY.questions for i, o in enumerate(q.option_keys)}
    oorder |= {("index", f"{lo}-{hi}"): i for i, (lo, hi) in enumerate(publishing.BINS)}
    sorder = {"": -1} | {g["key"]: i for i, g in enumerate(pub["segment"]["groups"])}
    keys = [(qorder[r["question"]], oorder[r["question"], r["option"]], sorder[r["segment"]]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert [r["option"] for r in rows if r["question"] == "index"] == [
        "0-9",
        "10-19",
        "20-29",
        "30-39",
        "40-49",
        "50-59",
        "60-69",
        "70-79",
        "80-89",
        "90-100",
    ]
    assert any(r["segment"] for r in rows)
    # one row per published cell, with the body's (perturbed) numbers
    shown = published_rows(pub)
    assert len(rows) == sum(len(cells) for _, cells in shown.values())
    for r in rows:
        assert (r["survey"], r["version"]) == ("pulse-aftercare", 1)
        n, cells = shown[r["question"], r["segment"]]
        cell = cells[r["option"]]
        assert (r["n"], r["count"], r["percent"], [r["ci_low"], r["ci_high"]]) == (
            n,
            cell["count"],
            cell["percent"],
            cell["ci"],
        )
        assert all(isinstance(r[c], int) for c in ("n", "count", "percent", "ci_low", "ci_high"))
