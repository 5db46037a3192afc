"""Plotly figures drawn from the published benchmark, as JSON for plotly.js.

Pure: imports neither Flask nor the database. Every number on a chart is one the published
figures already hold (a percent, an interval end, a percentile): nothing here computes with the
data, it only places and formats it. Those numbers are the perturbed ones (disclosure.py).
"""

from __future__ import annotations

import html
import json
import textwrap
from typing import Any, Iterable, Mapping

import plotly.graph_objects as go
import plotly.io as pio

from ..questions import Survey, as_tuple
from .figures import Bin, Cell, IndexFigures, Outcome, Published, QuestionFigures, You

# Okabe–Ito colours: told apart with every common colour-vision deficiency.
BLUE = "#0072B2"
VERMILLION = "#D55E00"
SKY = "#56B4E9"
INK = "#1d2327"
GREY = "#4d5a61"
# Vermillion darkened for text: 4.5:1 contrast on white, as small text needs.
YOU_TEXT = "#a4410f"
# "Your clinic" is a diamond with a label as well as a colour, so it survives greyscale.
YOU_SYMBOL = "diamond"
YOU_MARK = "◆"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
# Row geometry in pixels: a bar or dot row, and the wrapped option label above it.
BAR_PX = 18
LINE_PX = 18
# Below the plot: tick labels, the axis title and a legend that may wrap to two lines on a phone.
BOTTOM_PX = 104
# Characters per label line: fits a 390 px phone at the label font size.
WRAP = 44
# Rows of labels above the index histogram (pixels above the plot): the 25th and 75th percentile,
# the median, then "your clinic", clear of the diamond that tops your clinic's line.
INDEX_ROWS = {"quartiles": 10, "median": 26, "you": 42}
INDEX_TOP = 66
# plotly.js options: no toolbar, no zoom or drag (a chart must not trap a phone's scrolling).
CONFIG = {"displayModeBar": False, "responsive": True, "scrollZoom": False, "doubleClick": False}


def label_of(survey: Survey, question: str, option: str) -> str:
    """An option's label from the survey (the key if the survey no longer has it)."""
    q = survey.question(question)
    o = q.option(option) if q else None
    return o.label if o else option


def _plain(text: str) -> str:
    """Text for plotly's pseudo-HTML: a label's < and & are shown, never read as markup."""
    return html.escape(text, quote=False)


def interval_text(cell: Cell | Bin | None) -> str:
    """'31–45%': a cell's 95% interval ('' for no cell)."""
    return f"{cell.ci[0]}–{cell.ci[1]}%" if cell is not None else ""


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WRAP) or [""]


def _layout(height: int, top: int, **extra: Any) -> dict[str, Any]:
    """Shared look: our font, no background, fixed axes, legend under the plot."""
    return {
        "template": "none",
        "height": height,
        "autosize": True,
        "font": {"family": FONT, "size": 13, "color": INK},
        "margin": {"l": 16, "r": 44, "t": top, "b": BOTTOM_PX},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "dragmode": False,
        "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "y": 0, "yanchor": "bottom", "yref": "container", "font": {"size": 12}},
        "showlegend": True,
        **extra,
    }


def _percent_axis(title: str) -> dict[str, Any]:
    return {
        "range": [0, 100],
        "ticksuffix": "%",
        "dtick": 25,
        "fixedrange": True,
        "zeroline": True,
        "zerolinecolor": "#9aa5aa",
        "showgrid": True,
        "gridcolor": "#e3e8ea",
        "title": {"text": title, "font": {"size": 12}},
        "automargin": True,
    }


