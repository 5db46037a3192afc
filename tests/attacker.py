"""The strongest attacker we know against Pulse's published snapshots, and the simulation it reads.

Shared by tests/test_attacks.py (one row and its exact-counts control, in the suite) and
benchmarks/attacks.py (every row, the close variant, end to end through `pulse serve`).

The scenario (issue 19, PRODUCT.md "Disclosure control"): M other clinics are counted in a
snapshot S0 (N = M). The attacker holds a budget of responses of its own, each padding every
cell (round robin over every question's options, see own_answer). Before the victim it triggers
`before` snapshots with its own responses alone; then it sends all but one of the responses the
next snapshot needs, so that the victim's response triggers it; afterwards it triggers as many
snapshots as its budget still pays for. In the close variant the organisers close the survey
right after the victim, which builds a final snapshot over every response out of turn: the
attacker spends its budget before. Each (before, after) split is a strategy; the strongest
attacker is the split with the largest edge, which the callers pick per row.

What the attacker computes (infer): it knows the shipped table, so for every published cell it
knows P(published r | true count t, row cap n) exactly (Likelihood). Its own responses are known,
so every reading of a cell is a reading of x (the other clinics' count; before the victim) or of
x + v (v: the victim is in the cell; after). For each cell it sums over the unknown x, with a
binomial prior from the published shares less its own, to get the exact likelihood of v = 0 and
v = 1 from all its readings. Single-choice counts of a question add up to exactly M, so there it
sums jointly over the multinomial of the others' counts (a convolution over the options), not
cell by cell. The practice-type group tables add evidence: an exact joint over segment x question
is too large, so it combines them as documented in _with_groups. It guesses by the posterior,
with the published shares (less its own) as the prior for the victim's answer.

Left unused, so an attacker could still do somewhat better: the index histogram and the outcome
percentiles (the victim's index bin ties its answers together), which groups the product chose
to show (each choice says something about a merged size), and that a group's others are a
subset of the overall others.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from survey_app import demo, snapshots
from survey_app.pipeline import publishing
from survey_app.pipeline.disclosure import Disclosure
from survey_app.pipeline.perturbation import CKEYS, PTable
from survey_app.pipeline.tallies import Tally, tally
from survey_app.questions import load_survey
from survey_app.settings import read_settings

ROOT = Path(__file__).resolve().parent.parent
SURVEY = load_survey(ROOT / "questions.yaml")
SEGMENT = SURVEY.question(SURVEY.segment)
# The product's defaults (PULSE_SNAPSHOT_GROWTH, PULSE_SNAPSHOT_MIN_NEW, the release threshold).
DEFAULTS = read_settings({})
# A likelihood ratio of a group cell is held within e^+-CLAMP: with exact counts (the control)
# some are 0 or infinite, and 0 x infinity has no meaning; no noisy table comes near it.
CLAMP = 50.0


def needed(last_n: int, growth: float | None = None) -> int:
    """New responses the next snapshot needs after one of last_n: the product's rule and defaults."""
    config = DEFAULTS if growth is None else DEFAULTS | {"PULSE_SNAPSHOT_GROWTH": growth}
    return snapshots.min_new(config, last_n)


# ---------------------------------------------------------------------------- the table, exactly


class Likelihood:
    """P(published r | true count t, cap n) for a ptable: the share of the 256 cell keys whose
    clip(t + change, 0, n) is r, with the change looked up as the product does (PTable.pcv)."""

    def __init__(self, ptable: PTable, top: int):
        t = np.arange(top + 1)
        out = t[:, None] + ptable.values[ptable.pcv(t)]
        if (out < 0).any():
            raise ValueError("the table would publish a negative count")
        self.top = top
        self.at = np.zeros((top + 1, int(out.max()) + 2))
        np.add.at(self.at, (np.repeat(t, CKEYS), out.ravel()), 1.0 / CKEYS)
        # tail[t, n]: P(t + change >= n), what a cap of n publishes as n.
        self.tail = self.at[:, ::-1].cumsum(axis=1)[:, ::-1]

    def log(self, true: np.ndarray, published: np.ndarray, cap: np.ndarray) -> np.ndarray:
        """log P(published | true, cap), rows of true counts against one reading per row."""
        true = np.minimum(true, self.top)
        r, n = published[:, None], cap[:, None]
        p = np.where(r < n, self.at[true, np.minimum(r, self.at.shape[1] - 1)], self.tail[true, n])
        p = np.where(r > n, 0.0, p)
        with np.errstate(divide="ignore"):
            return np.log(p)


