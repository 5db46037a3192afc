"""Participation per ISO week, from the stored weeks alone (responses keep no finer time).

Pure: the counts come in as {week: responses}; out come the weeks in order, gaps filled with
zeros, and the geometry of a small bar chart drawn as server-side SVG (no script).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
# A chart of more weeks than this shows the latest ones; the table still lists them all.
CHART_WEEKS = 26
MIN_SLOTS = 12


@dataclass(frozen=True)
class Week:
    week: str
    responses: int


@dataclass(frozen=True)
class Bar:
    week: str
    responses: int
    x: float
    y: float
    width: float
    height: float


def monday(week: str) -> dt.date | None:
    """The Monday of an ISO week such as 2026-W48; None for anything else."""
    match = WEEK.match(week)
    if not match:
        return None
    try:
        return dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:  # 2026-W54
        return None


def iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def weekly(counts: Mapping[str, int], until: str | None = None) -> list[Week]:
    """Every week from the first with a response to the last (or `until`, if later), in order."""
    mondays = sorted(d for d in (monday(w) for w in counts) if d is not None)
    if not mondays:
        return []
    last = max(mondays[-1], monday(until) or mondays[-1]) if until else mondays[-1]
    weeks, day = [], mondays[0]
    while day <= last:
        name = iso_week(day)
        weeks.append(Week(name, int(counts.get(name, 0))))
        day += dt.timedelta(weeks=1)
    return weeks


def bars(weeks: list[Week], width: float = 600, height: float = 160) -> list[Bar]:
    """The latest CHART_WEEKS weeks as bars in a width x height box, the tallest filling it."""
    shown = weeks[-CHART_WEEKS:]
    if not shown:
        return []
    top = max(w.responses for w in shown) or 1
    # At least MIN_SLOTS slots, so a survey's first week is a bar, not a wall.
    step = width / max(len(shown), MIN_SLOTS)
    out = []
    for i, w in enumerate(shown):
        h = height * w.responses / top
        out.append(
            Bar(
                w.week,
                w.responses,
                round(i * step + step * 0.1, 2),
                round(height - h, 2),
                round(step * 0.8, 2),
                round(h, 2),
            )
        )
    return out