def _to_json(fig: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON data (lists, not typed arrays), with the plotly.js config."""
    data = json.loads(pio.to_json(fig, validate=False, engine="json"))
    return {"data": data["data"], "layout": data["layout"], "config": CONFIG}


def _rows(
    keys: list[str], labels: list[str], marked: Iterable[str], mark_text: str
) -> tuple[list[dict[str, Any]], int, int]:
    """Label annotations above each row, the row height and the top margin."""
    marked = set(marked)
    wrapped = {k: [_plain(line) for line in _wrap(label)] for k, label in zip(keys, labels)}
    for k in marked:
        wrapped[k] = wrapped[k] + [f"<b style='color:{YOU_TEXT}'>{YOU_MARK} {mark_text}</b>"]
    lines = max(len(v) for v in wrapped.values())
    row = BAR_PX + 24 + lines * LINE_PX
    notes = [
        {
            "x": 0,
            "xref": "paper",
            "y": k,
            "yref": "y",
            "xanchor": "left",
            "yanchor": "bottom",
            "yshift": BAR_PX / 2 + 1,
            "showarrow": False,
            "align": "left",
            "text": "<br>".join(wrapped[k]),
        }
        for k in keys
    ]
    top = max(0, lines * LINE_PX + BAR_PX // 2 + 2 - row // 2) + 12
    return notes, row, top


def question_figure(
    survey: Survey, question: QuestionFigures, answers: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """Bars (single choice) or dots (multi-select) with 95% interval whiskers; None if nothing is shown."""
    cells = {c.key: c for c in question.options}
    if not cells:
        return None
    keys = list(cells)
    single = question.type == "single"
    mine = [k for k in as_tuple((answers or {}).get(question.key)) if k in cells]
    mark_text = "your answer" if single else "your clinic does this"
    labels = [label_of(survey, question.key, k) for k in keys]
    notes, row, top = _rows(keys, labels, mine, mark_text)
    x = [cells[k].percent for k in keys]
    hover = [
        f"{cells[k].percent}% ({cells[k].count} of {question.n} clinics)<br>95% interval {interval_text(cells[k])}"
        for k in keys
    ]
    name = "Share of clinics"
    if single:
        main = go.Bar(
            x=x,
            y=keys,
            orientation="h",
            name=name,
            marker={"color": BLUE},
            width=BAR_PX / row,
            hovertext=hover,
            hoverinfo="text",
        )
    else:
        main = go.Scatter(
            x=x,
            y=keys,
            mode="markers",
            name=name,
            hovertext=hover,
            hoverinfo="text",
            marker={"symbol": "circle", "size": 13, "color": BLUE, "line": {"color": "#fff", "width": 1}},
        )
    wx, wy = [], []
    for k in keys:
        wx += [cells[k].ci[0], cells[k].ci[1], None]
        wy += [k, k, None]
    whiskers = go.Scatter(
        x=wx,
        y=wy,
        mode="lines+markers",
        name="95% interval",
        hoverinfo="skip",
        line={"color": INK, "width": 1.5},
        marker={"symbol": "line-ns-open", "size": 10, "color": INK},
    )
    values = go.Scatter(
        x=[cells[k].ci[1] for k in keys],
        y=keys,
        mode="text",
        showlegend=False,
        text=[f" {cells[k].percent}%" for k in keys],
        textposition="middle right",
        hoverinfo="skip",
        cliponaxis=False,
        textfont={"size": 12},
    )
    traces = [main, whiskers, values]
    if mine:
        traces.append(
            go.Scatter(
                x=[cells[k].percent for k in mine],
                y=mine,
                mode="markers",
                name="Your answer" if single else "Your clinic does this",
                text=["Your clinic" for _ in mine],
                hovertemplate="%{text}<extra></extra>",
                marker={"symbol": YOU_SYMBOL, "size": 16, "color": VERMILLION, "line": {"color": INK, "width": 1.5}},
            )
        )
    height = top + row * len(keys) + BOTTOM_PX
    layout = _layout(
        height,
        top,
        annotations=notes,
        bargap=0,
        xaxis=_percent_axis("Share of clinics that answered (95% interval)"),
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": keys,
            "autorange": "reversed",
            "showticklabels": False,
            "fixedrange": True,
            "showgrid": False,
            "zeroline": False,
        },
    )
    return _to_json(go.Figure(data=traces, layout=layout))


def index_figure(index: IndexFigures, you: You | None = None, name: str = "aftercare index") -> dict[str, Any] | None:
    """The index histogram in 10-point bins, the percentile band and your clinic's index."""
    bins = index.histogram
    if not bins:
        return None
    p = index.percentiles
    hover = [f"Index {b.from_}–{b.to}: {b.percent}% ({b.count} clinics)" for b in bins]
    traces = [
        go.Bar(
            x=[b.from_ for b in bins],
            y=[b.percent for b in bins],
            offset=0,
            width=10,
            name="Share of clinics",
            hovertext=hover,
            hoverinfo="text",
            marker={"color": BLUE, "line": {"color": "#fff", "width": 1}},
        )
    ]
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    if p.get("25") is not None and p.get("75") is not None:
        shapes.append(
            {
                "type": "rect",
                "x0": p["25"],
                "x1": p["75"],
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "fillcolor": SKY,
                "opacity": 0.22,
                "line": {"width": 0},
                "layer": "below",
            }
        )
        traces.append(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name="Middle half (25th–75th percentile)",
                marker={"symbol": "square", "size": 14, "color": SKY, "opacity": 0.5},
            )
        )
    for key, dash, text in (
        ("10", "dot", "10th"),
        ("25", "solid", "25th"),
        ("50", "solid", "median"),
        ("75", "solid", "75th"),
        ("90", "dot", "90th"),
    ):
        if p.get(key) is None:
            continue
        width = 2.5 if key == "50" else 1
        shapes.append(
            {
                "type": "line",
                "x0": p[key],
                "x1": p[key],
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"color": INK, "width": width, "dash": dash},
            }
        )
        if key in ("25", "50", "75"):
            notes.append(
                {
                    "x": p[key],
                    "y": 1,
                    "yref": "paper",
                    "yanchor": "bottom",
                    "showarrow": False,
                    "yshift": INDEX_ROWS["median" if key == "50" else "quartiles"],
                    "font": {"size": 11},
                    "text": f"{'<b>median</b>' if key == '50' else text} {p[key]:g}",
                }
            )
    if you is not None:
        mine = you.index
        # On an invisible 0-1 axis, so the diamond sits at the top of its line whatever the bars' heights.
        traces.append(
            go.Scatter(
                x=[mine],
                y=[1],
                yaxis="y2",
                mode="markers",
                name="Your clinic",
                cliponaxis=False,
                text=[f"Your clinic: {mine}"],
                hovertemplate="%{text}<extra></extra>",
                marker={"symbol": YOU_SYMBOL, "size": 16, "color": VERMILLION, "line": {"color": INK, "width": 1.5}},
            )
        )
        shapes.append(
            {
                "type": "line",
                "x0": mine,
                "x1": mine,
                "y0": 0,
                "y1": 1,
                "yref": "paper",
                "line": {"color": VERMILLION, "width": 2, "dash": "dash"},
            }
        )
        # Above the plot in a row of its own: never on the bars or the percentile labels.
        notes.append(
            {
                "x": mine,
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "yshift": INDEX_ROWS["you"],
                "showarrow": False,
                "xanchor": "left" if mine <= 50 else "right",
                "xshift": -7 if mine <= 50 else 7,
                "text": f"<b>{YOU_MARK} Your clinic: {mine}</b>",
                "font": {"color": YOU_TEXT},
            }
        )
    layout = _layout(
        380 + INDEX_TOP - 48,
        INDEX_TOP,
        shapes=shapes,
        annotations=notes,
        bargap=0,
        xaxis={
            "range": [0, 100],
            "dtick": 10,
            "fixedrange": True,
            "zeroline": False,
            "automargin": True,
            "title": {"text": f"{name[:1].upper()}{name[1:]} (0–100)", "font": {"size": 12}, "standoff": 8},
        },
        yaxis={
            "ticksuffix": "%",
            "fixedrange": True,
            "rangemode": "tozero",
            "gridcolor": "#e3e8ea",
            "automargin": True,
            "title": {"text": "Share of clinics", "font": {"size": 12}},
        },
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
    )
    return _to_json(go.Figure(data=traces, layout=layout))