@lru_cache(maxsize=8)
def likelihood(ptable: PTable, top: int) -> Likelihood:
    """One Likelihood per table and size, computed once (tables compare by identity)."""
    return Likelihood(ptable, top)


def exact_counts(rules: Disclosure) -> Disclosure:
    """The control: the same rules with a table that adds nothing."""
    return Disclosure(key=rules.key, ptable=PTable(np.zeros_like(rules.ptable.values), "no noise"))


# ---------------------------------------------------------------------------- the attacker's view


@dataclass(eq=False)
class Reading:
    """One published snapshot as the attacker reads it: the body, which of its own answer sets it
    counts (it knows: N is exact) and whether the victim is in it."""

    body: dict
    own: list[dict]
    victim: bool

    @cached_property
    def cells(self) -> list[tuple]:
        return _cells_of(self)


def own_answer(i: int) -> dict:
    """The attacker's i-th response: round robin over every question's options, so that every
    cell (and, over the practice types, every group's cell) gets padded. Multi-select questions
    rotate through their options one at a time (the exclusive one too)."""
    kinds = len(SEGMENT.options)
    out = {}
    for q in SURVEY.questions:
        if q.key == SURVEY.segment:
            out[q.key] = q.options[i % kinds].key
            continue
        option = q.options[(i // kinds + i % kinds) % len(q.options)].key
        out[q.key] = option if q.type == "single" else [option]
    return out


def _chosen(answers: dict, question: str) -> list[str]:
    value = answers[question]
    return [value] if isinstance(value, str) else list(value)


def counts_of(answer_sets: list[dict]) -> dict:
    """How many of these answer sets are in each cell: (question, option), (practice type, question,
    option) and ("n", practice type)."""
    out: dict = {}
    for a in answer_sets:
        t = a[SURVEY.segment]
        out["n", t] = out.get(("n", t), 0) + 1
        for q in SURVEY.questions:
            for o in _chosen(a, q.key):
                out[q.key, o] = out.get((q.key, o), 0) + 1
                out[t, q.key, o] = out.get((t, q.key, o), 0) + 1
    return out


def _cells_of(reading: Reading, answer_sets: list[dict] | None = None) -> list[tuple]:
    """(cell name, published count, how many of the answer sets are in it, cap) of every cell the
    attacker reads: the overall counts, each group's counts and each merged group's size. The
    answer sets are the attacker's own unless given."""
    body = reading.body
    own = counts_of(reading.own if answer_sets is None else answer_sets)
    members = {g["key"]: tuple(g["members"]) for g in body["segment"]["groups"]}
    answered = next((q["n"] for q in body["questions"] if q["key"] == SURVEY.segment), body["responses"])
    out = []
    for g in body["segment"]["groups"]:
        # A merged group's n is a cell of its own, capped at the segment question's n; a single
        # type's n is its option's cell on the segment question, read below.
        if len(g["members"]) > 1:
            out.append((("n", members[g["key"]]), g["n"], sum(own.get(("n", t), 0) for t in g["members"]), answered))
    for q in body["questions"]:
        for c in q["options"]:
            out.append(((q["key"], c["key"]), c["count"], own.get((q["key"], c["key"]), 0), q["n"]))
        for s in q["segments"]:
            group = members[s["key"]]
            for c in s["options"]:
                out.append(
                    (
                        (group, q["key"], c["key"]),
                        c["count"],
                        sum(own.get((t, q["key"], c["key"]), 0) for t in group),
                        s["n"],
                    )
                )
    return out


def impossible(reading: Reading, everyone: list[dict], lik: Likelihood) -> list[tuple]:
    """The cells whose published count the attacker's model says cannot come from their true count
    (everyone: every answer set the snapshot counts). Empty when the model is the product's."""
    cells = _cells_of(reading, everyone)
    logs = lik.log(np.array([[c[2]] for c in cells]), np.array([c[1] for c in cells]), np.array([c[3] for c in cells]))
    return [c for c, value in zip(cells, logs[:, 0]) if not np.isfinite(value)]


def _shares(readings: list[Reading], others: int) -> dict:
    """The published shares less the attacker's own, per cell, as probabilities of one clinic:
    from the latest reading of the cell (the victim counted there is one clinic more)."""
    floor = 0.5 / (others + 1)
    out = {}
    for reading in readings:
        clinics = others + reading.victim
        out |= {name: min(max((count - mine) / clinics, floor), 1 - floor) for name, count, mine, _ in reading.cells}
    return out


def _logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(top, axis=axis) + np.log(np.exp(a - top).sum(axis=axis))


@dataclass
class Evidence:
    """Per cell, the log-likelihood of every value of the others' count x (0..M) from the readings
    before the victim, and of x + v (0..M+1) from those after."""

    index: dict
    before: np.ndarray
    after: np.ndarray
    after_names: set


def collect(readings: list[Reading], others: int, lik: Likelihood) -> Evidence:
    names = {}
    rows = []
    after_names = set()
    for reading in readings:
        cells = reading.cells
        idx = np.array([names.setdefault(name, len(names)) for name, *_ in cells])
        counts = np.array([c[1] for c in cells])
        mine = np.array([c[2] for c in cells])
        caps = np.array([c[3] for c in cells])
        rows.append((reading.victim, idx, lik.log(mine[:, None] + np.arange(others + 2), counts, caps)))
        if reading.victim:
            after_names.update(name for name, *_ in cells)
    before = np.zeros((len(names), others + 1))
    after = np.zeros((len(names), others + 2))
    for victim, idx, logs in rows:
        if victim:
            after[idx] += logs
        else:
            before[idx] += logs[:, :-1]
    return Evidence(names, before, after, after_names)


@lru_cache(maxsize=64)
def _log_choose(n: int) -> np.ndarray:
    return np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in range(n + 1)])


