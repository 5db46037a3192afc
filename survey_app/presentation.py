"""What the results pages and the static report show besides the published numbers.

Labels, the participant's own answers, caution thresholds and the chart figures, shared by
views/results.py and report.py so that both say the same thing about the same snapshot; and
the comparison with a survey's earlier wave, which only the pages show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any, Sequence

from . import snapshots, state
from .pipeline import charts, publishing, waves
from .pipeline.figures import IndexFigures, Published, Raise, You
from .questions import Survey, as_tuple
from .snapshots import ServedSnapshot


def results_context(survey: Survey, published: Published, you: You | None) -> dict:
    """What the results templates need besides the published figures: labels, your answers, thresholds."""
    answers = you.answers if you is not None else {}
    groups = {g.key: g for g in published.segment.groups}

    def group_label(key: str) -> str:
        group = groups.get(key)
        members = group.members if group is not None else (key,)
        if len(members) == 1:
            return charts.label_of(survey, survey.segment, members[0])
        return "Other groups combined"

    def raise_action(entry: Raise) -> tuple[str, str]:
        """What one "raise" entry asks of the clinic as an action, with its reason: (action, why)."""
        if not entry.options:  # a bonus no single option carries
            rule = next(r for r in survey.scoring if r.question == entry.question)
            number = [q.key for q in survey.questions].index(entry.question) + 1
            return f"Do {rule.extra_at_least} or more of the practices in question {number}", ""
        return action_of(survey, entry.question, entry.options)

    def raise_text(entry: Raise) -> tuple[str, str]:
        """What one "raise" entry asks of the clinic, in the survey's words: (the change, its question)."""
        question = survey.question(entry.question)
        if not entry.options:  # a bonus no single option carries
            rule = next(r for r in survey.scoring if r.question == entry.question)
            return f"{rule.extra_at_least} or more of these answers", question.text
        labels = [charts.label_of(survey, entry.question, o) for o in entry.options]
        # "Within 24 hours or within 48 hours": later labels read on in lower case (not "PHQ-9 …").
        labels[1:] = [t[0].lower() + t[1:] if t[1:2].islower() else t for t in labels[1:]]
        return " or ".join(labels), question.text

    def standing_text(view: You) -> str:
        """Where the index stands among the published percentiles, in one sentence."""
        low, high = view.between_percentiles
        shown = published.index.shown()
        if not shown:
            return "Too few clinics have answered for the percentiles of the index to be published yet."
        name = {10: "10th", 25: "25th", 50: "50th", 75: "75th", 90: "90th"}
        top = {
            10: "the top nine tenths start",
            25: "the top three quarters start",
            50: "the top half starts",
            75: "the top quarter starts",
            90: "the top tenth starts",
        }
        if low is None:
            assert high is not None  # a percentile is shown, so the index is below or at/above one
            return f"Your index is below the {name[high]} percentile: {top[high]} at {shown[high]:g}."
        if high is None:
            return f"Your index is at or above the {name[low]} percentile, {shown[low]:g}: among the highest published."
        return f"Your index is between the {name[low]} and the {name[high]} percentile; {top[high]} at {shown[high]:g}."

    def band_text(view: You) -> str:
        """The participant's 10-point band of the index, as the histogram shows it ("60–69")."""
        band = next((b for b in published.index.histogram if b.holds(view.index)), None)
        return f"{band.from_}–{band.to}" if band else ""

    beside = publishing.beside_group(survey, you, published) if you is not None and published.published else None

    def raise_rows() -> list[dict]:
        """The ranked list as the scorecard shows it: entries one "any" rule gives are alternatives.

        Where a multi-select question scores "any real option" and the clinic chose none, every
        option earns the same points, but only once: one row ("any one of these") lists them all,
        so that five "+10" lines do not read as fifty points.
        """
        rows: list[dict] = []
        for i, entry in enumerate(you.raise_ if you is not None else ()):
            _, question = raise_text(entry)
            action, why = raise_action(entry)
            share = {
                "label": action,
                "why": why,
                "percent": entry.percent,
                "group": beside["raise"][i] if beside else None,
            }
            rule = next(r for r in survey.scoring if r.question == entry.question)
            q = survey.question(entry.question)
            real = [o for o in as_tuple(answers.get(q.key)) if q.option(o) and not q.option(o).exclusive]
            alternative = q.type == "multi" and rule.any and entry.options and not real
            last = rows[-1] if rows else None
            if (
                alternative
                and last
                and last["alternative"]
                and (last["question"], last["points"]) == (entry.question, entry.points)
            ):
                last["choices"].append(share)
                continue
            rows.append(
                {
                    "question": entry.question,
                    "text": question,
                    "points": entry.points,
                    "alternative": bool(alternative),
                    "choices": [share],
                }
            )
        return rows

    rows = raise_rows()
    return {
        "survey": survey,
        "p": published,
        "you": you,
        "beside": beside,
        "band_text": band_text,
        "raise_rows": rows,
        "top_actions": [top_action(row) for row in rows[:TOP_ACTIONS]],
        "verdict": verdict_text(you) if you is not None and published.published else None,
        "findings": findings(survey, published),
        "raise_text": raise_text,
        "standing_text": standing_text,
        "label": lambda q, o: charts.label_of(survey, q, o),
        "mine": {q.key: as_tuple(answers.get(q.key)) for q in survey.questions},
        "group_label": group_label,
        "number": {q.key: i for i, q in enumerate(survey.questions, 1)},
        "merged": [g for g in groups.values() if len(g.members) > 1],
        "caution_n": publishing.CAUTION_N,
        "caution_width": publishing.CAUTION_WIDTH,
        "interval": charts.interval_text,
        "you_mark": charts.YOU_MARK,
        "change_text": charts.change_text,
    }


