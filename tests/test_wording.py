"""The domain refuses in data, wording.py says it: every reason has words, every word a reason.

The pages, the API and the CLI show these sentences (their own tests pin them); here the
mapping itself: a reason raised without words would answer a KeyError, words without a
reason are dead text.
"""

from __future__ import annotations

import ast

from survey_app import domain_errors, wording
from survey_app.community.voting import RoundClosed, TopicRef
from survey_app.domain_errors import Conflict, Invalid, NotFound, Refused
from survey_app.program import Stored

from .helpers import ROOT

PACKAGE = ROOT / "survey_app"
ERRORS = {"NotFound", "Conflict", "Refused", "Invalid"}


def raised_reasons() -> dict[str, str]:
    """reason -> the module raising it, for every `raise NotFound("reason", ...)` in survey_app."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Raise)
                and isinstance(node.exc, ast.Call)
                and isinstance(node.exc.func, ast.Name)
                and node.exc.func.id in ERRORS
            ):
                reason = node.exc.args[0]
                assert isinstance(reason, ast.Constant), f"{path}: a reason is a fixed name"
                found[reason.value] = path.relative_to(PACKAGE).as_posix()
    return found


def test_every_reason_raised_has_words_and_every_word_a_reason():
    raised = raised_reasons()
    assert {"tie_waiting", "stored_survey", "snapshot_not_due", "answers"} <= set(raised)
    assert set(raised) == set(wording.WORDS), set(raised) ^ set(wording.WORDS)


def test_every_kind_of_refusal_has_a_status():
    kinds = [
        c
        for c in vars(domain_errors).values()
        if isinstance(c, type) and issubclass(c, domain_errors.DomainError) and c is not domain_errors.DomainError
    ]
    assert set(kinds) == set(wording.STATUS)
    assert (wording.STATUS[NotFound], wording.STATUS[Conflict], wording.STATUS[Invalid]) == (404, 409, 422)


def strings_said(path) -> str:
    """Every string a module's code holds (docstrings aside: they may name a command)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return "\n".join(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    )


def test_the_domain_says_no_command_and_no_status():
    """The command syntax of a refusal and the HTTP statuses live in the wording, not in the domain."""
    for name in ("program.py", "community/voting.py", "admin_actions.py", "submissions.py", "demo.py"):
        assert "PulseError" not in (PACKAGE / name).read_text(), name
        said = strings_said(PACKAGE / name)
        for command in ("pulse round choose", "`pulse topics list`", "`pulse survey", "pulse serve --demo"):
            assert command not in said, (name, command)
    assert "pulse round choose" in strings_said(PACKAGE / "wording.py")


def test_a_refusal_reads_as_before():
    """A few sentences exactly as the domain said them before it answered in data."""
    tie = wording.for_http(Conflict("tie_waiting", round=3))
    assert (tie.status, tie.message, tie.errors) == (
        409,
        (
            "Round 3 ended in a tie that waits for the organisers: the organisers choose with "
            "`pulse round choose TOPIC_ID` or on /admin/topics, then open the next round."
        ),
        {},
    )
    first = wording.message(Conflict("snapshot_not_due", pending=4, last=None, needed=10))
    assert first == "No snapshot is due: the first comes at 10 responses (6 more), or when the survey closes."
    few = wording.message(Conflict("snapshot_not_due", pending=1, last=40, needed=40))
    assert few == (
        "No snapshot is due: 1 new response since the published figures (from 40 responses); the next "
        "update comes at 80 responses (39 more), or when the survey closes."
    )
    missing = wording.for_http(NotFound("stored_survey", text="nope@2"))
    assert (missing.status, missing.message, missing.errors) == (
        404,
        ("There is no stored survey 'nope@2'; `pulse survey list` shows them and `pulse survey add FILE` stores one."),
        {"survey": "unknown survey"},
    )
    answers = wording.for_http(Invalid("answers", {"q1": "required"}))
    assert (answers.status, answers.message) == (422, "Some answers need attention.")
    assert answers.errors == {"q1": "required"}
    not_tied = wording.for_http(Invalid("topic_not_tied", topic="t9", round=2, offered=[]))
    assert not_tied.errors == {"topic": "one of the tied topics: none"}
    assert wording.for_http(Refused("demo_into_real_data")).status == 409


def test_a_closed_round_reads_as_before():
    a, b = TopicRef("t1", "Sleep"), TopicRef("t2", "Pain")
    tie = RoundClosed(4, 1, [b, a], 1, [("t2", "Pain", 1), ("t1", "Sleep", 1)])
    assert not tie.chosen
    assert wording.round_closed(tie) == (
        'Round 4 is closed: 1 ballot. A tie between "Pain" (t2) and "Sleep" (t1), 1 approval each: the organisers '
        "choose with `pulse round choose TOPIC_ID` or on /admin/topics.\n"
        "      1  t2  Pain\n"
        "      1  t1  Sleep"
    )
    won = RoundClosed(5, 3, [a], 2, [("t1", "Sleep", 2), ("t2", "Pain", 0)])
    assert won.chosen
    first = wording.round_closed(won).splitlines()[0]
    assert first == 'Round 5 is closed: 3 ballots. Chosen by the community: "Sleep" (t1).'
    assert wording.round_closed(RoundClosed(6, 0, [], 0, [])) == (
        "Round 6 is closed: 0 ballots. No topic was left on the ballot, so nothing was chosen."
    )


def test_a_stored_survey_reads_as_before(survey):
    assert wording.survey_stored(Stored("added", survey)) == (
        f"Added {survey.title!r} ({survey.id}@{survey.version}); "
        f"`pulse survey open {survey.id}@{survey.version}` opens it."
    )
    assert wording.survey_stored(Stored("added", survey, "t7")).startswith(
        f"Added {survey.title!r} ({survey.id}@{survey.version}), linked to topic t7; "
    )
    assert wording.survey_stored(Stored("linked", survey, "t7")) == (
        f"{survey.id}@{survey.version} is already stored, unchanged; linked it to topic t7."
    )
    assert wording.survey_stored(Stored("unchanged", survey)) == (
        f"{survey.id}@{survey.version} is already stored, unchanged; nothing to do."
    )
