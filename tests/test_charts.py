"""Chart builders: "your clinic" by symbol and words, suppressed cells never drawn, no new numbers."""
from __future__ import annotations

import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from survey_app import benchmark, charts, demo


def cell(key, count=None, n=40, percent=None, ci=None):
    if count is None:
        return {"key": key, "count": None, "percent": None, "ci": None, "suppressed": True}
    return {"key": key, "count": count, "percent": percent, "ci": ci, "suppressed": False}


SINGLE = {"key": "first_followup", "type": "single", "n": 40, "caution": False, "segments": [], "notes": [],
          "options": [cell("within_24h", 20, percent=50, ci=[35, 65]), cell("within_48h"),
                      cell("within_72h", 0, percent=0, ci=[0, 9]), cell("within_week", 12, percent=30, ci=[18, 45]),
                      cell("next_session"), cell("no_followup", 0, percent=0, ci=[0, 9])]}
MULTI = {"key": "discharge_checks", "type": "multi", "n": 40, "caution": False, "segments": [], "notes": [],
         "options": [cell("vitals", 30, percent=75, ci=[60, 86]), cell("emotional_checkin"),
                     cell("dissociation_resolved", 8, percent=20, ci=[11, 35]), cell("ride_home", 0, percent=0, ci=[0, 9]),
                     cell("written_instructions", 40, percent=100, ci=[91, 100]), cell("none", 0, percent=0, ci=[0, 9])]}
INDEX = {"n": 40, "caution": False, "percentiles": {"10": None, "25": 40.0, "50": 55.5, "75": 70.0, "90": None},
         "histogram": [{"from": lo, "to": hi, **({"count": None, "percent": None, "ci": None, "suppressed": True}
                                                 if lo in (0, 90) else
                                                 {"count": 5, "percent": 13, "ci": [5, 26], "suppressed": False})}
                       for lo, hi in benchmark.BINS], "notes": []}
OKABE_ITO = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}


def trace(fig, name):
    return next(t for t in fig["data"] if t.get("name") == name)


def you_traces(fig):
    return [t for t in fig["data"] if (t.get("marker") or {}).get("symbol") == charts.YOU_SYMBOL]


@pytest.mark.parametrize("question, answers, mark", [
    (SINGLE, {"first_followup": "within_24h"}, "your answer"),
    (MULTI, {"discharge_checks": ["vitals", "written_instructions"]}, "your clinic does this"),
])
def test_your_answer_is_a_labelled_diamond(survey, question, answers, mark):
    fig = charts.question_figure(survey, question, answers)
    [you] = you_traces(fig)
    chosen = [answers[question["key"]]] if isinstance(answers[question["key"]], str) else answers[question["key"]]
    assert you["y"] == chosen and you["text"] == ["Your clinic"] * len(chosen)
    assert you["name"].lower().startswith("your")
    # Words beside the row too, so the mark does not rest on colour alone.
    labels = [a["text"] for a in fig["layout"]["annotations"] if mark in a["text"]]
    assert len(labels) == len(chosen) and all(charts.YOU_MARK in t for t in labels)


@pytest.mark.parametrize("question", [SINGLE, MULTI], ids=["single", "multi"])
def test_no_mark_without_answers(survey, question):
    fig = charts.question_figure(survey, question)
    assert you_traces(fig) == []
    assert not any("your" in a["text"] for a in fig["layout"]["annotations"])


@pytest.mark.parametrize("question", [SINGLE, MULTI], ids=["single", "multi"])
def test_suppressed_cells_are_never_plotted_as_zero(survey, question):
    fig = charts.question_figure(survey, question, {question["key"]: [c["key"] for c in question["options"]]})
    hidden = [c["key"] for c in question["options"] if c["suppressed"]]
    main = trace(fig, "Share of clinics")
    for key, x in zip(main["y"], main["x"]):
        assert (x is None) == (key in hidden), key
    for t in fig["data"]:
        if t is not main:
            assert not set(hidden) & set(t.get("y") or []), t.get("name")
    notes = {a["y"]: a["text"] for a in fig["layout"]["annotations"] if "suppressed" in a["text"]}
    assert set(notes) == set(hidden)


def test_index_marks_you_and_leaves_suppressed_bins_empty():
    fig = charts.index_figure(INDEX, {"index": 93})
    bars = trace(fig, "Share of clinics")
    assert [y for x, y in zip(bars["x"], bars["y"]) if x in (0, 90)] == [None, None]
    assert sum("suppressed" in a["text"] for a in fig["layout"]["annotations"]) == 2
    [you] = you_traces(fig)
    assert you["x"] == [93] and you["text"] == ["Your clinic: 93"]
    assert any("Your clinic: 93" in a["text"] for a in fig["layout"]["annotations"])
    # Percentiles that are withheld (null) draw no line.
    lines = [s["x0"] for s in fig["layout"]["shapes"] if s["type"] == "line" and s["line"]["color"] != charts.VERMILLION]
    assert lines == [40.0, 55.5, 70.0]


@pytest.mark.parametrize("build", [
    lambda s: charts.question_figure(s, SINGLE | {"options": [cell(c["key"]) for c in SINGLE["options"]]}),
    lambda s: charts.index_figure({**INDEX, "histogram": [b | {"suppressed": True} for b in INDEX["histogram"]]}),
    lambda s: charts.outcome_figure(s, None),
], ids=["all-suppressed", "all-bins-suppressed", "no-outcome"])
def test_nothing_shown_means_no_figure(survey, build):
    assert build(survey) is None


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


@pytest.fixture(scope="module")
def published(survey):
    answers = [json.dumps(a) for a in demo.synthetic_answers(survey, 300, np.random.default_rng(3))]
    return benchmark.publish(survey, benchmark.tally(survey, answers), benchmark.Disclosure(), True)


def test_figures_plot_only_published_numbers(survey, published):
    you = {"answers": {"first_followup": "within_24h"}, "index": 61}
    allowed = set(_numbers(published)) | {61}
    figures = charts.figures(survey, published, you)
    assert {f"chart-{q['key']}" for q in published["questions"]} | {"chart-index", "chart-outcome"} == set(figures)
    for name, fig in figures.items():
        for t in fig["data"]:
            for axis in ("x",) if t.get("orientation") == "h" or t["type"] == "scatter" else ("y",):
                stray = {v for v in _numbers(t.get(axis)) if v not in allowed}
                assert not stray, (name, t.get("name"), stray)


def test_figures_are_plain_json_in_the_palette(survey, published):
    figures = charts.figures(survey, published, {"answers": {}, "index": 50})
    text = json.dumps(figures)
    assert "bdata" not in text  # plain lists: charts.js and the report need no decoder
    colours = {c.upper() for c in re.findall(r'"(#[0-9A-Fa-f]{6})"', text)}
    data_colours = {c for c in colours if c not in {charts.INK.upper(), charts.GREY.upper(), "#FFFFFF",
                                                    charts.YOU_TEXT.upper(), "#E3E8EA", "#9AA5AA"}}
    assert data_colours <= OKABE_ITO
    for fig in figures.values():
        go.Figure(data=fig["data"], layout=fig["layout"])  # valid plotly: raises on a wrong property


def test_nothing_before_publication(survey):
    empty = benchmark.publish(survey, benchmark.tally(survey, []), benchmark.Disclosure(), False)
    assert charts.figures(survey, empty) == {}