# How many actions the scorecard leads with.
TOP_ACTIONS = 3
# Shares said in words: "about 3 in 4". Few, familiar fractions; the nearest is said.
_FRACTIONS = ((1, 10), (1, 5), (1, 4), (1, 3), (2, 5), (1, 2), (3, 5), (2, 3), (3, 4), (4, 5), (9, 10))


def in_words(percent: int) -> str:
    """A published share as people say it: 74 -> "about 3 in 4"."""
    if percent >= 95:
        return "nearly all"
    if percent < 5:
        return "fewer than 1 in 20"
    top, bottom = min(_FRACTIONS, key=lambda f: (abs(percent / 100 - f[0] / f[1]), f[1]))
    return f"about {top} in {bottom}"


def verdict_text(you: You) -> str | None:
    """One line, in words, on where a clinic's index stands in the published histogram.

    From the shares of clinics in a lower 10-point band, the same band and a higher one, as
    published (the clinic itself included); None when the histogram is not published.
    """
    below, above = you.below, you.above
    if below is None or above is None:
        return None
    if above == 0:
        return "No clinic scores in a higher band than yours: your clinic is among the highest."
    if above >= 50:
        return f"{in_words(above).capitalize()} clinics score higher than yours."
    if below >= 50:
        return f"{in_words(below).capitalize()} clinics score lower than yours."
    return (
        f"Your clinic is near the middle: {in_words(above)} clinics score higher than yours, {in_words(below)} lower."
    )


def action_of(survey: Survey, question: str, options: Sequence[str]) -> tuple[str, str]:
    """The action and reason of one or more options that earn the same points: (action, why).

    Equally scored neighbours in a single-choice question are steps of one scale ("within 24
    hours", "within 48 hours"): the last is the least a clinic needs to do, and clinics doing
    more do it too, so its action is the one said. Options apart from each other are different
    ways to the points, said with "or". An option without an action falls back to its label.
    """
    q = survey.question(question)
    found = [q.option(o) for o in options if q is not None and q.option(o) is not None]
    if not found:
        return " or ".join(options), ""
    positions = [q.options.index(o) for o in found]
    if len(found) > 1 and positions == list(range(positions[0], positions[0] + len(found))):
        found = found[-1:]
    texts = [o.action or o.label for o in found]
    texts[1:] = [t[0].lower() + t[1:] if t[1:2].islower() else t for t in texts[1:]]
    return " or ".join(texts), " ".join(o.why for o in found if o.why)


