"""The static report and the CSV export: files, offline HTML, exact header, formula escaping."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from click.testing import CliRunner

from survey_app import exports, report, snapshots
from survey_app.cli import main
from survey_app.pipeline import charts

from .helpers import ROOT, SECRET, clinic, fill, plotly_bundle_js, submit_api

HEADER = "survey,version,segment,question,option,n,count,percent,ci_low,ci_high"


def run(db_url, *args):
    env = {"SECRET_KEY": SECRET, "DATABASE_URL": db_url, "PULSE_QUESTIONS": str(ROOT / "questions.yaml")}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize(
    "value, written",
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\0x", "'\0x"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        (0, 0),
        (-3, -3),
        (None, ""),
        (True, "true"),
        (False, "false"),
    ],
)
def test_safe_cell(value, written):
    assert exports.safe_cell(value) == written


def test_formula_in_a_cell_is_quoted_and_escaped(survey):
    from survey_app.pipeline.figures import Cell, IndexFigures, Published, QuestionFigures, Rules, Segment, SurveyRef

    cells = (Cell("within_24h", 7, 58, (32, 81)), Cell("within_48h", 0, 0, (0, 24)))
    published = Published(
        survey=SurveyRef('=HYPERLINK("x")', 1),
        responses=12,
        released=True,
        published=True,
        needed=0,
        rules=Rules(10, 5, 10),
        disclosure=None,
        notes=(),
        segment=Segment(survey.segment, ()),
        questions=(QuestionFigures("first_followup", "single", 12, False, True, cells, (), ()),),
        index=IndexFigures(12, False, {}, (), ()),
        outcome=None,
    )
    text = exports.aggregates_csv(survey, published)
    lines = text.split("\r\n")
    assert lines[0] == HEADER
    # RFC 4180: the quote-containing cell is wrapped in quotes, inner quotes doubled.
    assert lines[1] == '"\'=HYPERLINK(""x"")",1,,first_followup,within_24h,12,7,58,32,81'
    assert lines[2] == '"\'=HYPERLINK(""x"")",1,,first_followup,within_48h,12,0,0,0,24'
    assert next(csv.reader(io.StringIO(lines[1])))[0] == '\'=HYPERLINK("x")'


def test_csv_has_one_row_per_published_cell(app, client, survey):
    fill(app, client, release=True)
    with app.app_context():
        published = snapshots.served(survey).published
        text = exports.aggregates_csv(survey, published)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(exports.CSV_COLUMNS)
    assert len(rows) == len(exports.csv_rows(survey, published))
    # Every row holds the published (perturbed) count, the same number the page and the API show.
    api = {(q["key"], c["key"]): c for q in published.to_json()["questions"] for c in q["options"]}
    for r in rows:
        if r["question"] != "index" and r["segment"] == "":
            cell = api[r["question"], r["option"]]
            assert (int(r["count"]), int(r["percent"]), int(r["ci_low"]), int(r["ci_high"])) == (
                cell["count"],
                cell["percent"],
                *cell["ci"],
            )
    vitals = next(r for r in rows if (r["question"], r["option"]) == ("discharge_checks", "vitals"))
    # 16 of 16: the table moves it by at most 4, and caps it at n
    assert (vitals["segment"], vitals["n"]) == ("", "16") and 12 <= int(vitals["count"]) <= 16


def test_report_writes_offline_html_csv_and_json(app, client, survey, tmp_path):
    fill(app, client, release=True)
    with app.app_context():
        published = snapshots.served(survey).published
        ticks = []
        paths = report.write_report(survey, published, tmp_path / "out", progress=ticks.append)
    assert sum(ticks) == report.steps(published)
    assert [p.name for p in paths] == ["report.html", "plotly.min.js", "aggregates.csv", "benchmark.json"]
    html = paths[0].read_text()
    assert '<script src="plotly.min.js"></script>' in html
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html)
    assert not [t for t in tags if re.search(r"https?://|//", t)], tags
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html  # the stylesheet is inlined: one file opens anywhere
    assert html.startswith("<!doctype html>")
    # One chart per question with something to draw: in a snapshot of 16 clinics the perturbation
    # can leave a question nothing to show (9 blocks instead of 10 once in a full run).
    drawn = {f"chart-{q.key}" for q in published.questions if charts.question_figure(survey, q) is not None}
    assert len(drawn) >= len(published.questions) - 2
    assert set(re.findall(r'<script type="application/json" id="[^"]+" data-chart="([^"]+)"', html)) == drawn | {
        "chart-index",
        "chart-outcome",
    }
    assert html.count('<script type="application/json"') == len(drawn) + 2
    assert "not all clinics" in html and "not clinical guidance" in html
    assert paths[1].read_bytes() == plotly_bundle_js()
    assert paths[2].read_bytes().decode().startswith(HEADER + "\r\n")
    assert json.loads(paths[3].read_text()) == published.to_json()


def test_report_before_publication_says_so(app, survey, tmp_path):
    with app.app_context():
        published = snapshots.served(survey).published
        paths = report.write_report(survey, published, tmp_path)
    html = paths[0].read_text()
    assert "Nothing is published yet" in html and 'plotly.min.js"></script>' not in html
    assert paths[2].read_bytes().decode() == HEADER + "\r\n"


def test_pulse_report_and_export_commands(app, client, db_url, tmp_path):
    for i in range(12):
        submit_api(client, clinic(i))
    out = tmp_path / "reports"
    result = run(db_url, "report", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["aggregates.csv", "benchmark.json", "plotly.min.js", "report.html"]
    # The first snapshot is built at the release threshold, 10: the report shows it, not the 12.
    assert json.loads((out / "benchmark.json").read_text())["responses"] == 10

    result = run(db_url, "export")
    assert result.exit_code == 0 and result.stdout_bytes.startswith(HEADER.encode() + b"\r\n")
    assert result.stdout_bytes == (out / "aggregates.csv").read_bytes()
    target = tmp_path / "export.csv"
    assert run(db_url, "export", "--out", str(target)).exit_code == 0
    assert target.read_bytes() == (out / "aggregates.csv").read_bytes()
