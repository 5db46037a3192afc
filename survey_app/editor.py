"""The survey editor in /admin: check a survey's text as `pulse survey add` does, preview it, start
from a stored survey, and save it.

Nothing here has rules of its own: the loader (questions.py) says what is wrong, program.py
stores (the same code and rules as `pulse survey add`) and pipeline/waves.py says which questions
the wave comparison can compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import program
from .pipeline import waves
from .questions import Question, Survey, SurveyError, parse_survey, plain_lines, with_version

# How messages name text typed or pasted into the editor (an upload: the file's name).
PASTED = "the text above"


@dataclass(frozen=True)
class Checked:
    """What checking a survey's text found: the loader's message, or the survey and its preview."""

    text: str
    source: str
    survey: Survey | None = None
    # The loader's message (file, line, question, problem) and the line it names.
    error: str | None = None
    line: int | None = None
    # What Save would do (program.stored_as): new, same, guide or changed.
    stored: str | None = None
    # The version the wave comparison compares this one with, and whether it was ever opened.
    earlier: Survey | None = None
    earlier_opened: bool = False
    comparable: list[Question] = field(default_factory=list)
    # (question key, question text, why it cannot be compared)
    not_comparable: list[tuple[str, str, str]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)


def check(text: str, source: str = PASTED) -> Checked:
    """Validate a survey's text exactly as start-up and `pulse survey add` do, and describe it."""
    text = plain_lines(text)
    try:
        survey = parse_survey(text, source)
    except SurveyError as exc:
        return Checked(text, source, error=str(exc), line=exc.line)
    opened = program.wave_before(survey)
    earlier = opened or program.stored_before(survey)
    comparable: list[Question] = []
    not_comparable: list[tuple[str, str, str]] = []
    if earlier is not None:
        reasons = waves.differences(earlier, survey)
        comparable = [q for q in survey.questions if q.key not in reasons]
        for key, reason in reasons.items():
            question = survey.question(key) or earlier.question(key)
            not_comparable.append((key, question.text if question else key, reason))
    return Checked(
        text,
        source,
        survey=survey,
        stored=program.stored_as(survey),
        earlier=earlier,
        earlier_opened=opened is not None,
        comparable=comparable,
        not_comparable=not_comparable,
        points=points(survey),
    )


def points(survey: Survey) -> list[dict[str, Any]]:
    """Each question's options with their index points, the rule's `any` and `extra`, and the most
    points the question can give (Scoring.maximum: the loader's own sum)."""
    rules = {rule.question: rule for rule in survey.scoring}
    out = []
    for q in survey.questions:
        rule = rules.get(q.key)
        table = dict(rule.points) if rule else {}
        out.append(
            {
                "question": q,
                "scored": rule is not None,
                "options": [(o, table.get(o.key, 0)) for o in q.options],
                "any": rule.any if rule else 0,
                "extra": (rule.extra_at_least, rule.extra_points) if rule and rule.extra_points else None,
                "maximum": rule.maximum(q) if rule else 0,
                "role": "segment" if q.key == survey.segment else "outcome" if q.key == survey.outcome else None,
            }
        )
    return out


def start_from(ref: str) -> str:
    """A stored survey's text (ID or ID@VERSION) with its version raised to one more than the
    highest stored version of its id: a new wave, ready to edit."""
    survey = program.find(ref)
    return with_version(program.definition_text(survey), program.next_version(survey.id))


def save(text: str, source: str = PASTED, topic_id: str | None = None) -> program.Stored:
    """Store the survey as `pulse survey add` does (the same code, the same refusals)."""
    return program.add_text(text, source, topic_id)[1]