def top_action(row: dict) -> dict:
    """One of the scorecard's first actions: a row of the ranked list, an "any one of" row as its
    most common way (the others a link away)."""
    choices = row["choices"]
    lead = max(choices, key=lambda c: -1 if c["percent"] is None else c["percent"]) if len(choices) > 1 else choices[0]
    return row | {"lead": lead, "others": len(choices) - 1}


def figures_for(survey: Survey, served: ServedSnapshot, you: You | None) -> dict:
    """The page's figures, from the app's cache when the snapshot and answers are the same."""
    answers = json.dumps(you.answers if you is not None else None, sort_keys=True)
    cache_key = (served.survey, served.snapshot_id, answers, you.index if you is not None else None)
    figures = state.of().cache.figures
    built = figures.get(cache_key)
    if built is None:
        built = charts.figures(survey, served.published, you)
        figures.put(cache_key, built)
    return built


@dataclass(frozen=True)
class WaveIndex:
    """The overall index then and now: each wave's published figures, and whether both waves
    score it the same way."""

    then: IndexFigures
    now: IndexFigures
    same_scoring: bool


@dataclass(frozen=True)
class WaveView:
    """A survey's earlier wave as its results page shows it."""

    earlier: Survey
    # The earlier wave's served snapshot: the public page's cache key holds it, so that the
    # comparison follows the earlier wave's own snapshots (a release stores a new one).
    snapshot_id: int | None
    # Why no comparison is shown ("unpublished", "early-access"), or None.
    withheld: str | None
    # pipeline/waves.compare of the two waves' published figures; None when withheld.
    comparison: dict | None
    # The earlier wave's release threshold, for the page that says it was never published.
    threshold: int
    # The overall index then and now: each wave's published percentiles, and whether both waves
    # score it the same way (None when withheld).
    index: WaveIndex | None = None


def wave_view(survey: Survey, served: ServedSnapshot, earlier: Survey, key_holder: bool) -> WaveView:
    """The comparison with the earlier wave, from each wave's own published snapshot.

    key_holder: this request holds a key of the earlier wave, so that wave's early access is
    open to it; anyone else sees its figures only once they are released.
    """
    theirs = snapshots.served(earlier)
    published = theirs.published
    withheld = None
    if not published.published:
        withheld = "unpublished"
    elif not published.released and not key_holder:
        withheld = "early-access"
    comparison = index = None
    if withheld is None and served.published.published:
        comparison = waves.compare(earlier, published, survey, served.published)
        index = WaveIndex(published.index, served.published.index, earlier.scoring == survey.scoring)
    return WaveView(
        earlier,
        theirs.snapshot_id,
        withheld,
        comparison,
        published.rules.release_threshold,
        index,
    )


def wave_figures(survey: Survey, view: WaveView | None, served: ServedSnapshot) -> dict:
    """The "then → now" charts of the comparable questions, from the app's cache per pair of snapshots."""
    if view is None or not view.comparison:
        return {}
    cache_key = ("waves", served.survey, served.snapshot_id, view.snapshot_id)
    figures = state.of().cache.figures
    built = figures.get(cache_key)
    if built is None:
        built = {
            f"chart-wave-{q['key']}": charts.change_figure(survey, q, view.earlier.version, survey.version)
            for q in view.comparison["questions"]
        }
        figures.put(cache_key, built)
    return built


