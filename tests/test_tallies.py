"""The count state: merging, JSON and pandas views agree with a recount, whatever the input order;
the digest of the set of responses counted travels with the counts."""

from __future__ import annotations

import json
import random
import uuid

import numpy as np
import pandas as pd
import pytest

from survey_app import demo
from survey_app.domain_errors import Invalid
from survey_app.pipeline import tallies
from survey_app.pipeline.tallies import Tally, tally
from survey_app.questions import load_survey

from .helpers import ROOT

SURVEY = load_survey(ROOT / "questions.yaml")
TABLES = ("options", "answered", "index")


def rows(n: int, seed: int) -> list[str]:
    answers = demo.synthetic_answers(SURVEY, n, np.random.default_rng(seed))
    return [json.dumps(a, separators=(",", ":"), sort_keys=True) for a in answers]


def ids(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


@pytest.mark.parametrize("small", [0, 1, 5, 300])
def test_adding_a_few_responses_equals_a_recount(small):
    base, new = rows(500, 1), rows(small, 2)
    base_ids, new_ids = ids(500, 1), ids(small, 2)
    total = tally(SURVEY, base, base_ids) + tally(SURVEY, new, new_ids)
    recount = tally(SURVEY, base + new, base_ids + new_ids)
    assert total == recount
    assert total.to_json() == recount.to_json()  # same keys, same order, same digest
    assert total - tally(SURVEY, new, new_ids) == tally(SURVEY, base, base_ids)
    assert (total - total).n == 0 and total - total == tally(SURVEY, [])
    assert (total - total).digest == 0


def test_to_json_is_sorted_by_key_and_has_no_zeros():
    data = tally(SURVEY, rows(200, 3), ids(200, 3)).to_json()
    assert set(data) == {*TABLES, "ids"}
    for name in TABLES:
        keys = [r[:-1] for r in data[name]]
        assert keys == sorted(keys) and len({tuple(k) for k in keys}) == len(keys)
        assert all(isinstance(r[-1], int) and r[-1] > 0 for r in data[name])


def test_to_json_carries_the_digest_of_the_ids():
    some = ids(200, 3)
    t = tally(SURVEY, rows(200, 3), some)
    data = json.loads(json.dumps(t.to_json()))
    assert data["ids"] == f"{sum(uuid.UUID(x).int for x in some) % 2**128:032x}"
    assert len(data["ids"]) == 32 and int(data["ids"], 16) == t.digest
    assert Tally.from_json(data).digest == t.digest
    assert tally(SURVEY, rows(200, 3)).to_json()["ids"] == "0" * 32  # no ids given: digest 0
    # the order of the responses does not matter; which responses are counted does
    order = random.Random(4).sample(range(200), 200)
    shuffled = tally(SURVEY, [rows(200, 3)[i] for i in order], [some[i] for i in order])
    assert shuffled.to_json() == t.to_json()
    other = tally(SURVEY, rows(200, 3), ids(200, 4))
    assert other.to_json()["ids"] != data["ids"] and other != t
    assert {k: v for k, v in other.to_json().items() if k != "ids"} == {k: v for k, v in data.items() if k != "ids"}


def test_from_json_normalises_rows_it_did_not_write():
    t = tally(SURVEY, rows(150, 4), ids(150, 4))
    data = t.to_json()
    messy = {"ids": data["ids"]}
    for name in TABLES:
        # Shuffled, each count split in two, zero rows added, numbers as floats.
        split = [[*r[:-1], c] for r in data[name] for c in (r[-1] - 1, 1)]
        messy[name] = random.Random(5).sample(split, len(split))
    messy["index"] = [[s, o, float(v), float(c)] for s, o, v, c in messy["index"]]
    assert Tally.from_json(messy) == t
    assert Tally.from_json(json.loads(json.dumps(t.to_json()))) == t
    assert Tally.from_json({"ids": "0" * 32}) == tally(SURVEY, [])
    # counts written before digests existed: read, with no digest
    old = Tally.from_json({name: data[name] for name in TABLES})
    assert old.digest is None and old.n == t.n and old.options.values.tolist() == data["options"]


def test_frames_match_the_counts():
    t = tally(SURVEY, rows(120, 6), ids(120, 6))
    data = t.to_json()
    for name, keys in [
        ("options", ["segment", "question", "option"]),
        ("answered", ["segment", "question"]),
        ("index", ["segment", "outcome", "value"]),
    ]:
        frame = getattr(t, name)
        assert list(frame.columns) == [*keys, "count"]
        assert frame.values.tolist() == data[name]
        assert frame["count"].dtype == np.int64 and isinstance(frame.index, pd.RangeIndex)
    assert t.index["value"].dtype == np.int64
    # A Tally built from frames is normalised the same way, and carries the digest it is given.
    assert Tally(t.options[::-1], pd.concat([t.answered, t.answered]), t.index, t.digest) == Tally(
        t.options, t.answered.assign(count=t.answered["count"] * 2), t.index, t.digest
    )
    assert Tally(t.options, t.answered, t.index, t.digest) == t
    assert Tally(t.options, t.answered, t.index) != t  # same counts, another set: not the same tally


def test_removing_uncounted_responses_fails():
    a, b = tally(SURVEY, rows(30, 7), ids(30, 7)), tally(SURVEY, rows(3, 8), ids(3, 8))
    with pytest.raises(ValueError):
        a - b
    with pytest.raises(ValueError):
        b - a


def test_each_distinct_text_counted_once_gives_the_counts_of_every_row():
    base = rows(300, 3)
    repeated = base * 20
    random.Random(4).shuffle(repeated)
    once = tally(SURVEY, base)
    expected = once
    for _ in range(19):
        expected = expected + once
    assert tally(SURVEY, repeated) == expected and expected.n == 6000


def test_chunks_give_the_same_tally_as_one_list_when_distinct_texts_overflow(monkeypatch):
    # Flushing the distinct texts part-way (here every 50) must not change a count or the digest.
    answers, keys = rows(400, 5) * 3, ids(1200, 5)
    whole = tally(SURVEY, answers, keys)
    monkeypatch.setattr(tallies, "CHUNK_ROWS", 50)
    chunks = [(keys[i : i + 70], answers[i : i + 70]) for i in range(0, 1200, 70)]
    assert tallies.tally_chunks(SURVEY, chunks) == whole
    assert tallies.tally_chunks(SURVEY, chunks).to_json() == whole.to_json()


# ---------------------------------------------------------------------------- answers it cannot count


def _with(**answers) -> str:
    """A stored answer set: a valid one with some answers replaced (as damaged data could be)."""
    valid = json.loads(rows(1, 9)[0])
    return json.dumps(valid | answers, separators=(",", ":"), sort_keys=True)


@pytest.mark.parametrize(
    "question, value, problem",
    [
        ("practice_type", 5, "must be one option key (a string)"),  # the segment
        ("first_followup", 1.5, "must be one option key (a string)"),
        ("first_followup", None, "must be one option key (a string)"),
        ("first_followup", ["within_24h"], "must be one option key (a string)"),
        ("first_followup", "soon", "unknown option 'soon'"),
        ("first_followup", {"x": "within_24h"}, "must be one option key (a string)"),
        ("digital_tools", "mood_app", "must be a list of option keys"),
        ("digital_tools", [], "must hold at least one option key"),
        ("digital_tools", ["mood_app", 3], "must be a list of option keys"),
        ("digital_tools", [3, "mood_app"], "must be a list of option keys"),
        ("digital_tools", ["mood_app", "mood_app"], "an option is repeated"),
        ("digital_tools", ["mood_app", "nope"], "unknown option 'nope'"),
        ("digital_tools", [["mood_app"]], "must be a list of option keys"),
    ],
)
def test_the_tally_refuses_an_answer_it_cannot_count(question, value, problem):
    """Today's submissions are validated, so only damaged stored data gets here: it is refused,
    naming the question, instead of counting as answered with no option (or a wrong one)."""
    assert SURVEY.question(question) is not None
    good = rows(50, 4)
    for at in (0, 25, 50):
        with pytest.raises(Invalid) as caught:
            tally(SURVEY, [*good[:at], _with(**{question: value}), *good[at:]])
        assert caught.value.reason == "stored_answer"
        assert caught.value.data == {
            "survey": f"{SURVEY.id}@{SURVEY.version}",
            "question": question,
            "problem": problem,
        }
        assert caught.value.fields == {question: problem}


def test_the_tally_refuses_a_question_answered_twice_in_one_response():
    text = _with(first_followup="within_24h")
    twice = text[:-1] + ',"first_followup":"within_48h"}'
    with pytest.raises(Invalid) as caught:
        tally(SURVEY, [twice])
    assert caught.value.data["question"] == "first_followup"
    assert caught.value.data["problem"] == "answered twice in one response"


@pytest.mark.parametrize(
    "fmt",
    [
        lambda a: json.dumps(a, indent=3),
        lambda a: json.dumps(a, separators=(" ,", ":  ")),
        lambda a: json.dumps({k: v[::-1] if isinstance(v, list) else v for k, v in a.items()}),
    ],
    ids=["indent", "spaced", "unsorted"],
)
def test_answers_it_can_count_are_counted_however_they_are_written(fmt):
    """Whitespace, an unsorted list, an exclusive option beside others: counted as they are."""
    answers = [json.loads(r) for r in rows(300, 6)] + [json.loads(_with(digital_tools=["mood_app", "none"]))]
    plain = [json.dumps(a, separators=(",", ":"), sort_keys=True) for a in answers]
    assert tally(SURVEY, [fmt(a) for a in answers]) == tally(SURVEY, plain)