def ratios(ev: Evidence, shares: dict, others: int) -> dict:
    """Per cell, log of sum over x of P(x) L(readings | x, v) for v = 1, less that for v = 0
    (x: the others' count in the cell, P(x) binomial from the cell's published share)."""
    names = list(ev.index)
    p = np.array([shares[name] for name in names])[:, None]
    x = np.arange(others + 1)
    base = _log_choose(others) + x * np.log(p) + (others - x) * np.log1p(-p) + ev.before[[ev.index[n] for n in names]]
    after = ev.after[[ev.index[n] for n in names]]
    with np.errstate(invalid="ignore"):
        out = _logsumexp(base + after[:, 1:]) - _logsumexp(base + after[:, :-1])
    return dict(zip(names, out.tolist()))


def _single_posterior(ev: Evidence, q, shares: dict, others: int) -> np.ndarray:
    """P(victim chose each option | all readings of the question): the others' counts of the
    options add up to exactly M (a multinomial), so the sum over them is a convolution."""
    p = np.array([shares[q.key, o] for o in q.option_keys])
    p = p / p.sum()
    x = np.arange(others + 1)
    logfact = np.array([math.lgamma(k + 1) for k in x])
    w0, w1 = [], []
    for k, o in enumerate(q.option_keys):
        i = ev.index[q.key, o]
        base = x * math.log(p[k]) - logfact + ev.before[i]
        a, b = base + ev.after[i, :-1], base + ev.after[i, 1:]
        top = max(a.max(), b.max())
        top = top if np.isfinite(top) else 0.0
        w0.append(np.exp(a - top))
        w1.append(np.exp(b - top))
    out = np.zeros(len(p))
    for j in range(len(p)):
        total = np.ones(1)
        for k in range(len(p)):
            total = np.convolve(total, w1[k] if k == j else w0[k])[: others + 1]
        out[j] = p[j] * total[others] if len(total) > others else 0.0
    return out / out.sum() if out.sum() > 0 else p


