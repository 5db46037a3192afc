"""Publishing: the benchmark body a snapshot stores, and a participant's view of it.

Pure: imports neither Flask nor the database. A snapshot stores a Tally (exact counts, see
tallies.py); publish() turns it into the published body, where every count is perturbed
(disclosure.py) and every share, interval, percentile and group follows from the perturbed
counts alone. The one exact number published is the snapshot's total N. you() computes a
participant's view from their own answers and that published body, never from the tally, so
holding many results keys tells no one more than the published page does.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping, Protocol, Sequence

from ..questions import INDEX_MAX, Question, Survey, as_tuple
from .disclosure import OTHER, PERCENTILES, Disclosure, Noise, segment_groups, shown_percentiles
from .figures import (
    Bin,
    Cell,
    GroupQuestion,
    IndexFigures,
    Outcome,
    OutcomeOption,
    Perturbation,
    Published,
    QuestionFigures,
    Raise,
    Rules,
    Segment,
    SegmentCells,
    SegmentGroup,
    SurveyRef,
    You,
    YourGroup,
)
from .tallies import Tally

# The version of the published body's shape: raise it whenever publish() adds, removes or renames a
# field, or changes what one means. Snapshots stored with an older shape are published again from
# their counts at start (program.start), with the same noise for the same cells.
# 2: "disclosure" says how likely each change is ("from", "changes"); a merged group's n is a cell.
SHAPE = 2
# Two-sided 95% normal quantile for the Wilson interval.
Z95 = 1.959963984540054
# Histogram bins of 10 points; the last one is 90-100 so that 100 has a home.
BINS = tuple((lo, lo + 9) for lo in range(0, 90, 10)) + ((90, INDEX_MAX),)
# A figure from fewer respondents, or with a wider interval (in points), carries a caution.
CAUTION_N = 30
CAUTION_WIDTH = 30
PCT_KEYS = tuple(str(p) for p in PERCENTILES)
NOISE_NOTE = (
    "Counts are slightly randomised so that no single clinic's answer can be worked out; small counts show as {small}."
)


def wilson(count: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of count in n, as proportions."""
    if n <= 0:
        return 0.0, 1.0
    p, z2 = count / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def percent(count: int, n: int) -> int:
    """count of n as a whole percent, halves rounded up."""
    return (200 * count + n) // (2 * n)


def ci_percent(count: int, n: int) -> list[int]:
    """The Wilson interval in whole percents, rounded outwards so that it still covers."""
    lo, hi = wilson(count, n)
    return [math.floor(lo * 100 + 1e-9), math.ceil(hi * 100 - 1e-9)]


def _share(key: str, count: int, n: int) -> Cell:
    """One published cell: a perturbed count and what follows from it."""
    lo, hi = ci_percent(count, n)
    return Cell(key, count, percent(count, n), (lo, hi))


def _caution(n: int, shares: Sequence[Cell]) -> bool:
    """Small sample, or some interval wider than CAUTION_WIDTH points."""
    return n < CAUTION_N or any(s.ci[1] - s.ci[0] > CAUTION_WIDTH for s in shares)


def _group_cell(members: Sequence[str]) -> str:
    """The name of a merged segment group's cells."""
    return f"{OTHER}[{','.join(members)}]"