def outcome_figure(survey: Survey, outcome: Outcome | None, you: You | None = None) -> dict[str, Any] | None:
    """Index percentiles for each answer to the outcome question (a band per answer)."""
    if not outcome:
        return None
    rows = [o for o in outcome.options if any(v is not None for v in o.percentiles.values())]
    if not rows:
        return None
    keys = [o.key for o in rows]
    labels = [label_of(survey, outcome.question, k) for k in keys]
    mine = [k for k in as_tuple(you.answers.get(outcome.question)) if k in keys] if you is not None else []
    notes, row, top = _rows(keys, labels, mine, "your answer")

    def segment(lo: str, hi: str) -> tuple[list[Any], list[Any]]:
        xs, ys = [], []
        for o in rows:
            xs += [o.percentiles[lo], o.percentiles[hi], None]
            ys += [o.key, o.key, None]
        return xs, ys

    wide, narrow = segment("10", "90"), segment("25", "75")
    traces = [
        go.Scatter(
            x=wide[0],
            y=wide[1],
            mode="lines",
            name="10th–90th percentile",
            hoverinfo="skip",
            line={"color": GREY, "width": 2},
        ),
        go.Scatter(
            x=narrow[0],
            y=narrow[1],
            mode="lines",
            name="25th–75th percentile",
            hoverinfo="skip",
            line={"color": SKY, "width": 10},
        ),
        go.Scatter(
            x=[o.percentiles["50"] for o in rows],
            y=keys,
            mode="markers",
            name="Median index",
            marker={"symbol": "line-ns", "size": 18, "color": INK, "line": {"width": 3, "color": INK}},
            hovertext=[f"median {o.percentiles['50']}, {o.n} clinics" for o in rows],
            hoverinfo="text",
        ),
    ]
    if mine and you is not None:
        traces.append(
            go.Scatter(
                x=[you.index],
                y=mine[:1],
                mode="markers",
                name="Your clinic's index",
                cliponaxis=False,
                text=["Your clinic"],
                hovertemplate=f"Your index: {you.index}<extra></extra>",
                marker={"symbol": YOU_SYMBOL, "size": 16, "color": VERMILLION, "line": {"color": INK, "width": 1.5}},
            )
        )
    layout = _layout(
        top + row * len(keys) + BOTTOM_PX,
        top,
        annotations=notes,
        xaxis={
            "range": [0, 100],
            "dtick": 10,
            "fixedrange": True,
            "zeroline": False,
            "gridcolor": "#e3e8ea",
            "automargin": True,
            "title": {
                "text": f"{survey.index_name[:1].upper()}{survey.index_name[1:]} (0–100)",
                "font": {"size": 12},
                "standoff": 8,
            },
        },
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": keys,
            "autorange": "reversed",
            "showticklabels": False,
            "fixedrange": True,
            "showgrid": False,
            "zeroline": False,
        },
    )
    return _to_json(go.Figure(data=traces, layout=layout))


