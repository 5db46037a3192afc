"""CSV exports: the published aggregates and a closed round's tally, safe to open in a spreadsheet.

Pure: imports neither Flask nor the database. Quoting follows RFC 4180, and a cell a
spreadsheet would run as a formula gets a leading apostrophe (TRUST I6).
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

from .pipeline.figures import Bin, Cell, Published
from .questions import Survey

CSV_COLUMNS = ("survey", "version", "segment", "question", "option", "n", "count", "percent", "ci_low", "ci_high")
TALLY_COLUMNS = ("round", "topic", "title", "approvals", "ballots")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection): such
# cells get a leading apostrophe, which spreadsheets show as text and do not evaluate.
FORMULA_START = ("=", "+", "-", "@", "\t", "\0", "\r")


def safe_cell(value: object) -> object:
    """A CSV cell that no spreadsheet evaluates: booleans as true/false, None empty, formulas quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_csv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A header row and the rows, every cell made safe, quoted as RFC 4180 says."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()


def aggregates_csv(survey: Survey, published: Published) -> str:
    """The aggregate CSV: one row per published cell (report, `pulse export`, /admin/export.csv)."""
    return write_csv(CSV_COLUMNS, ([row[c] for c in CSV_COLUMNS] for row in csv_rows(survey, published)))


def tally_csv(summary: dict | None) -> str | None:
    """A closed round's tally (community.voting.round_summary) as CSV; None unless it is closed."""
    if summary is None or summary["status"] != "closed":
        return None
    return write_csv(
        TALLY_COLUMNS,
        ((summary["id"], row["id"], row["title"], row["votes"], summary["ballots"]) for row in summary["topics"]),
    )


def csv_rows(survey: Survey, published: Published) -> list[dict]:
    """One row per published cell, ordered by question, option and segment; every count the perturbed one."""
    if not published.published:
        return []
    head = {"survey": published.survey.id, "version": published.survey.version}

    def row(segment: str, question: str, option: str, n: int, s: Cell | Bin) -> dict:
        return {
            **head,
            "segment": segment,
            "question": question,
            "option": option,
            "n": n,
            "count": s.count,
            "percent": s.percent,
            "ci_low": s.ci[0],
            "ci_high": s.ci[1],
        }

    rows = []
    by_key = {q.key: q for q in published.questions}
    for q in (by_key[x.key] for x in survey.questions if x.key in by_key):
        shares = {s.key: s for s in q.options}
        for o in (o for o in survey.question(q.key).option_keys if o in shares):
            rows.append(row("", q.key, o, q.n, shares[o]))
            for g in q.segments:
                share = next(s for s in g.options if s.key == o)
                rows.append(row(g.key, q.key, o, g.n, share))
    idx = published.index
    rows += [row("", "index", f"{b.from_}-{b.to}", idx.n, b) for b in idx.histogram]
    return rows


INVITE_COLUMNS = ("survey", "invite_code")


def invites_csv(survey: Survey, codes: Sequence[str]) -> str:
    """New invite codes, one a row: the only copy (the database keeps keyed hashes)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(INVITE_COLUMNS)
    writer.writerows((safe_cell(survey.id), safe_cell(code)) for code in codes)
    return buffer.getvalue()
