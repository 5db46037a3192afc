"""Synthetic but plausible clinics, for `pulse demo-data`, `pulse serve --demo` and benchmarks.

`fill_program` builds the whole demo program into an empty demo database: the first survey in
two waves, a round that chose the next topic, and the survey that answers it, current and open.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Iterator

import click
import numpy as np
import yaml
from flask import current_app

from . import keys, program, program_queries, response_queries, snapshots, storage
from .community import queries as cs
from .community import voting as community
from .domain_errors import Refused
from .questions import Question, Survey

# Rows written per transaction.
BATCH = 5_000
# How likely each practice type is, and how thorough its aftercare tends to be (0..1).
PRACTICE_MIX = {
    "dedicated_clinic": (0.38, 0.75),
    "psychiatry": (0.24, 0.6),
    "anesthesia_pain": (0.16, 0.4),
    "hospital_academic": (0.08, 0.7),
    "telehealth": (0.09, 0.5),
    "other": (0.05, 0.45),
}
# Options for sessions held at the patient's home (the comfort survey's recovery_space): telehealth
# and at-home programs choose among these where a question offers them, other practices never do.
AT_HOME = frozenset({"at_home_guided", "at_home_unguided"})
AT_HOME_PRACTICE = "telehealth"


def synthetic_answers(survey: Survey, n: int, rng: np.random.Generator, care: float = 0.0) -> Iterator[dict]:
    """n answer sets: a clinic's thoroughness drives how much of each practice it reports.

    `care` shifts every clinic's thoroughness (0..1 scale): a later wave of more thorough clinics.
    """
    segment = survey.question(survey.segment)
    weights = np.array([PRACTICE_MIX.get(o.key, (0.05, 0.5))[0] for o in segment.options])
    picks = rng.choice(len(segment.options), size=n, p=weights / weights.sum())
    base = np.array([PRACTICE_MIX.get(o.key, (0.05, 0.5))[1] for o in segment.options])[picks]
    thorough = np.clip(base + care + rng.normal(0, 0.18, size=n), 0.02, 0.98)
    fitting: dict[tuple[str, str], tuple] = {}
    for i in range(n):
        answers: dict = {}
        practice = segment.options[picks[i]].key
        for q in survey.questions:
            if q.key == survey.segment:
                answers[q.key] = practice
            else:
                if (q.key, practice) not in fitting:
                    fitting[q.key, practice] = _fitting(q, practice)
                answers[q.key] = q.kind.demo_answer(q, fitting[q.key, practice], thorough[i], rng)
        yield answers


def _fitting(question: Question, practice: str) -> tuple:
    """The options of a question a clinic of this practice type may choose (at-home sessions or not)."""
    home = [o for o in question.options if o.key in AT_HOME]
    if not home:
        return question.options
    if practice == AT_HOME_PRACTICE:
        return tuple(home)
    return tuple(o for o in question.options if o.key not in AT_HOME)


def fill(
    engine,
    survey: Survey,
    n: int,
    secret: str,
    seed: int | None = None,
    progress: bool = False,
    care: float = 0.0,
    keep_keys: int = 0,
) -> list[str]:
    """Write n synthetic responses and mark the database as demo data.

    Returns the results keys of the first `keep_keys` responses (for synthetic ballots); every
    other response gets a random key nobody holds, so demo responses are never "your clinic".
    """
    rng = np.random.default_rng(seed)
    with storage.writer(engine) as db:
        if not program_queries.is_demo(db) and response_queries.count_responses(db, survey.id, survey.version) > 0:
            raise Refused("demo_into_real_data")
        program_queries.mark_demo(db)
    answers = synthetic_answers(survey, n, rng, care)
    kept = [keys.new_results_key() for _ in range(min(keep_keys, n))]
    bar = _progress(n) if progress else None
    done = 0
    while done < n:
        size = min(BATCH, n - done)
        rows = []
        for i in range(done, done + size):
            text = json.dumps(next(answers), separators=(",", ":"), sort_keys=True)
            key = kept[i] if i < len(kept) else secrets.token_hex(16)
            rows.append((text, keys.keyed_hash(secret, "response", key)))
        with storage.writer(engine) as db:
            response_queries.add_responses(db, survey.id, survey.version, rows)
        done += size
        if bar:
            bar.update(size)
    if bar:
        bar.render_finish()
    return kept


def _progress(n: int):
    bar = click.progressbar(length=n, label="Writing synthetic responses", file=sys.stderr)
    bar.__enter__()
    return bar


# ------------------------------------------------------------------ the demo program

# The first survey, which the demo runs in two waves (the packaged questions.yaml).
FIRST_SURVEY = ("pulse-aftercare", 1)
# The second wave changes one question, so the wave comparison shows one "not comparable" question;
# every other question stays as it was, so the rest compare. (question, new option key, label)
WAVE_TWO_OPTION = ("digital_tools", "text_check_ins", "Scheduled text-message check-ins")
# Wave 2's clinics are a little more thorough than wave 1's: the then-and-now change is visible.
WAVE_TWO_CARE = 0.08
# The second survey, packaged beside questions.yaml; it answers the first topic below.
COMFORT_FILE = "patient-comfort.yaml"
# Topics the community proposed and the organisers approved: (title, description, share of the
# ballots approving it). The first is chosen by votes; the shares are exact, not drawn.
TOPICS = (
    (
        "Patient comfort during and after a session",
        "Lighting, music, a quiet place to recover and time to settle: what clinics do so that patients "
        "feel at ease, and how a team notices when they do not.",
        0.68,
    ),
    (
        "Integration support after a series ends",
        "What clinics offer once the planned sessions are over (integration sessions, groups, referrals) "
        "and for how long.",
        0.46,
    ),
    (
        "Measuring outcomes six months on",
        "Whether and how clinics follow patients' outcomes months after treatment, and with which measures.",
        0.34,
    ),
    (
        "Preparing patients for their first session",
        "Screening, the consent conversation, and what patients are told to expect on the day.",
        0.22,
    ),
)
# The share of wave 2's clinics that cast a ballot in the round.
VOTERS = 0.4


def fill_program(engine, secret: str, n: int, seed: int | None = None) -> bool:
    """Build the demo program into an empty database, once; True when it built, False when the
    database already holds responses (a second `pulse serve --demo` start adds nothing).

    Each step is what organisers and participants do, through the same code: wave 1 of the
    first survey filled with n synthetic clinics, closed and released; wave 2 (made here from
    wave 1's definition) opened, filled, with a round in which its clinics' keys vote for the
    next topic, then closed and released; the comfort survey linked to the chosen topic, current,
    open, filled and released. A demo database from before the program (its first survey filled
    and open, nothing else) keeps those responses as wave 1 and gets the rest. With
    PULSE_QUESTIONS naming another survey, that survey alone is filled and released. Needs an
    app context; refuses (Refused) a database holding real responses or topics.
    """
    first = _fresh(program.current_survey)  # the PULSE_QUESTIONS survey is stored, and current if none is
    with storage.writer(engine) as db:
        filled = set(response_queries.response_counts(db))
        topics = bool(cs.topic_titles(db))
        if not program_queries.is_demo(db) and (filled or topics):
            raise Refused("demo_into_real_data")
        stored = {(row.id, row.version) for row in program_queries.stored_surveys(db)}
    earlier = filled == stored == {FIRST_SURVEY} and not topics and program.entry(first).is_open
    if filled and not earlier:
        return False
    rng = np.random.default_rng(seed)
    if (first.id, first.version) != FIRST_SURVEY:
        fill(engine, first, n, secret, seed=_seed(rng))
        _fresh(_publish, engine, first)
        storage.end_request_reads()  # the caller reads what was built
        return True
    if not earlier:
        fill(engine, first, n, secret, seed=_seed(rng))
    topic_ids = [community.propose(title, description) for title, description, _ in TOPICS]
    for topic_id in topic_ids:
        community.moderate(topic_id, "approve")
    _fresh(program.close_survey)  # builds wave 1's final snapshot
    program.set_released(first)

    second = _add(wave_two(_fresh(_definition, first)), f"{first.id}-{first.version + 1}.yaml")
    _fresh(program.open_survey, program.ref(second))
    voters = fill(engine, second, n, secret, seed=_seed(rng), care=WAVE_TWO_CARE, keep_keys=round(n * VOTERS))
    _fresh(_vote, topic_ids, voters, rng)

    with resources.as_file(resources.files("survey_app") / "surveys" / COMFORT_FILE) as path:
        comfort, _ = program.add(path, topic_ids[0])
    _fresh(program.open_survey, program.ref(comfort))  # closes wave 2 with its final snapshot
    program.set_released(second)
    fill(engine, comfort, n, secret, seed=_seed(rng))
    _fresh(_publish, engine, comfort)
    storage.end_request_reads()  # the caller reads what was built
    return True


def wave_two(text: str) -> str:
    """The next wave of a survey definition: the next version, with WAVE_TWO_OPTION added (before
    an exclusive "none") and every other question unchanged."""
    data = yaml.safe_load(text)
    data["version"] = int(data["version"]) + 1
    question_key, key, label = WAVE_TWO_OPTION
    question = next(q for q in data["questions"] if q["key"] == question_key)
    options = question["options"]
    at = next((i for i, o in enumerate(options) if o.get("exclusive")), len(options))
    options.insert(at, {"key": key, "label": label})
    header = f"# Wave {data['version']} of {data['id']}, made by the demo: {question_key} gains {key}.\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _definition(survey: Survey) -> str:
    return program_queries.stored_survey(storage.reader(), survey.id, survey.version).definition


def _add(text: str, name: str) -> Survey:
    """Store a definition made in code, through the program's add (which reads a file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(text, encoding="utf-8")
        return program.add(path)[0]


def _vote(topic_ids: list[str], results_keys: list[str], rng: np.random.Generator) -> None:
    """A round over the approved topics, a ballot per key (each a key of the current survey, as the
    voting rule asks), and its close, which chooses the most approved topic."""
    community.open_round()
    approvals: list[list[str]] = [[] for _ in results_keys]
    for topic_id, (_, _, share) in zip(topic_ids, TOPICS):
        for i in rng.choice(len(results_keys), size=round(share * len(results_keys)), replace=False):
            approvals[i].append(topic_id)
    secret = current_app.config["SECRET_KEY"]
    # Each key is one this demo just stored for the current survey: its ballot hash, as a voter's.
    ballots = [
        (keys.keyed_hash(secret, "ballot", keys.normalize(key)), community.check_ballot(approve))
        for key, approve in zip(results_keys, approvals)
        if approve
    ]
    # One transaction for every ballot (community.cast_ballot commits each one alone).
    with storage.writer() as db:
        round_ = cs.open_round(db, lock=True)
        for ballot_hash, approve in ballots:
            cs.replace_ballot(db, round_.id, ballot_hash, approve)
    community.close_round()


def _publish(engine, survey: Survey) -> None:
    """A snapshot of every response, released: synthetic data has nothing to protect, and a
    newcomer sees the whole dashboard at once."""
    snapshots.rebuild(engine, survey, snapshots.disclosure_rules(), full=True)
    program.set_released(survey)


def _fresh(call, *args):
    """Run one step after ending this context's read transaction: SQLite reads one snapshot of the
    file per transaction, and each step must see what the one before it wrote."""
    storage.end_request_reads()
    return call(*args)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**63))