def guide_context(survey: Survey, published: Published | None, answers: dict | None, shares: bool) -> dict:
    """The guide: every practice the survey scores, grouped by question, with its action, reason,
    points and (when `shares`) the published share of clinics doing it with its interval.

    With a clinic's answers each practice is marked done or not, and the questions and their
    practices are ordered by the points the clinic can still gain (most first); without, the
    survey's own order. Shares come from the published figures only, never from exact counts.
    """
    questions = published.questions if published is not None else ()
    cells = {q.key: {c.key: c for c in q.options} for q in questions if q.enough} if shares else {}
    groups: list[dict[str, Any]] = []
    for order, rule in enumerate(survey.scoring):
        q = survey.question(rule.question)
        assert q is not None  # questions.py checks every scored question exists
        chosen = as_tuple((answers or {}).get(q.key))
        real_options = frozenset(o.key for o in q.options if not o.exclusive)
        real_chosen = [o for o in chosen if o in real_options]
        have = rule.score(chosen, real_options)
        points = dict(rule.points)
        practices: list[dict[str, Any]] = []
        for position, key in enumerate(rule.scored_options(q)):
            option = q.option(key)
            if q.type == "single":
                earns = points.get(key, 0)
                gain = max(0, earns - have)
            else:
                earns = points.get(key, 0)  # an "any" rule's points are the group's, said once
                gain = 0 if key in chosen else points.get(key, 0) + (rule.any if not real_chosen else 0)
            practices.append(
                {
                    "key": key,
                    "action": option.action or option.label,
                    "why": option.why,
                    "label": option.label,
                    "points": earns,
                    "gain": gain,
                    "position": position,
                    "done": key in chosen if answers else None,
                    "cell": cells.get(q.key, {}).get(key),
                }
            )
        if rule.extra_points:
            practices.append(
                {
                    "key": None,
                    "action": f"Do {rule.extra_at_least} or more of these",
                    "why": "",
                    "label": "",
                    "points": rule.extra_points,
                    "position": len(practices),
                    "gain": rule.extra_points if len(real_chosen) < rule.extra_at_least else 0,
                    "done": len(real_chosen) >= rule.extra_at_least if answers else None,
                    "cell": None,
                }
            )
        if answers:
            practices.sort(key=lambda p: (p["done"], -p["gain"], p["position"]))
        gain = rule.maximum(q) - have
        groups.append(
            {
                "question": q,
                "number": survey.questions.index(q) + 1,
                "single": q.type == "single",
                "any": rule.any,
                "most": rule.maximum(q),
                "have": have,
                "practices": practices,
                "gain": gain,
                "order": order,
                "n": next((x.n for x in questions if x.key == q.key), None),
            }
        )
    if answers:
        groups.sort(key=lambda g: (-g["gain"], g["order"]))
    return {
        "survey": survey,
        "groups": groups,
        "shares": bool(cells),
        "you": answers is not None,
        "index": survey.index_of(answers) if answers else None,
        "interval": charts.interval_text,
        "practices": sum(len(g["practices"]) for g in groups),
    }


# How many practices the public results lead with, at each end.
FINDINGS = 3


def findings(survey: Survey, published: Published) -> dict | None:
    """The most and the least common practices, from the published shares, for the page to say in words.

    A practice is a scored option of a multi-select question, or the best-scoring answer(s) of a
    single-choice one (said as its action, with the share of clinics giving any of them): what
    the index recommends, each once. Questions not published ("not enough responses") are left
    out. None when there are too few practices to name both ends apart.
    """
    if not published.published:
        return None
    questions = {q.key: q for q in published.questions if q.enough}
    numbers = {q.key: i for i, q in enumerate(survey.questions, 1)}
    found: list[dict[str, Any]] = []
    for rule in survey.scoring:
        q = survey.question(rule.question)
        assert q is not None  # questions.py checks every scored question exists
        cells = questions.get(q.key)
        if cells is None:
            continue
        if q.type == "single":
            points = dict(rule.points)
            best = max(points.values(), default=0)
            groups = [[o for o in q.option_keys if points.get(o, 0) == best]] if best else []
        else:
            groups = [[o] for o in rule.scored_options(q)]
        for options in groups:
            share = publishing.combined_percent(cells, options, cells.n)
            if share is not None:
                action, _ = action_of(survey, q.key, options)
                found.append({"question": q.key, "number": numbers[q.key], "action": action, "percent": share})
    if len(found) < 2 * FINDINGS:
        return None
    ranked = sorted(found, key=lambda f: (-f["percent"], f["number"]))
    return {"most": ranked[:FINDINGS], "least": ranked[-FINDINGS:][::-1]}


def week_text(iso_week: str | None) -> str:
    """An ISO week ("2026-W50") as people read it: the date its Monday falls on ("7 Dec 2026")."""
    if not iso_week:
        return ""
    try:
        year, week = iso_week.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        return iso_week
    return f"{monday.day} {monday:%b %Y}"