def infer(readings: list[Reading], others: int, lik: Likelihood) -> tuple[dict, dict]:
    """The attacker's guesses of the victim's answers: (with the group tables, without them)."""
    ev = collect(readings, others, lik)
    shares = _shares(readings, others)
    ratio = ratios(ev, shares, others)
    overall = {}
    for q in SURVEY.questions:
        if q.type == "single":
            overall[q.key] = dict(zip(q.option_keys, _single_posterior(ev, q, shares, others)))
            continue
        post = {}
        for o in q.option_keys:
            p = shares[q.key, o]
            odds = math.log1p(-p) - math.log(p) - ratio[q.key, o]  # log odds against the victim in the cell
            post[o] = p if math.isnan(odds) else 1.0 / (1.0 + math.exp(min(max(odds, -700.0), 700.0)))
        overall[q.key] = post
    return _guess(_with_groups(ev, overall, ratio)), _guess(overall)


def _with_groups(ev: Evidence, overall: dict, ratio: dict) -> dict:
    """The overall posteriors updated with the practice-type group tables.

    For each member set G of a group shown after the victim, each of its cells gives a likelihood
    ratio Lambda (victim in the cell against victim not in G), computed exactly as an overall
    cell's (sum over the unknown count of the others in G, binomial prior from the group's
    published share less the attacker's own). The approximations, all in the open: G's others
    are treated as independent of the overall counts and of other sets' (they are a subset), and
    a group's cells as independent of each other (no sum constraint: the group's size is
    itself perturbed). Then, exactly under those:
      for a candidate practice type t, the victim's answer a to q has weight
        P_q(a) x prod over the sets G holding t of Lambda_G,q,a      (normalised by Z_q(t)),
      and t itself has weight W(t) = P(t) x prod of Lambda_G,size x prod over q of Z_q(t),
    so each answer's posterior is sum over t of W(t) x its weight given t: per candidate group,
    that group's likelihood ratio times the posterior of the victim's group.
    """
    sets = sorted(
        {name[0] for name in ev.after_names if len(name) == 3} | {name[1] for name in ev.after_names if name[0] == "n"}
    )
    if not sets:
        return overall

    def log_lambda(name) -> float:
        value = ratio[name]
        return 0.0 if math.isnan(value) else min(max(value, -CLAMP), CLAMP)

    types = SEGMENT.option_keys
    log_w = {t: math.log(max(overall[SURVEY.segment][t], 1e-300)) for t in types}
    given: dict = {}
    for t in types:
        holding = [g for g in sets if t in g]
        log_w[t] += sum(log_lambda(("n", g)) for g in holding if len(g) > 1 and ("n", g) in ev.index)
        for q in SURVEY.questions:
            if q.key == SURVEY.segment:
                continue
            lam = {
                o: sum(log_lambda((g, q.key, o)) for g in holding if (g, q.key, o) in ev.index) for o in q.option_keys
            }
            prior = overall[q.key]
            if q.type == "single":
                logs = np.array([math.log(max(prior[o], 1e-300)) + lam[o] for o in q.option_keys])
                z = float(_logsumexp(logs))
                given[t, q.key] = dict(zip(q.option_keys, np.exp(logs - z)))
            else:
                z, post = 0.0, {}
                for o in q.option_keys:
                    yes = math.log(max(prior[o], 1e-300)) + lam[o]
                    no = math.log(max(1 - prior[o], 1e-300))
                    both = float(np.logaddexp(yes, no))
                    post[o] = math.exp(yes - both)
                    z += both
                given[t, q.key] = post
            log_w[t] += z
    top = max(log_w.values())
    w = {t: math.exp(v - top) for t, v in log_w.items()}
    total = sum(w.values())
    out = {SURVEY.segment: {t: w[t] / total for t in types}}
    for q in SURVEY.questions:
        if q.key != SURVEY.segment:
            out[q.key] = {o: sum(w[t] * given[t, q.key][o] for t in types) / total for o in q.option_keys}
    return out


