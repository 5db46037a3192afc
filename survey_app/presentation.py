"""What the results pages and the static report show besides the published numbers.

Labels, the participant's own answers, caution thresholds and the chart figures, shared by
views/results.py and report.py so that both say the same thing about the same snapshot; and
the comparison with a survey's earlier wave, which only the pages show.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from . import snapshots, state
from .pipeline import charts, publishing, waves
from .questions import Survey, as_tuple
from .snapshots import ServedSnapshot


def results_context(survey: Survey, published: dict, you: dict | None) -> dict:
    """What the results templates need besides the published dict: labels, your answers, thresholds."""
    answers = (you or {}).get("answers") or {}
    groups = {g["key"]: g for g in published.get("segment", {}).get("groups", [])}

    def group_label(key: str) -> str:
        members = groups.get(key, {}).get("members", [key])
        if len(members) == 1:
            return charts.label_of(survey, survey.segment, members[0])
        return "Other groups combined"

    def raise_text(entry: dict) -> tuple[str, str]:
        """What one "raise" entry asks of the clinic, in the survey's words: (the change, its question)."""
        question = survey.question(entry["question"])
        if not entry["options"]:  # a bonus no single option carries
            rule = next(r for r in survey.scoring if r.question == entry["question"])
            return f"{rule.extra_at_least} or more of these answers", question.text
        labels = [charts.label_of(survey, entry["question"], o) for o in entry["options"]]
        # "Within 24 hours or within 48 hours": later labels read on in lower case (not "PHQ-9 …").
        labels[1:] = [t[0].lower() + t[1:] if t[1:2].islower() else t for t in labels[1:]]
        return " or ".join(labels), question.text

    def standing_text(view: dict) -> str:
        """Where the index stands among the published percentiles, in one sentence."""
        low, high = view["between_percentiles"]
        shown = {int(k): v for k, v in published["index"]["percentiles"].items() if v is not None}
        if not shown:
            return "Too few clinics have answered for the percentiles of the index to be published yet."
        name = {10: "10th", 25: "25th", 50: "50th", 75: "75th", 90: "90th"}
        top = {10: "the top nine tenths start", 25: "the top three quarters start", 50: "the top half starts",
               75: "the top quarter starts", 90: "the top tenth starts"}
        if low is None:
            return f"Your index is below the {name[high]} percentile: {top[high]} at {shown[high]:g}."
        if high is None:
            return f"Your index is at or above the {name[low]} percentile, {shown[low]:g}: among the highest published."
        return f"Your index is between the {name[low]} and the {name[high]} percentile; {top[high]} at {shown[high]:g}."

    def band_text(view: dict) -> str:
        """The participant's 10-point band of the index, as the histogram shows it ("60–69")."""
        band = next((b for b in published["index"]["histogram"] if b["from"] <= view["index"] <= b["to"]), None)
        return f"{band['from']}–{band['to']}" if band else ""

    beside = publishing.beside_group(survey, you, published) if you and published.get("published") else None

    def raise_rows() -> list[dict]:
        """The ranked list as the scorecard shows it: entries one "any" rule gives are alternatives.

        Where a multi-select question scores "any real option" and the clinic chose none, every
        option earns the same points, but only once: one row ("any one of these") lists them all,
        so that five "+10" lines do not read as fifty points.
        """
        rows: list[dict] = []
        for i, entry in enumerate((you or {}).get("raise") or []):
            change, question = raise_text(entry)
            share = {"label": change, "percent": entry["percent"],
                     "group": beside["raise"][i] if beside else None}
            rule = next(r for r in survey.scoring if r.question == entry["question"])
            q = survey.question(entry["question"])
            real = [o for o in as_tuple(answers.get(q.key)) if q.option(o) and not q.option(o).exclusive]
            alternative = q.type == "multi" and rule.any and entry["options"] and not real
            last = rows[-1] if rows else None
            if alternative and last and last["alternative"] and (last["question"], last["points"]) == (
                    entry["question"], entry["points"]):
                last["choices"].append(share)
                continue
            rows.append({"question": entry["question"], "text": question, "points": entry["points"],
                         "alternative": bool(alternative), "choices": [share]})
        return rows
    return {
        "survey": survey, "p": published, "you": you, "beside": beside, "band_text": band_text,
        "raise_rows": raise_rows(),
        "raise_text": raise_text, "standing_text": standing_text,
        "label": lambda q, o: charts.label_of(survey, q, o),
        "mine": {q.key: as_tuple(answers.get(q.key)) for q in survey.questions},
        "group_label": group_label,
        "number": {q.key: i for i, q in enumerate(survey.questions, 1)},
        "merged": [g for g in groups.values() if len(g["members"]) > 1],
        "caution_n": publishing.CAUTION_N, "caution_width": publishing.CAUTION_WIDTH,
        "interval": charts.interval_text, "you_mark": charts.YOU_MARK, "change_text": charts.change_text,
    }


def figures_for(survey: Survey, served: ServedSnapshot, you: dict | None) -> dict:
    """The page's figures, from the app's cache when the snapshot and answers are the same."""
    answers = json.dumps((you or {}).get("answers"), sort_keys=True)
    cache_key = (served.survey, served.snapshot_id, answers, (you or {}).get("index"))
    figures = state.of().cache.figures
    built = figures.get(cache_key)
    if built is None:
        built = charts.figures(survey, served.published, you)
        figures.put(cache_key, built)
    return built


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


def wave_view(survey: Survey, served: ServedSnapshot, earlier: Survey, key_holder: bool) -> WaveView:
    """The comparison with the earlier wave, from each wave's own published snapshot.

    key_holder: this request holds a key of the earlier wave, so that wave's early access is
    open to it; anyone else sees its figures only once they are released.
    """
    theirs = snapshots.served(earlier)
    published = theirs.published
    withheld = None
    if not published.get("published"):
        withheld = "unpublished"
    elif not published.get("released") and not key_holder:
        withheld = "early-access"
    comparison = None
    if withheld is None and served.published.get("published"):
        comparison = waves.compare(earlier, published, survey, served.published)
    return WaveView(earlier, theirs.snapshot_id, withheld, comparison,
                    int(published.get("rules", {}).get("release_threshold", 0)))


def wave_figures(survey: Survey, view: WaveView | None, served: ServedSnapshot) -> dict:
    """The "then → now" charts of the comparable questions, from the app's cache per pair of snapshots."""
    if view is None or not view.comparison:
        return {}
    cache_key = ("waves", served.survey, served.snapshot_id, view.snapshot_id)
    figures = state.of().cache.figures
    built = figures.get(cache_key)
    if built is None:
        built = {f"chart-wave-{q['key']}": charts.change_figure(survey, q, view.earlier.version, survey.version)
                 for q in view.comparison["questions"]}
        figures.put(cache_key, built)
    return built