# A wave comparison row, in pixels: wave 1's interval runs this far above the dots, wave 2's below.
WAVE_OFFSET_PX = 8
# Then is an open grey ring, now a smaller filled blue square: told apart by shape, not colour
# alone, and a square inside its ring when the share did not change.
THEN_SYMBOL = "circle-open"
NOW_SYMBOL = "square"
THEN_SIZE, NOW_SIZE = 16, 10


def change_text(points: int) -> str:
    """A change in points as a reader writes it: +6, −23 (a minus sign, not a hyphen), 0."""
    return f"+{points}" if points > 0 else f"−{-points}" if points < 0 else "0"


def change_figure(survey: Survey, question: dict[str, Any], then_version: int, now_version: int) -> dict[str, Any]:
    """A "then → now" dot plot of one comparable question (pipeline/waves.py): each wave's
    published share with its 95% interval, a line between them and the change in points."""
    options = question["options"]
    labels = [[_plain(line) for line in _wrap(label_of(survey, question["key"], o["key"]))] for o in options]
    # The y axis counts pixels down from the top of the plot, so labels, intervals and dots never overlap.
    centres, y = [], 0
    for lines in labels:
        y += len(lines) * LINE_PX + WAVE_OFFSET_PX + 10
        centres.append(y)
        y += WAVE_OFFSET_PX + 16
    notes = [
        {
            "x": 0,
            "xref": "paper",
            "y": c - WAVE_OFFSET_PX - 6,
            "yref": "y",
            "xanchor": "left",
            "yanchor": "bottom",
            "showarrow": False,
            "align": "left",
            "text": "<br>".join(lines),
        }
        for c, lines in zip(centres, labels)
    ]

    def pairs(xs: list[Any], ys: list[Any]) -> tuple[list[Any], list[Any]]:
        """Separate segments for one line trace (None breaks the line)."""
        out_x, out_y = [], []
        for (x0, x1), y_ in zip(xs, ys):
            out_x += [x0, x1, None]
            out_y += [y_, y_, None]
        return out_x, out_y

    def dots(wave: str, version: int, n: int, shift: int, symbol: str, size: int, colour: str, dash: str) -> list[Any]:
        """One wave: its intervals (shifted above or below the dots) and its dots."""
        cells: list[Cell] = [o[wave] for o in options]
        hover = [
            f"Wave {version}: {c.percent}% ({c.count} of {n} clinics)<br>95% interval {interval_text(c)}" for c in cells
        ]
        wx, wy = pairs([c.ci for c in cells], [c + shift for c in centres])
        return [
            go.Scatter(
                x=wx,
                y=wy,
                mode="lines+markers",
                showlegend=False,
                hoverinfo="skip",
                line={"color": colour, "width": 1.5, "dash": dash},
                marker={"symbol": "line-ns-open", "size": 8, "color": colour},
            ),
            go.Scatter(
                x=[c.percent for c in cells],
                y=centres,
                mode="markers",
                cliponaxis=False,
                name=f"Wave {version} ({wave})",
                hovertext=hover,
                hoverinfo="text",
                marker={"symbol": symbol, "size": size, "color": colour, "line": {"color": colour, "width": 2}},
            ),
        ]

    cx, cy = pairs([(o["then"].percent, o["now"].percent) for o in options], centres)
    traces = [
        go.Scatter(x=cx, y=cy, mode="lines", showlegend=False, hoverinfo="skip", line={"color": "#9aa5aa", "width": 3})
    ]
    traces += dots("then", then_version, question["n"][0], -WAVE_OFFSET_PX, THEN_SYMBOL, THEN_SIZE, GREY, "dot")
    traces += dots("now", now_version, question["n"][1], WAVE_OFFSET_PX, NOW_SYMBOL, NOW_SIZE, BLUE, "solid")
    traces.append(
        go.Scatter(
            x=[max(o["then"].ci[1], o["now"].ci[1]) for o in options],
            y=centres,
            mode="text",
            showlegend=False,
            text=[f" {change_text(o['change'])}" for o in options],
            textposition="middle right",
            hoverinfo="skip",
            cliponaxis=False,
            textfont={"size": 12},
        )
    )
    top = 8
    layout = _layout(
        top + y + BOTTOM_PX,
        top,
        annotations=notes,
        xaxis=_percent_axis("Share of clinics that answered (95% interval)"),
        yaxis={"range": [y, 0], "visible": False, "fixedrange": True},
    )
    return _to_json(go.Figure(data=traces, layout=layout))


def figures(survey: Survey, published: Published, you: You | None = None) -> dict[str, dict[str, Any]]:
    """Every chart of a published benchmark by element id; "your clinic" marked when you is given."""
    if not published.published:
        return {}
    answers = you.answers if you is not None else None
    out = {f"chart-{q.key}": question_figure(survey, q, answers) for q in published.questions}
    out["chart-index"] = index_figure(published.index, you, survey.index_name)
    out["chart-outcome"] = outcome_figure(survey, published.outcome, you)
    return {k: v for k, v in out.items() if v is not None}