def _guess(posterior: dict) -> dict:
    """Single choice: the likeliest option. Multi-select: every option more likely than not; if
    none is, the exclusive option (or the likeliest one where there is none)."""
    guess = {}
    for q in SURVEY.questions:
        post = posterior[q.key]
        if q.type == "single":
            guess[q.key] = max(q.option_keys, key=lambda o: post[o])
            continue
        real = [o.key for o in q.options if not o.exclusive]
        chosen = [o for o in real if post[o] > 0.5]
        none = [o.key for o in q.options if o.exclusive]
        guess[q.key] = chosen or none or [max(real, key=lambda o: post[o])]
    return guess


def plain_guess(reading: Reading) -> dict:
    """The best guess from the published shares alone (less the attacker's own responses, which it
    knows): the commonest option; the options most clinics do."""
    body = reading.body
    mine: dict = {}
    for a in reading.own:
        for q in SURVEY.questions:
            for o in _chosen(a, q.key):
                mine[q.key, o] = mine.get((q.key, o), 0) + 1
    n = body["responses"] - len(reading.own)
    guess = {}
    for q in SURVEY.questions:
        shares = {
            c["key"]: c["count"] - mine.get((q.key, c["key"]), 0)
            for pq in body["questions"]
            if pq["key"] == q.key
            for c in pq["options"]
        }
        if q.type == "single":
            guess[q.key] = max(q.option_keys, key=lambda o: shares[o])
        else:
            chosen = [o.key for o in q.options if not o.exclusive and 2 * shares[o.key] >= n]
            none = [o.key for o in q.options if o.exclusive]
            guess[q.key] = chosen or none or [max(q.option_keys, key=lambda o: shares[o])]
    return guess


def hits(guess: dict, truth: dict) -> list[bool]:
    """Per question: the guess is exactly the victim's answer (every option of a multi-select)."""
    return [sorted(_chosen(guess, q.key)) == sorted(_chosen(truth, q.key)) for q in SURVEY.questions]


# ---------------------------------------------------------------------------- the simulation


@dataclass(frozen=True)
class Row:
    """One row of the table: M other clinics, the attacker's budget, after-victim or close."""

    others: int
    budget: int
    close: bool = False

    @property
    def name(self) -> str:
        return f"{self.others} others, {self.budget // self.others}x budget{', close' if self.close else ''}"


@dataclass
class Outcome:
    """One trial of one split: per-question hits with groups, without, and of the plain guess."""

    groups: list[bool]
    alone: list[bool]
    plain: list[bool]
    snapshots: int
    own: int


def _ids(n: int, rng: np.random.Generator) -> list[str]:
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


def _counted(answer_sets: list[dict], rng: np.random.Generator) -> Tally:
    return tally(SURVEY, [json.dumps(a) for a in answer_sets], _ids(len(answer_sets), rng))


def plan(row: Row, growth: float | None = None) -> list[tuple[list[int], int, list[int]]]:
    """Every split that fits the budget: (own responses per snapshot before the victim, own
    responses sent just before the victim, own responses per snapshot after it)."""
    out = []
    before: list[int] = []
    n, spent = row.others, 0
    while True:
        if row.close:
            pad = min(row.budget - spent, needed(n, growth) - 1)
            if pad >= 0:
                out.append((list(before), pad, []))
        elif spent + needed(n, growth) - 1 <= row.budget:
            pad = needed(n, growth) - 1
            after, m, used = [], n + pad + 1, spent + pad
            while used + needed(m, growth) <= row.budget:
                after.append(needed(m, growth))
                used, m = used + after[-1], m + after[-1]
            out.append((list(before), pad, after))
        else:
            break
        step = needed(n, growth)
        if spent + step > row.budget:
            break
        before.append(step)
        n, spent = n + step, spent + step
    return out


