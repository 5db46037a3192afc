"""Waves: one survey run again under a new version, compared question by question.

Pure: imports neither Flask nor the database. A question is comparable when its key, its type
and its option keys are the same in both waves (wording may be polished); every other question
is listed with the reason. Only each wave's own published figures are compared, exactly as
published: nothing is recomputed across waves and no response of one wave meets the other's
(the change is the difference of two published shares, in points). A participant's own change
reads their two answer sets only, and keeps nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..questions import Question, Survey, as_tuple
from .figures import Published, QuestionFigures

TYPE_NAMES = {"single": "single choice", "multi": "multi-select"}


def differences(then: Survey, now: Survey) -> dict[str, str]:
    """Why each question that cannot be compared between the two waves cannot, by question key."""
    out = {}
    for q in now.questions:
        before = then.question(q.key)
        if before is None:
            out[q.key] = f"new in wave {now.version}"
        elif before.type != q.type:
            out[q.key] = (
                f"{TYPE_NAMES.get(before.type, before.type)} in wave {then.version}, "
                f"{TYPE_NAMES.get(q.type, q.type)} in wave {now.version}"
            )
        elif set(before.option_keys) != set(q.option_keys):
            out[q.key] = f"its answers changed in wave {now.version} ({_option_changes(before, q)})"
    for q in then.questions:
        if now.question(q.key) is None:
            out[q.key] = f"not asked in wave {now.version}"
    return out


def _option_changes(before: Question, after: Question) -> str:
    """'added: “A”; removed: “B”', by label; an answer whose label stayed but whose key changed is 'renamed'."""
    added = [o.label for o in after.options if o.key not in before.option_keys]
    removed = [o.label for o in before.options if o.key not in after.option_keys]
    renamed = [label for label in added if label in removed]
    parts = []
    for name, labels in (
        ("added", [t for t in added if t not in renamed]),
        ("removed", [t for t in removed if t not in renamed]),
        ("renamed", renamed),
    ):
        if labels:
            parts.append(f"{name}: " + ", ".join(f"“{t}”" for t in labels))
    return "; ".join(parts)


def compare(then: Survey, then_published: Published, now: Survey, now_published: Published) -> dict[str, Any]:
    """Both waves' published shares for every comparable question, and the rest with a reason.

    {"then": {"version", "responses"}, "now": {...}, "questions": [{"key", "type", "text", "n": [then, now],
    "caution", "options": [{"key", "then": Cell, "now": Cell, "change": points}]}],
    "not_comparable": [{"key", "text", "reason"}]}; a Cell is the wave's published one, as published.
    """
    reasons = differences(then, now)
    then_shown, now_shown = _by_key(then_published), _by_key(now_published)
    out: dict[str, Any]
    out = {
        "then": {"version": then.version, "responses": then_published.responses},
        "now": {"version": now.version, "responses": now_published.responses},
        "questions": [],
        "not_comparable": [],
    }
    keys = [q.key for q in now.questions] + [q.key for q in then.questions if now.question(q.key) is None]
    for key in keys:
        question = now.question(key) or then.question(key)
        assert question is not None  # the key came from one of the two
        text = question.text
        a, b = then_shown.get(key), now_shown.get(key)
        missing = [w for w, q in ((then.version, a), (now.version, b)) if not (q and q.options)]
        if key not in reasons and missing:
            reasons[key] = f"too few clinics answered it in wave {missing[0]} for figures to be published"
        if key in reasons:
            out["not_comparable"].append({"key": key, "text": text, "reason": reasons[key]})
            continue
        assert a is not None and b is not None  # both published, or a reason above
        cells = {c.key: c for c in a.options}
        options = [
            {"key": c.key, "then": cells[c.key], "now": c, "change": c.percent - cells[c.key].percent}
            for c in b.options
        ]
        out["questions"].append(
            {
                "key": key,
                "type": b.type,
                "text": text,
                "n": [a.n, b.n],
                "caution": a.caution or b.caution,
                "options": options,
            }
        )
    return out


def _by_key(published: Published) -> dict[str, QuestionFigures]:
    return {q.key: q for q in published.questions} if published.published else {}


def own_change(
    then: Survey, then_answers: Mapping[str, Any], now: Survey, now_answers: Mapping[str, Any]
) -> dict[str, Any]:
    """A participant's answers then and now (labels) for each comparable question, and their index in each wave.

    {"index": {"then", "now", "same_scoring"}, "questions": [{"key", "text", "then", "now", "same"}]}.
    """
    reasons = differences(then, now)
    rows = []
    for q in now.questions:
        if q.key in reasons:
            continue
        before, after = as_tuple(then_answers.get(q.key)), as_tuple(now_answers.get(q.key))
        rows.append(
            {
                "key": q.key,
                "text": q.text,
                "then": _labels(then, q.key, before),
                "now": _labels(now, q.key, after),
                "same": set(before) == set(after),
            }
        )
    return {
        "index": {
            "then": then.index_of(then_answers),
            "now": now.index_of(now_answers),
            "same_scoring": then.scoring == now.scoring,
        },
        "questions": rows,
    }


def _labels(survey: Survey, question: str, chosen: tuple[str, ...]) -> list[str]:
    q = survey.question(question)
    assert q is not None
    return [option.label if (option := q.option(o)) else o for o in chosen]
