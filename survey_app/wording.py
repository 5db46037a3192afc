"""How Pulse says what the domain refused or did: the sentence, the errors by field and the status.

The domain modules (program, community/voting, admin_actions, submissions, demo) raise
domain_errors with a reason and facts; the blueprints answer them with an HTTP status
(`for_http`, and the app's handler for those they do not catch) and the CLI with a
command-line error (`message`). Both say the same sentence, so a refusal reads the same on
/admin and in a terminal. Sentences that name a `pulse` command live here, never below.
"""

from __future__ import annotations

from typing import Any, Callable

from flask import Flask

from . import program
from .community import voting
from .domain_errors import Conflict, DomainError, Invalid, NotFound, Refused
from .errors import PulseError, error_response

STATUS = {NotFound: 404, Conflict: 409, Refused: 409, Invalid: 422}
# How the organisers settle a tie, as every message about one says it.
HOW_TO_CHOOSE = "the organisers choose with `pulse round choose TOPIC_ID` or on /admin/topics"


def _s(n: int) -> str:
    return "s" if n != 1 else ""


def _by(chosen_by: str) -> str:
    return "chosen by the community" if chosen_by == "votes" else "a tie, chosen by the organisers"


def _not_due(pending: int, last: int | None, needed: int) -> str:
    """Why no snapshot was built, and when the next one is due."""
    new = f"{pending} new response{_s(pending)}"
    if last is None:
        return (
            f"No snapshot is due: the first comes at {needed} responses ({needed - pending} more), "
            "or when the survey closes."
        )
    return (
        f"No snapshot is due: {new} since the published figures (from {last} responses); the next "
        f"update comes at {last + needed} responses ({needed - pending} more), or when the survey closes."
    )