def clinics(row: Row, rng: np.random.Generator) -> tuple[dict, list[dict]]:
    """The victim and the other clinics of a trial, drawn like every clinic (the rng's first draws)."""
    population = list(demo.synthetic_answers(SURVEY, row.others + 1, rng))
    return population[0], population[1:]


def simulate(row: Row, seed: int, rules: Disclosure, growth: float | None = None) -> tuple[dict, list[list[Reading]]]:
    """One trial: the victim's answers and, for every split of plan(row), the readings it gives."""
    rng = np.random.default_rng(seed)
    victim, others = clinics(row, rng)
    mine = [own_answer(i) for i in range(row.budget)]
    base = _counted(others, rng)
    chain = [(base, Reading(publishing.publish(SURVEY, base, rules, True).to_json(), [], False))]
    splits = []
    for before, pad, after in plan(row, growth):
        while len(chain) <= len(before):  # the snapshots before the victim are shared by the splits
            current, last = chain[-1]
            sent = len(last.own)
            batch = mine[sent : sent + before[len(chain) - 1]]
            current = current + _counted(batch, rng)
            body = publishing.publish(SURVEY, current, rules, True).to_json()
            chain.append((current, Reading(body, mine[: sent + len(batch)], False)))
        current, last = chain[len(before)]
        readings = [r for _, r in chain[: len(before) + 1]]
        sent = len(last.own) + pad
        current = current + _counted(mine[len(last.own) : sent], rng) + _counted([victim], rng)
        readings.append(Reading(publishing.publish(SURVEY, current, rules, True).to_json(), mine[:sent], True))
        for batch in after:
            current = current + _counted(mine[sent : sent + batch], rng)
            sent += batch
            readings.append(Reading(publishing.publish(SURVEY, current, rules, True).to_json(), mine[:sent], True))
        splits.append(readings)
    return victim, splits


def top_count(row: Row) -> int:
    """The largest true count a trial of this row can hold, rounded up (one Likelihood per size)."""
    return 256 * math.ceil((2 * row.others + row.budget + 2) / 256)


def run_trial(row: Row, seed: int, rules: Disclosure, growth: float | None = None) -> list[Outcome]:
    """One trial, every split: the attacker's and the plain guess's hits."""
    lik = likelihood(rules.ptable, top_count(row))
    victim, splits = simulate(row, seed, rules, growth)
    out = []
    for readings in splits:
        with_groups, alone = infer(readings, row.others, lik)
        out.append(
            Outcome(
                hits(with_groups, victim),
                hits(alone, victim),
                hits(plain_guess(readings[-1]), victim),
                len(readings),
                len(readings[-1].own),
            )
        )
    return out


@dataclass
class Result:
    """A row's figures for one split over all trials."""

    split: tuple
    trials: int
    snapshots: int
    own: int
    rate: float
    rate_alone: float
    plain: float
    whole: int
    whole_alone: int
    six: int
    six_alone: int

    @property
    def edge(self) -> float:
        return self.rate - self.plain

    @property
    def edge_alone(self) -> float:
        return self.rate_alone - self.plain


def summarise(row: Row, outcomes: list[list[Outcome]], growth: float | None = None) -> list[Result]:
    """Per split, the figures over the trials (outcomes[trial][split])."""
    splits = plan(row, growth)
    out = []
    for s, (before, _, after) in enumerate(splits):
        rows = [trial[s] for trial in outcomes]
        attacker = np.array([o.groups for o in rows])
        alone = np.array([o.alone for o in rows])
        plain = np.array([o.plain for o in rows])
        right, right_alone = attacker.sum(axis=1), alone.sum(axis=1)
        width = len(SURVEY.questions)
        out.append(
            Result(
                (len(before), len(after)),
                len(rows),
                rows[0].snapshots,
                rows[0].own,
                100 * attacker.mean(),
                100 * alone.mean(),
                100 * plain.mean(),
                int((right == width).sum()),
                int((right_alone == width).sum()),
                int((right >= 6).sum()),
                int((right_alone >= 6).sum()),
            )
        )
    return out