def _bin_of(value: int) -> int:
    return min(value // 10, len(BINS) - 1)


def _histogram(noise: Noise, prefix: str, by_value: dict[int, int], n: int) -> list[int]:
    """Published counts of the 10-point bins of an index distribution."""
    true = [0] * len(BINS)
    for value, count in by_value.items():
        true[_bin_of(value)] += count
    return noise.counts([f"{prefix}/{lo}-{hi}" for lo, hi in BINS], true, n)


# ---------------------------------------------------------------------------- publishing


def _question(
    survey: Survey, q: Question, noise: Noise, t: Tally, groups: Sequence[SegmentGroup], rules: Disclosure
) -> QuestionFigures:
    """One question's published shares, overall and per segment group."""
    n = int(t.totals("answered", lambda key: key[1]).get(q.key, 0))
    if n < rules.release_threshold:
        return QuestionFigures(q.key, q.type, n, True, False, (), (), ("Not enough responses yet.",))
    chosen = t.totals("options", lambda key: key[1:] if key[1] == q.key else None)
    keys = list(q.option_keys)
    counts = noise.counts([f"q/{q.key}/{o}" for o in keys], [chosen.get((q.key, o), 0) for o in keys], n)
    options = tuple(_share(o, c, n) for o, c in zip(keys, counts))
    segments: list[SegmentCells] = []
    if q.key != survey.segment:
        for g in groups:
            members = set(g.members)
            true = t.totals("options", lambda key: key[2] if key[0] in members and key[1] == q.key else None)
            name = g.key if len(members) == 1 else _group_cell(g.members)
            counts = noise.counts([f"g/{name}/{q.key}/{o}" for o in keys], [true.get(o, 0) for o in keys], g.n)
            shares = tuple(_share(o, c, g.n) for o, c in zip(keys, counts))
            segments.append(SegmentCells(g.key, g.n, _caution(g.n, shares), shares))
    return QuestionFigures(q.key, q.type, n, _caution(n, options), True, options, tuple(segments), ())


def _index(noise: Noise, t: Tally, rules: Disclosure) -> IndexFigures:
    """The index distribution: N, a perturbed 10-point histogram and the percentiles it shows."""
    n = t.n
    counts = _histogram(noise, "index", t.totals("index", lambda key: key[2]), n)
    histogram = tuple(Bin(lo, hi, c, percent(c, n), _pair(ci_percent(c, n))) for (lo, hi), c in zip(BINS, counts))
    percentiles = shown_percentiles(BINS, counts, n, rules.k)
    notes: tuple[str, ...] = ()
    if None in percentiles.values():
        notes = (f"A percentile is shown only when at least {rules.k} clinics lie beyond it.",)
    return IndexFigures(n, n < CAUTION_N, percentiles, histogram, notes)


def _pair(values: Sequence[int]) -> tuple[int, int]:
    return values[0], values[1]


def _outcome(
    survey: Survey, noise: Noise, t: Tally, questions: Sequence[QuestionFigures], rules: Disclosure
) -> Outcome | None:
    """Index percentiles per option of the outcome question, from each option's perturbed histogram."""
    if not survey.outcome:
        return None
    shown = {s.key: s for q in questions if q.key == survey.outcome for s in q.options}
    by_outcome = t.totals("index", lambda key: key[1:])
    options = []
    outcome = survey.question(survey.outcome)
    assert outcome is not None  # questions.py checks the outcome question exists
    for o in outcome.option_keys:
        n_o = shown[o].count if o in shown else 0
        if not n_o:
            options.append(OutcomeOption(o, n_o if o in shown else None, dict.fromkeys(PCT_KEYS)))
            continue
        counts = _histogram(noise, f"outcome/{o}/index", {v: c for (u, v), c in by_outcome.items() if u == o}, n_o)
        options.append(OutcomeOption(o, n_o, shown_percentiles(BINS, counts, n_o, rules.k)))
    return Outcome(survey.outcome, tuple(options))


def publish(survey: Survey, t: Tally, rules: Disclosure, released: bool) -> Published:
    """The /api/v1/benchmarks body without "you": every figure from the snapshot's perturbed counts."""
    n = t.n
    disclosure = Perturbation.from_json(rules.describe())
    needed = max(0, rules.release_threshold - n)
    body = Published(
        survey=SurveyRef(survey.id, survey.version),
        responses=n,
        released=released,
        published=n >= rules.release_threshold,
        needed=needed,
        rules=Rules(rules.release_threshold, rules.k, rules.segment_min),
        disclosure=disclosure,
        notes=(f"Nothing is published before {rules.release_threshold} responses: {needed} more needed.",),
        segment=Segment(survey.segment, ()),
        questions=(),
        index=IndexFigures(n, True, dict.fromkeys(PCT_KEYS), (), ()),
        outcome=None,
    )
    if not body.published:
        return body
    noise = Noise(rules, survey, t.digest or 0)
    segment = survey.question(survey.segment)
    assert segment is not None
    sizes = t.totals("options", lambda key: key[2] if key[1] == survey.segment else None)
    # Capped at the segment question's own n: these are the same cells its table publishes.
    answered = int(t.totals("answered", lambda key: key[1]).get(survey.segment, 0))
    published_sizes = dict(
        zip(
            segment.option_keys,
            noise.counts(
                [f"q/{survey.segment}/{o}" for o in segment.option_keys],
                [sizes.get(o, 0) for o in segment.option_keys],
                answered,
            ),
        )
    )

    def merged_size(members: list[str]) -> int:
        """One cell for the merged group's true size, named by its members (a member's own group
        is its option's cell on the segment question: the same number the segment table shows)."""
        if len(members) == 1:
            return published_sizes[members[0]]
        return noise.counts([f"g/{_group_cell(members)}/n"], [sum(sizes.get(o, 0) for o in members)], answered)[0]

    groups = tuple(
        SegmentGroup(g["key"], g["n"], tuple(g["members"]))
        for g in segment_groups(survey, published_sizes, rules, merged_size)
    )
    notes = [
        "The figures describe the clinics that answered, not all clinics.",
        NOISE_NOTE.format(small=disclosure.small_counts),
    ]
    if not groups:
        notes.append(
            f"No breakdown by {survey.segment_label}: no split into groups of at least "
            f"{rules.segment_min} clinics each."
        )
    questions = tuple(_question(survey, q, noise, t, groups, rules) for q in survey.questions)
    return replace(
        body,
        notes=tuple(notes),
        segment=Segment(survey.segment, groups),
        questions=questions,
        index=_index(noise, t, rules),
        outcome=_outcome(survey, noise, t, questions, rules),
    )


# ---------------------------------------------------------------------------- a participant


def _whole(counts: list[int]) -> list[int]:
    """Whole percents of counts adding up to exactly 100 (largest remainders round up)."""
    total = sum(counts)
    base = [100 * c // total for c in counts]
    order = sorted(range(len(counts)), key=lambda i: (-(100 * counts[i] % total), i))
    for i in order[: 100 - sum(base)]:
        base[i] += 1
    return base


def _standing(index: int, published: Published) -> tuple[tuple[int, int, int] | None, tuple[int | None, int | None]]:
    """Below / in / above the participant's 10-point band, and the published percentiles around them."""
    band = _bin_of(index)
    counts = [b.count for b in published.index.histogram]
    three = [sum(counts[:band]), counts[band], sum(counts[band + 1 :])]
    shares = None
    if sum(three):
        below, same, above = _whole(three)
        shares = (below, same, above)
    shown = sorted(published.index.shown().items())
    low = max((p for p, v in shown if v <= index), default=None)
    high = min((p for p, v in shown if v > index), default=None)
    return shares, (low, high)


class _HasCells(Protocol):
    @property
    def options(self) -> tuple[Cell, ...]: ...


def combined_percent(question: _HasCells | None, options: Sequence[str], n: int) -> int | None:
    """The published share of n doing any of these options (their perturbed counts added, capped at n).

    None when the question or an option is not published: a share is never filled in from elsewhere.
    """
    cells = {c.key: c for c in question.options} if question is not None else {}
    if not n or not options or any(o not in cells for o in options):
        return None
    return percent(min(sum(cells[o].count for o in options), n), n)


def raise_list(survey: Survey, answers: Mapping[str, Any], published: Published) -> list[Raise]:
    """What would raise the index, ranked by points, each with the published share of clinics doing it.

    A single-choice question gives one entry (its best-scoring options together); a multi-select
    one entry per scored option not chosen; a bonus no single option carries ("two or more")
    is an entry of its own with percent None.
    """
    questions = {q.key: q for q in published.questions}
    n = published.responses or 0
    entries: list[tuple[int, int, Raise]] = []
    for order, rule in enumerate(survey.scoring):
        q = survey.question(rule.question)
        assert q is not None  # questions.py checks every scored question exists
        chosen = as_tuple(answers.get(q.key))
        real_options = frozenset(o.key for o in q.options if not o.exclusive)
        have = rule.score(chosen, real_options)
        if have >= rule.maximum(q):
            continue

        def share_of(options: Sequence[str]) -> int | None:
            return combined_percent(questions.get(q.key), options, n)

        if q.type == "single":
            points = dict(rule.points)
            best = max(points.values(), default=0)
            options = tuple(o for o in q.option_keys if points.get(o, 0) == best)
            entries.append((order, 0, Raise(q.key, options, best - have, share_of(options))))
            continue
        real = [o for o in chosen if o in real_options]
        for position, o in enumerate(q.option_keys):
            if o in chosen or o not in real_options:
                continue
            gain = dict(rule.points).get(o, 0) + (rule.any if not real else 0)
            if gain:
                entries.append((order, position, Raise(q.key, (o,), gain, share_of([o]))))
        if rule.extra_points and len(real) < rule.extra_at_least:
            entries.append((order, len(q.options), Raise(q.key, (), rule.extra_points, None)))
    entries.sort(key=lambda e: (-e[2].points, e[0], e[1]))
    return [entry for _, _, entry in entries]


def _group(survey: Survey, answers: Mapping[str, Any], published: Published) -> YourGroup | None:
    """The participant's segment group as published ("clinics like yours"), or None without a breakdown."""
    mine = answers.get(survey.segment)
    group = next((g for g in published.segment.groups if mine in g.members), None)
    if group is None:
        return None
    questions = []
    for q in published.questions:
        part = next((s for s in q.segments if s.key == group.key), None)
        if part is not None:
            questions.append(GroupQuestion(q.key, q.type, part.n, part.caution, part.options))
    return YourGroup(group.key, group.n, tuple(questions))


def beside_group(survey: Survey, view: You, published: Published) -> dict[str, Any]:
    """Clinics like yours beside all clinics, for the scorecard: from "you" and the published body only.

    "raise": the group's share doing each entry of view.raise_ (None for a bonus, or without a
    group); "answers": per question (the segment question aside) and chosen option, the share of
    all clinics and of the group choosing it. Both read published shares, nothing else.
    """
    group = view.group
    mine = {q.key: q for q in group.questions} if group is not None else {}
    everyone = {q.key: q for q in published.questions}

    def group_share(question: str, options: Sequence[str]) -> int | None:
        part = mine.get(question)
        return combined_percent(part, options, part.n) if part else None

    rows = []
    for q in survey.questions:
        if q.key == survey.segment or q.key not in everyone:
            continue
        for o in as_tuple(view.answers.get(q.key)):
            rows.append(
                {
                    "question": q.key,
                    "option": o,
                    "percent": combined_percent(everyone[q.key], [o], everyone[q.key].n),
                    "group": group_share(q.key, [o]),
                }
            )
    return {
        "raise": [group_share(e.question, e.options) if e.options else None for e in view.raise_],
        "answers": rows,
    }


def you(survey: Survey, answers: Mapping[str, Any], published: Published) -> You:
    """The participant's view: their answers and index, where they stand, what would raise it,
    and clinics like theirs, from their own answers and the published body only."""
    index = survey.index_of(answers)
    raises = tuple(raise_list(survey, answers, published))
    if not published.published:
        return You(dict(answers), index, None, None, None, (None, None), raises, None)
    shares, between = _standing(index, published)
    below, same_band, above = shares if shares is not None else (None, None, None)
    return You(dict(answers), index, below, same_band, above, between, raises, _group(survey, answers, published))