# reason -> (the sentence, the errors by field), each from the refusal's facts.
Words = tuple[Callable[..., str], Callable[..., dict[str, str]] | None]
WORDS: dict[str, Words] = {
    # the survey program
    "survey_version": (
        lambda text: f"{text!r}: the version after @ must be a positive whole number.",
        lambda **_: {"survey": "ID or ID@VERSION"},
    ),
    "opened_survey": (lambda survey_id, version: f"There is no survey {survey_id} version {version}.", None),
    "survey_changed": (program.stored_survey_differs, lambda **_: {"version": "already stored with other content"}),
    "topic_to_link": (
        lambda topic: f"There is no topic {topic}; `pulse topics list` shows them.",
        lambda **_: {"topic": "unknown topic"},
    ),
    "survey_to_link": (lambda survey: f"There is no survey {survey}.", lambda **_: {"survey": "unknown survey"}),
    "stored_survey": (
        lambda text: (
            f"There is no stored survey {text!r}; `pulse survey list` shows them and "
            "`pulse survey add FILE` stores one."
        ),
        lambda **_: {"survey": "unknown survey"},
    ),
    "survey_closed_already": (lambda survey: f"{survey} is already closed.", None),
    # schedules (times in PULSE_TIMEZONE)
    "schedule_format": (
        lambda field, text: (
            f"{text!r} is not a time: give a date and time such as 2027-01-31 17:00 (in PULSE_TIMEZONE) "
            "or ISO 8601 such as 2027-01-31T16:00Z, or none to clear it."
        ),
        lambda field, text: {field: "a date and time such as 2027-01-31 17:00"},
    ),
    "schedule_skipped": (
        lambda field, text, zone: (
            f"{text!r} does not exist in {zone}: the clocks go forward over it. "
            "Choose another time, or give one with its offset."
        ),
        lambda field, **_: {field: "a time the clocks skip"},
    ),
    "schedule_twice": (
        lambda field, text, zone, first, second: (
            f"{text!r} happens twice in {zone} (the clocks go back): give its offset, "
            f"{text}{first[0]} ({first[1]}, the first) or {text}{second[0]} ({second[1]}, the second)."
        ),
        lambda field, **_: {field: "happens twice: give its offset"},
    ),
    "schedule_past": (
        lambda field: (
            f"The time it {field} is already past: schedule a time ahead "
            f"(to {'open' if field == 'opens' else 'close'} now, do it directly)."
        ),
        lambda field: {field: "already past"},
    ),
    "schedule_far": (
        lambda field: (
            f"The time it {field} is more than three years ahead: schedule a time within three years "
            "(is the year right?)."
        ),
        lambda field: {field: "more than three years ahead"},
    ),
    "schedule_order": (
        lambda: "The closing time must come after the opening time.",
        lambda: {"closes": "must come after the opening time"},
    ),
    "schedule_open_already": (
        lambda survey: f"{survey} is open already; schedule when it closes instead.",
        lambda **_: {"opens": "the survey is open already"},
    ),
    "schedule_close_not_open": (
        lambda survey: (
            f"{survey} is not open and not scheduled to open, so a closing time would do nothing "
            "(clear it too, or schedule an opening)."
        ),
        lambda **_: {"closes": "the survey is not open and not scheduled to open"},
    ),
    "release_never_opened": (lambda survey: f"{survey} was never opened; there is nothing to release.", None),
    # the share kit: nothing of the survey works for the public yet, so no link is handed out
    "share_not_opened": (
        lambda survey: (
            f"{survey} has not been opened yet: nothing of it is public, so there is no link to share. "
            f"Open it (on /admin, or `pulse survey open {survey}`) and the kit gives its form's link."
        ),
        None,
    ),
    "share_early_access": (
        lambda survey: (
            f"{survey} is closed and its results are in early access: only clinics holding a results key "
            f"can see them, so there is no link to share. Release them (on /admin, or "
            f"`pulse release --survey {survey}`) and the kit gives its results page."
        ),
        None,
    ),
    "share_nothing_published": (
        lambda survey, responses, threshold: (
            f"{survey} is closed and nothing of it is published: it received {responses} of the "
            f"{threshold} responses its results need, so there is no link to share. Open it again to "
            "collect more; the kit gives its results page once they are public."
            if responses < threshold
            else f"{survey} is closed and nothing of it is published yet, so there is no link to share. "
            f"`pulse snapshot --survey {survey}` builds its snapshot; the kit gives its results page "
            "once they are public."
        ),
        None,
    ),
    # one survey's results and responses
    "snapshot_not_due": (lambda pending, last, needed: _not_due(pending, last, needed), None),
    "answers": (lambda: "Some answers need attention.", None),
    # a stored answer the tally cannot count (data Pulse did not write; submissions are validated)
    "stored_answer": (
        lambda survey, question, problem: (
            f"A stored response to {survey} cannot be counted: its answer to {question!r} {problem}. "
            "The responses table holds data Pulse did not write."
        ),
        None,
    ),
    "invite_code": (
        lambda: "The invite code is not valid or was already used.",
        lambda **_: {"invite_code": "unknown or already used invite code"},
    ),
    "invite_count": (
        lambda maximum: f"How many invite codes? A whole number from 1 to {maximum:,}.",
        lambda maximum: {"n": f"a whole number from 1 to {maximum}"},
    ),
    "survey_not_open": (lambda **_: "The survey is closed: the organisers are not taking responses now.", None),
    "demo_into_real_data": (
        lambda: (
            "this database holds real responses; demo data goes into a separate "
            "database (set DATABASE_URL, or use `pulse serve --demo`)"
        ),
        None,
    ),
    # topics, rounds and ballots
    # The API's models word what is wrong with a proposal or a ballot (their 422 everywhere).
    "proposal": (lambda message: message, None),
    "moderation_action": (
        lambda action, actions: f"Unknown action {action!r}.",
        lambda action, actions: {"action": f"one of {', '.join(actions)}"},
    ),
    "topic_to_moderate": (lambda topic: f"There is no topic {topic}.", lambda **_: {"topic": "unknown topic"}),
    "topic_merged": (
        lambda topic, into: f"Topic {topic} was merged into {into}; it cannot change now.",
        lambda **_: {"topic": "already merged"},
    ),
    "topic_chosen": (
        lambda topic, title: f"Topic {topic} ({title}) was chosen by a round; it cannot change now.",
        lambda **_: {"topic": "already chosen"},
    ),
    "merge_target": (
        lambda into: "Merge into another pending or approved topic.",
        lambda **_: {"into": "must be another topic that is pending or approved"},
    ),
    "round_already_open": (lambda: "A round is already open; close it first.", None),
    "tie_waiting": (
        lambda round: (
            f"Round {round} ended in a tie that waits for the organisers: {HOW_TO_CHOOSE}, then open the next round."
        ),
        None,
    ),
    "nothing_approved": (lambda: "There are no approved topics to vote on; approve some first.", None),
    "no_round_to_close": (lambda: "No round is open.", None),
    "choice_required": (
        lambda: "The topic to choose is required.",
        lambda **_: {"topic": "required: the id of a tied topic"},
    ),
    "no_closed_round": (
        lambda: "No round has closed yet, so there is nothing to choose.",
        lambda **_: {"round": "no closed round"},
    ),
    "round_still_open": (
        lambda round: f"Round {round} is still open: close it, and choose if its tally is a tie.",
        lambda **_: {"round": "still open"},
    ),
    "round_already_chose": (
        lambda round, topic, chosen_by: (
            f"Round {round} already chose {voting.named([topic])}, {_by(chosen_by)}; a choice is not changed."
        ),
        lambda **_: {"round": "already chosen"},
    ),
    "topic_to_choose": (lambda topic: f"There is no topic {topic!r}.", lambda **_: {"topic": "unknown topic"}),
    "topic_not_tied": (
        lambda topic, round, offered: f"Topic {topic} is not tied for the most approvals in round {round}.",
        lambda offered, **_: {"topic": f"one of the tied topics: {', '.join(offered) or 'none'}"},
    ),
    "tied_topic_gone": (
        lambda topic, title, status, round: (
            f"Topic {topic} ({title}) was {status} after round {round} closed; choose another tied topic."
        ),
        lambda status, **_: {"topic": f"{status} since"},
    ),
    "ballot": (lambda message: message, None),
    "no_voting_round": (lambda: "No voting round is open.", None),
    "not_on_ballot": (
        lambda topics: "Some topics are not on this round's ballot.",
        lambda topics: {"approve": f"not in the open round: {', '.join(topics)}"},
    ),
}


