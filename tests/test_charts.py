"""Chart builders: "your clinic" by symbol and words, every published cell drawn, no new numbers."""

from __future__ import annotations

import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from survey_app import demo
from survey_app.pipeline import charts, publishing
from survey_app.pipeline.disclosure import Disclosure
from survey_app.pipeline.figures import IndexFigures, QuestionFigures, You
from survey_app.pipeline.tallies import tally


def cell(key, count, percent, ci):
    """A published cell: a perturbed count and the share and interval that follow from it."""
    return {"key": key, "count": count, "percent": percent, "ci": ci}


SINGLE = {
    "key": "first_followup",
    "type": "single",
    "n": 40,
    "caution": False,
    "segments": [],
    "notes": [],
    "options": [
        cell("within_24h", 20, 50, [35, 65]),
        cell("within_48h", 5, 13, [5, 26]),
        cell("within_72h", 0, 0, [0, 9]),
        cell("within_week", 12, 30, [18, 45]),
        cell("next_session", 3, 8, [3, 20]),
        cell("no_followup", 0, 0, [0, 9]),
    ],
}
MULTI = {
    "key": "discharge_checks",
    "type": "multi",
    "n": 40,
    "caution": False,
    "segments": [],
    "notes": [],
    "options": [
        cell("vitals", 30, 75, [60, 86]),
        cell("emotional_checkin", 6, 15, [7, 29]),
        cell("dissociation_resolved", 8, 20, [11, 35]),
        cell("ride_home", 0, 0, [0, 9]),
        cell("written_instructions", 40, 100, [91, 100]),
        cell("none", 0, 0, [0, 9]),
    ],
}
INDEX = {
    "n": 40,
    "caution": False,
    "percentiles": {"10": None, "25": 40.0, "50": 55.5, "75": 70.0, "90": None},
    "histogram": [
        {
            "from": lo,
            "to": hi,
            **(
                {"count": 0, "percent": 0, "ci": [0, 9]}
                if lo in (0, 90)
                else {"count": 5, "percent": 13, "ci": [5, 26]}
            ),
        }
        for lo, hi in publishing.BINS
    ],
    "notes": [],
}
OKABE_ITO = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}


def view(index: int, answers: dict | None = None) -> You:
    """A participant's view with only what the charts read: the answers and the index."""
    return You(answers or {}, index, None, None, None, (None, None), (), None)


def trace(fig, name):
    return next(t for t in fig["data"] if t.get("name") == name)


def you_traces(fig):
    return [t for t in fig["data"] if (t.get("marker") or {}).get("symbol") == charts.YOU_SYMBOL]


@pytest.mark.parametrize(
    "question, answers, mark",
    [
        (SINGLE, {"first_followup": "within_24h"}, "your answer"),
        (MULTI, {"discharge_checks": ["vitals", "written_instructions"]}, "your clinic does this"),
    ],
)
def test_your_answer_is_a_labelled_diamond(survey, question, answers, mark):
    fig = charts.question_figure(survey, QuestionFigures.from_json(question), answers)
    [you] = you_traces(fig)
    chosen = [answers[question["key"]]] if isinstance(answers[question["key"]], str) else answers[question["key"]]
    assert you["y"] == chosen and you["text"] == ["Your clinic"] * len(chosen)
    assert you["name"].lower().startswith("your")
    # Words beside the row too, so the mark does not rest on colour alone.
    labels = [a["text"] for a in fig["layout"]["annotations"] if mark in a["text"]]
    assert len(labels) == len(chosen) and all(charts.YOU_MARK in t for t in labels)


@pytest.mark.parametrize("question", [SINGLE, MULTI], ids=["single", "multi"])
def test_no_mark_without_answers(survey, question):
    fig = charts.question_figure(survey, QuestionFigures.from_json(question))
    assert you_traces(fig) == []
    assert not any("your" in a["text"] for a in fig["layout"]["annotations"])


