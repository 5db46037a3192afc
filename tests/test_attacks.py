"""Disclosure tested by attack: the strongest attacker we know (tests/attacker.py) tries to read one clinic.

The attacker submits responses of its own, triggers snapshots before and after the victim's
response, and combines every reading exactly with the shipped table (see tests/attacker.py).
The suite runs one row, 20 other clinics and a budget of 7x their number, over TRIALS seeded
trials at every split of the budget, and holds the best split to PRODUCT.md's bar; the same
attack on exact counts (the control) must beat the bar, so the test can fail. Every row, the
close variant and the run end to end through `pulse serve` are `python benchmarks/attacks.py`,
which prints the table SECURITY.md quotes.
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from survey_app import demo
from survey_app.pipeline import publishing
from survey_app.pipeline.disclosure import Disclosure
from survey_app.pipeline.tallies import Tally, tally

from . import attacker
from .attacker import SURVEY, Row

RULES = Disclosure(key=b"attack-test-noise-key")
ROW = Row(others=20, budget=140)
# Enough to tell an edge of +45 points from one of +10 (a standard error of about 2.5 points).
TRIALS = 60
SEED0 = 20_000


def counted(answer_sets: list[dict], rng) -> Tally:
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in answer_sets]
    return tally(SURVEY, [json.dumps(a) for a in answer_sets], ids)


def report(name: str, results: list[attacker.Result]) -> attacker.Result:
    top = attacker.best(results)
    for r in results:
        print(
            f"\n[{name}] split {r.split[0]} before / {r.split[1]} after the victim, {r.own} own responses, "
            f"{r.snapshots} snapshots: {r.rate:.1f}% vs {r.plain:.1f}% ({r.edge:+.1f}; without groups "
            f"{r.edge_alone:+.1f}), whole {r.whole}/{r.trials}, 6+ of 8 {r.six}/{r.trials}"
            f"{'   <- best' if r is top else ''}"
        )
    return top


@pytest.fixture(scope="module")
def control() -> list[attacker.Result]:
    return attacker.run_row(ROW, TRIALS, attacker.exact_counts(RULES), SEED0)


def test_the_strongest_attacker_stays_near_a_plain_guess():
    top = report(f"{ROW.name}, shipped table", attacker.run_row(ROW, TRIALS, RULES, SEED0))
    assert top.edge <= attacker.BAR_EDGE
    assert top.whole * 300 <= attacker.BAR_WHOLE_PER_300 * top.trials
    assert top.six <= attacker.BAR_SIX * top.trials


def test_the_attack_wins_with_exact_counts(control):
    """The test has teeth: with a table that adds nothing the same attacker reads the victim."""
    top = report(f"{ROW.name}, exact counts", control)
    assert top.edge > attacker.BAR_EDGE and top.whole * 300 > attacker.BAR_WHOLE_PER_300 * top.trials


def test_the_attacker_models_what_is_published():
    """Every count the pipeline publishes is possible under the attacker's model of it (the table,
    the caps, which cells the groups read) given the true counts: the attacker is not fooling
    itself, so its odds are the product's."""
    lik = attacker.likelihood(RULES.ptable, attacker.top_count(ROW))
    for seed in range(3):
        victim, others = attacker.clinics(ROW, np.random.default_rng(SEED0 + seed))
        _, splits = attacker.simulate(ROW, SEED0 + seed, RULES)
        for readings in splits:
            for reading in readings:
                everyone = others + reading.own + ([victim] if reading.victim else [])
                assert attacker.impossible(reading, everyone, lik) == []
        # One reading for each of the groups and cells the attacker combines: S0 holds no own response.
        assert splits[0][0].own == [] and not splits[0][0].victim and splits[0][-1].victim


def test_the_plan_follows_the_snapshot_rule():
    """Each split spends at most the budget, the victim's response triggers its snapshot, and
    each snapshot needs the product's number of new responses."""
    for row in (ROW, Row(20, 20), Row(60, 900, close=True)):
        plans = attacker.plan(row)
        assert plans
        for before, pad, after in plans:
            n = row.others
            for k in before:
                assert k == attacker.needed(n)
                n += k
            if row.close:
                assert pad < attacker.needed(n)
            else:
                assert pad + 1 == attacker.needed(n)
            n += pad + 1
            for k in after:
                assert k == attacker.needed(n)
                n += k
            assert sum(before) + pad + sum(after) <= row.budget


def test_many_keys_tell_nothing_beyond_the_published_page():
    """Keys at indexes 0, 20 and 50: "you" is computed from the published body alone, so the
    answers it gives are functions of that body: the finest resolution is a published bin."""
    rng = np.random.default_rng(7)
    others = list(demo.synthetic_answers(SURVEY, 40, rng))
    published = publishing.publish(SURVEY, counted(others, rng), RULES, True)
    histogram = [b.count for b in published.index.histogram]
    lowest = {q.key: q.options[-1].key if q.type == "single" else [q.options[-1].key] for q in SURVEY.questions}
    probes = [
        lowest,
        lowest | {"first_followup": "within_24h"},
        lowest | {"first_followup": "within_24h", "after_hours": "on_call", "digital_tools": ["mood_app"]},
    ]
    indexes = []
    for answers in probes:
        view = publishing.you(SURVEY, answers, published).to_json()
        band = min(view["index"] // 10, 9)
        expected = publishing._whole([sum(histogram[:band]), histogram[band], sum(histogram[band + 1 :])])
        assert [view["below"], view["same_band"], view["above"]] == expected
        indexes.append(view["index"])
        # Nothing in "you" but the participant's own answers and figures of the published body.
        assert set(view) == {"answers", "index", "below", "same_band", "above", "between_percentiles", "raise", "group"}
    assert indexes == [0, 20, 50]
    print(
        f"\n[many keys] keys at indexes {indexes}: 'you' is a function of the published histogram, "
        "so holding them reads nothing finer than a published 10-point bin"
    )


@pytest.mark.slow
def test_the_attack_end_to_end_through_pulse_serve(tmp_path):
    """One trial of the suite's row with nothing but the public HTTP API of a real `pulse serve`:
    the attacker reads the snapshots it expects, every published count is one its model allows
    for the true counts (so the simulated odds are the served product's), and it guesses."""
    victim, readings, outcome = attacker.end_to_end(tmp_path, ROW, seed=2026, before=1)
    _, others = attacker.clinics(ROW, np.random.default_rng(2026))
    lik = attacker.likelihood(Disclosure().ptable, attacker.top_count(ROW))
    for reading in readings:
        everyone = others + reading.own + ([victim] if reading.victim else [])
        assert attacker.impossible(reading, everyone, lik) == []
    assert [r.victim for r in readings].count(True) >= 1 and readings[0].own == []
    print(
        f"\n[end to end] {len(readings)} snapshots read, {outcome.own} own responses: {sum(outcome.groups)} of "
        f"{len(SURVEY.questions)} answers right ({sum(outcome.alone)} without groups; plain guess "
        f"{sum(outcome.plain)})"
    )
