"""The count state: merging, JSON and pandas views agree with a recount, whatever the input order."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survey_app import demo
from survey_app.pipeline.tallies import Tally, tally
from survey_app.questions import load_survey

SURVEY = load_survey(Path(__file__).resolve().parents[1] / "questions.yaml")


def rows(n: int, seed: int) -> list[str]:
    answers = demo.synthetic_answers(SURVEY, n, np.random.default_rng(seed))
    return [json.dumps(a, separators=(",", ":"), sort_keys=True) for a in answers]


@pytest.mark.parametrize("small", [0, 1, 5, 300])
def test_adding_a_few_responses_equals_a_recount(small):
    base, new = rows(500, 1), rows(small, 2)
    total = tally(SURVEY, base) + tally(SURVEY, new)
    assert total == tally(SURVEY, base + new)
    assert total.to_json() == tally(SURVEY, base + new).to_json()  # same keys, same order
    assert total - tally(SURVEY, new) == tally(SURVEY, base)
    assert (total - total).n == 0 and total - total == tally(SURVEY, [])


def test_to_json_is_sorted_by_key_and_has_no_zeros():
    data = tally(SURVEY, rows(200, 3)).to_json()
    for table in data.values():
        keys = [r[:-1] for r in table]
        assert keys == sorted(keys) and len({tuple(k) for k in keys}) == len(keys)
        assert all(isinstance(r[-1], int) and r[-1] > 0 for r in table)


def test_from_json_normalises_rows_it_did_not_write():
    t = tally(SURVEY, rows(150, 4))
    messy = {}
    for name, table in t.to_json().items():
        # Shuffled, each count split in two, zero rows added, numbers as floats.
        split = [[*r[:-1], c] for r in table for c in (r[-1] - 1, 1)]
        messy[name] = random.Random(5).sample(split, len(split))
    messy["index"] = [[s, o, float(v), float(c)] for s, o, v, c in messy["index"]]
    assert Tally.from_json(messy) == t
    assert Tally.from_json(json.loads(json.dumps(t.to_json()))) == t
    assert Tally.from_json({}) == tally(SURVEY, [])


def test_frames_match_the_counts():
    t = tally(SURVEY, rows(120, 6))
    data = t.to_json()
    for name, keys in [("options", ["segment", "question", "option"]), ("answered", ["segment", "question"]),
                       ("index", ["segment", "outcome", "value"])]:
        frame = getattr(t, name)
        assert list(frame.columns) == [*keys, "count"]
        assert frame.values.tolist() == data[name]
        assert frame["count"].dtype == np.int64 and isinstance(frame.index, pd.RangeIndex)
    assert t.index["value"].dtype == np.int64
    # A Tally built from frames is normalised the same way.
    assert Tally(t.options[::-1], pd.concat([t.answered, t.answered]), t.index) == Tally(
        t.options, t.answered.assign(count=t.answered["count"] * 2), t.index)


def test_removing_uncounted_responses_fails():
    a, b = tally(SURVEY, rows(30, 7)), tally(SURVEY, rows(3, 8))
    with pytest.raises(ValueError):
        a - b
    with pytest.raises(ValueError):
        b - a