@pytest.mark.parametrize("question", [SINGLE, MULTI], ids=["single", "multi"])
def test_every_published_cell_is_plotted(survey, question):
    """Every cell is a published (perturbed) count: each is drawn, a 0 as a 0, with its interval
    and its share written beside it; nothing is left out or marked "suppressed"."""
    answers = {question["key"]: [c["key"] for c in question["options"]]}
    fig = charts.question_figure(survey, QuestionFigures.from_json(question), answers)
    keys = [c["key"] for c in question["options"]]
    main = trace(fig, "Share of clinics")
    assert list(main["y"]) == keys and list(main["x"]) == [c["percent"] for c in question["options"]]
    whiskers = trace(fig, "95% interval")
    assert [y for y in whiskers["y"] if y is not None] == [k for k in keys for _ in (0, 1)]
    [values] = [t for t in fig["data"] if t.get("mode") == "text"]
    assert values["text"] == [f" {c['percent']}%" for c in question["options"]]
    [you] = you_traces(fig)
    assert you["y"] == keys
    assert "suppressed" not in json.dumps(fig)


def test_index_marks_you_and_plots_every_bin():
    fig = charts.index_figure(IndexFigures.from_json(INDEX), view(93))
    bars = trace(fig, "Share of clinics")
    assert list(bars["x"]) == [b["from"] for b in INDEX["histogram"]]
    assert list(bars["y"]) == [b["percent"] for b in INDEX["histogram"]]  # empty bins are 0, drawn
    assert "suppressed" not in json.dumps(fig)
    [you] = you_traces(fig)
    assert you["x"] == [93] and you["text"] == ["Your clinic: 93"]
    assert any("Your clinic: 93" in a["text"] for a in fig["layout"]["annotations"])
    # Percentiles that are not shown (null) draw no line.
    lines = [
        s["x0"] for s in fig["layout"]["shapes"] if s["type"] == "line" and s["line"]["color"] != charts.VERMILLION
    ]
    assert lines == [40.0, 55.5, 70.0]


@pytest.mark.parametrize(
    "build",
    [
        lambda s: charts.question_figure(s, QuestionFigures.from_json(SINGLE | {"options": []})),
        lambda s: charts.index_figure(IndexFigures.from_json({**INDEX, "histogram": []})),
        lambda s: charts.outcome_figure(s, None),
    ],
    ids=["no-cells", "no-bins", "no-outcome"],
)
def test_nothing_shown_means_no_figure(survey, build):
    assert build(survey) is None


@pytest.fixture(scope="module")
def published(survey):
    answers = [json.dumps(a) for a in demo.synthetic_answers(survey, 300, np.random.default_rng(3))]
    return publishing.publish(survey, tally(survey, answers), Disclosure(), True)


def _question_traces(q: dict, answer: str | list[str] | None) -> dict:
    """What each trace of a question's figure must plot: the published cells of that question only."""
    cells = {c["key"]: c for c in q["options"]}
    mine = [k for k in ([answer] if isinstance(answer, str) else answer or []) if k in cells]
    traces = {
        "Share of clinics": {"x": [c["percent"] for c in q["options"]], "y": [c["key"] for c in q["options"]]},
        "95% interval": {
            "x": [v for c in q["options"] for v in (*c["ci"], None)],
            "y": [v for c in q["options"] for v in (c["key"], c["key"], None)],
        },
        # the share, written at the right of the interval
        None: {
            "x": [c["ci"][1] for c in q["options"]],
            "y": [c["key"] for c in q["options"]],
            "text": [f" {c['percent']}%" for c in q["options"]],
        },
    }
    if mine:
        traces["Your answer" if q["type"] == "single" else "Your clinic does this"] = {
            "x": [cells[k]["percent"] for k in mine],
            "y": mine,
        }
    return traces