def best(results: list[Result]) -> Result:
    """The strongest attacker: the split with the largest edge (with the group tables)."""
    return max(results, key=lambda r: r.edge)


def run_row(row: Row, trials: int, rules: Disclosure, seed0: int = 0, growth: float | None = None) -> list[Result]:
    return summarise(row, [run_trial(row, seed0 + i, rules, growth) for i in range(trials)], growth)


# ---------------------------------------------------------------------------- the benchmark's bar


# PRODUCT.md's bar at every row: edge at most 15 points, the whole response at most once in 300,
# 6 or more of 8 right in at most 3% of trials.
BAR_EDGE = 15.0
BAR_WHOLE_PER_300 = 1
BAR_SIX = 0.03


def passes(result: Result) -> bool:
    return (
        result.edge <= BAR_EDGE
        and result.whole * 300 <= BAR_WHOLE_PER_300 * result.trials
        and result.six <= BAR_SIX * result.trials
    )


# ---------------------------------------------------------------------------- end to end


def end_to_end(tmp: Path, row: Row, seed: int, before: int = 0) -> tuple[dict, list[Reading], Outcome]:
    """One trial of `row` (after-victim variant, `before` snapshots first) through a real
    `pulse serve` and its public HTTP API only: the attacker posts its responses and polls
    GET /api/v1/benchmarks until N is what it expects. Returns the victim, the readings and the
    outcome."""
    import subprocess
    import sys

    from .helpers import LiveServer, request, wait_until

    chain = [DEFAULTS["PULSE_RELEASE_THRESHOLD"]]
    while chain[-1] < row.others:
        chain.append(chain[-1] + needed(chain[-1]))
    if chain[-1] != row.others:
        raise ValueError(f"{row.others} other clinics is no snapshot's N under the product's rule ({chain})")
    splits = [s for s in plan(row) if len(s[0]) == before]
    if not splits:
        raise ValueError(f"no split with {before} snapshots before the victim fits {row.name}")
    steps, pad, after = splits[0]
    victim, others = clinics(row, np.random.default_rng(seed))
    server = LiveServer(
        tmp, env={"PULSE_SNAPSHOT_MIN_INTERVAL": "0", "PULSE_RATELIMIT_ENABLED": "false", "PULSE_MIN_FILL_SECONDS": "0"}
    )
    readings: list[Reading] = []
    sent: list[dict] = []

    def post(answers: dict) -> None:
        status, body = request(server.url + "/api/v1/responses", "POST", {"answers": answers})
        assert status == 201, body

    def read(n: int, with_victim: bool) -> None:
        def at_n():
            status, body = request(server.url + "/api/v1/benchmarks")
            published = json.loads(body) if status == 200 else {}
            return published if published.get("responses") == n else None

        readings.append(Reading(wait_until(at_n, timeout=60), list(sent), with_victim))

    def send(k: int) -> None:
        for _ in range(k):
            sent.append(own_answer(len(sent)))
            post(sent[-1])

    try:
        for answers in others:
            post(answers)
        subprocess.run([sys.executable, "-m", "survey_app", "release"], env=server.env, check=True, capture_output=True)
        n = row.others
        read(n, False)
        for k in steps:
            send(k)
            n += k
            read(n, False)
        send(pad)
        post(victim)
        n += pad + 1
        read(n, True)
        for k in after:
            send(k)
            n += k
            read(n, True)
    finally:
        server.stop()
    lik = likelihood(_served_table(), top_count(row))
    with_groups, alone = infer(readings, row.others, lik)
    outcome = Outcome(
        hits(with_groups, victim),
        hits(alone, victim),
        hits(plain_guess(readings[-1]), victim),
        len(readings),
        len(sent),
    )
    return victim, readings, outcome


def _served_table() -> PTable:
    """The table a `pulse serve` with default settings uses: the shipped one (it is public)."""
    return Disclosure().ptable


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start
