"""The static report: one HTML file that works offline (plotly.js beside it), plus CSV and JSON.

The same published snapshot the pages and the API serve; nothing is recomputed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from flask import current_app, render_template

from . import assets, exports
from .pipeline import charts
from .pipeline.figures import Published
from .presentation import results_context
from .questions import Survey

HTML_NAME = "report.html"
CSV_NAME = "aggregates.csv"
JSON_NAME = "benchmark.json"
PLOTLY_NAME = "plotly.min.js"


def steps(published: Published) -> int:
    """Units of work write_report reports through its progress callback."""
    return len(published.questions) + 2 + 4


def write_report(
    survey: Survey, published: Published, out_dir: str | Path, progress: Callable[[int], None] | None = None
) -> list[Path]:
    """Write report.html, plotly.min.js, aggregates.csv and benchmark.json into out_dir; their paths."""
    tick = progress or (lambda _n: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict] = {}
    if published.published:
        for q in published.questions:
            fig = charts.question_figure(survey, q)
            if fig is not None:
                figures[f"chart-{q.key}"] = fig
            tick(1)
        for key, fig in (
            ("chart-index", charts.index_figure(published.index)),
            ("chart-outcome", charts.outcome_figure(survey, published.outcome)),
        ):
            if fig is not None:
                figures[key] = fig
            tick(1)
    assert current_app.static_folder is not None  # the app is created with its static folder
    static = Path(current_app.static_folder)
    context = results_context(survey, published, None)
    html = render_template(
        "report.html",
        figures=figures,
        ctx=context,
        **context,
        css=(static / "pulse.css").read_text(encoding="utf-8"),
        charts_js=(static / "charts.js").read_text(encoding="utf-8"),
        plotly_name=PLOTLY_NAME,
        csv_name=CSV_NAME,
        json_name=JSON_NAME,
    )
    paths = [out / HTML_NAME, out / PLOTLY_NAME, out / CSV_NAME, out / JSON_NAME]
    paths[0].write_text(html, encoding="utf-8")
    tick(1)
    paths[1].write_bytes(assets.read(assets.PLOTLY))
    tick(1)
    paths[2].write_text(exports.aggregates_csv(survey, published), encoding="utf-8", newline="")
    tick(1)
    paths[3].write_text(json.dumps(published.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tick(1)
    return paths