def _index_traces(index: dict, you: dict) -> dict:
    return {
        "Share of clinics": {
            "x": [b["from"] for b in index["histogram"]],
            "y": [b["percent"] for b in index["histogram"]],
        },
        "Middle half (25th–75th percentile)": {"x": [None], "y": [None]},  # a legend entry for the band
        "Your clinic": {"x": [you["index"]], "y": [1]},  # y on the hidden 0-1 axis: the top of the plot
    }


def _outcome_traces(outcome: dict, you: dict) -> dict:
    rows = [o for o in outcome["options"] if any(v is not None for v in o["percentiles"].values())]

    def span(lo, hi):
        return {
            "x": [v for o in rows for v in (o["percentiles"][lo], o["percentiles"][hi], None)],
            "y": [v for o in rows for v in (o["key"], o["key"], None)],
        }

    mine = you["answers"][outcome["question"]]
    return {
        "10th–90th percentile": span("10", "90"),
        "25th–75th percentile": span("25", "75"),
        "Median index": {"x": [o["percentiles"]["50"] for o in rows], "y": [o["key"] for o in rows]},
        "Your clinic's index": {"x": [you["index"]], "y": [mine]},
    }


def _plotted(fig: dict, expected: dict) -> dict:
    """The figure's traces by name, with the fields the expectation names."""
    out = {}
    for t in fig["data"]:
        assert t.get("name") not in out, t.get("name")
        out[t.get("name")] = {k: t.get(k) for k in expected.get(t.get("name"), {"x": 0, "y": 0})}
    return out


def test_figures_plot_only_published_numbers(survey, published):
    """Each trace plots the published numbers of its own question, in order, and nothing else."""
    you = {
        "answers": {
            "first_followup": "within_24h",
            "discharge_checks": ["vitals", "none"],
            "followup_completion": "pct_75_89",
        },
        "index": 61,
    }
    figures = charts.figures(survey, published, view(you["index"], you["answers"]))
    published = published.to_json()  # the expectations read the numbers as the API publishes them
    assert {f"chart-{q['key']}" for q in published["questions"]} | {"chart-index", "chart-outcome"} == set(figures)
    expected = {f"chart-{q['key']}": _question_traces(q, you["answers"].get(q["key"])) for q in published["questions"]}
    expected["chart-index"] = _index_traces(published["index"], you)
    expected["chart-outcome"] = _outcome_traces(published["outcome"], you)
    for name, fig in figures.items():
        assert _plotted(fig, expected[name]) == expected[name], name

    # The index percentiles are drawn as shapes: the band from the 25th to the 75th, a line at
    # each published percentile, and a dashed one at your clinic's index.
    p = published["index"]["percentiles"]
    lines = [("line", p[k], p[k]) for k in ("10", "25", "50", "75", "90") if p[k] is not None]
    shapes = [(s["type"], s["x0"], s["x1"]) for s in figures["chart-index"]["layout"]["shapes"]]
    assert shapes == [("rect", p["25"], p["75"]), *lines, ("line", 61, 61)]
    labels = {a["text"] for a in figures["chart-index"]["layout"]["annotations"]}
    assert {f"25th {p['25']:g}", f"<b>median</b> {p['50']:g}", f"75th {p['75']:g}"} <= labels


def test_figures_are_plain_json_in_the_palette(survey, published):
    figures = charts.figures(survey, published, view(50))
    text = json.dumps(figures)
    assert "bdata" not in text  # plain lists: charts.js and the report need no decoder
    colours = {c.upper() for c in re.findall(r'"(#[0-9A-Fa-f]{6})"', text)}
    data_colours = {
        c
        for c in colours
        if c not in {charts.INK.upper(), charts.GREY.upper(), "#FFFFFF", charts.YOU_TEXT.upper(), "#E3E8EA", "#9AA5AA"}
    }
    assert data_colours <= OKABE_ITO
    for fig in figures.values():
        go.Figure(data=fig["data"], layout=fig["layout"])  # valid plotly: raises on a wrong property


def test_nothing_before_publication(survey):
    empty = publishing.publish(survey, tally(survey, []), Disclosure(), False)
    assert charts.figures(survey, empty) == {}