def message(exc: DomainError) -> str:
    """The sentence that says what was refused (the CLI prints it; pages and JSON show it)."""
    return WORDS[exc.reason][0](**exc.data)


def field_errors(exc: DomainError) -> dict[str, str]:
    """The errors by field: the validator's own (Invalid.fields), else the wording's, else none."""
    if isinstance(exc, Invalid) and exc.fields:
        return dict(exc.fields)
    fields = WORDS[exc.reason][1]
    return fields(**exc.data) if fields else {}


def for_http(exc: DomainError | PulseError) -> PulseError:
    """A refusal as the blueprints answer it: status, sentence and errors by field."""
    if isinstance(exc, PulseError):
        return exc
    status = next(code for kind, code in STATUS.items() if isinstance(exc, kind))
    return PulseError(status, message(exc), field_errors(exc))


def survey_stored(stored: program.Stored, web: bool = False) -> str:
    """What `pulse survey add` (or Save in /admin's editor, `web`) did, and how to open a survey just added."""
    ref = program.ref(stored.survey)
    if stored.outcome == "added":
        linked = f", linked to topic {stored.topic}" if stored.topic else ""
        how = "open it under Surveys on /admin" if web else f"`pulse survey open {ref}` opens it"
        return f"Added {stored.survey.title!r} ({ref}){linked}; {how}."
    if stored.updated:
        done = f"{ref} is already stored; its actions and reasons were updated"
        return f"{done}; linked it to topic {stored.topic}." if stored.outcome == "linked" else f"{done}."
    if stored.outcome == "linked":
        return f"{ref} is already stored, unchanged; linked it to topic {stored.topic}."
    return f"{ref} is already stored, unchanged; nothing to do."


def round_closed(closed: voting.RoundClosed) -> str:
    """What closing a round did: the outcome, then the tally, a line per topic."""
    if closed.chosen:
        outcome = f"Chosen by the community: {voting.named(closed.leaders)}."
    elif len(closed.leaders) > 1:
        outcome = (
            f"A tie between {voting.named(closed.leaders)}, {closed.top} approval{_s(closed.top)} each: "
            f"{HOW_TO_CHOOSE}."
        )
    elif closed.leaders:
        outcome = f"No ballot approved {voting.named(closed.leaders)}: {HOW_TO_CHOOSE}."
    else:
        outcome = "No topic was left on the ballot, so nothing was chosen."
    lines = [f"Round {closed.round} is closed: {closed.ballots} ballot{_s(closed.ballots)}. {outcome}"]
    lines += [f"  {n:>5}  {topic_id}  {title}" for topic_id, title, n in closed.tally]
    return "\n".join(lines)


def init_app(app: Flask) -> None:
    """A refusal no blueprint caught is answered like a PulseError: JSON for /api/, a page elsewhere."""

    @app.errorhandler(DomainError)
    def refused(exc: DomainError) -> Any:
        http = for_http(exc)
        return error_response(http.status, http.message, http.errors)
