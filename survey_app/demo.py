"""Synthetic but plausible clinics, for `pulse demo-data`, `pulse serve --demo` and benchmarks."""
from __future__ import annotations

import json
import secrets
import sys
from typing import Iterator

import click
import numpy as np

from . import keys, storage
from .errors import PulseError
from .questions import Survey

# Rows written per transaction.
BATCH = 5_000
# How likely each practice type is, and how thorough its aftercare tends to be (0..1).
PRACTICE_MIX = {"dedicated_clinic": (0.38, 0.75), "psychiatry": (0.24, 0.6), "anesthesia_pain": (0.16, 0.4),
                "hospital_academic": (0.08, 0.7), "telehealth": (0.09, 0.5), "other": (0.05, 0.45)}


def synthetic_answers(survey: Survey, n: int, rng: np.random.Generator) -> Iterator[dict]:
    """n answer sets: a clinic's thoroughness drives how much of each practice it reports."""
    segment = survey.question(survey.segment)
    weights = np.array([PRACTICE_MIX.get(o.key, (0.05, 0.5))[0] for o in segment.options])
    picks = rng.choice(len(segment.options), size=n, p=weights / weights.sum())
    base = np.array([PRACTICE_MIX.get(o.key, (0.05, 0.5))[1] for o in segment.options])[picks]
    care = np.clip(base + rng.normal(0, 0.18, size=n), 0.02, 0.98)
    for i in range(n):
        answers: dict = {}
        for q in survey.questions:
            if q.key == survey.segment:
                answers[q.key] = segment.options[picks[i]].key
            elif q.type == "single":
                # Options are listed from most to least thorough: a caring clinic sits early.
                position = rng.beta(1 + 4 * (1 - care[i]), 1 + 4 * care[i]) * len(q.options)
                answers[q.key] = q.options[min(int(position), len(q.options) - 1)].key
            else:
                real = [o.key for o in q.options if not o.exclusive]
                chosen = [k for k in real if rng.random() < care[i] * 0.8]
                none = next((o.key for o in q.options if o.exclusive), None)
                answers[q.key] = chosen or ([none] if none else [real[0]])
        yield answers


def fill(engine, survey: Survey, n: int, secret: str, seed: int | None = None, progress: bool = False) -> None:
    """Write n synthetic responses and mark the database as demo data."""
    rng = np.random.default_rng(seed)
    with storage.writer(engine) as db:
        if not storage.is_demo(db) and storage.count_responses(db, survey.id, survey.version) > 0:
            raise PulseError(409, "this database holds real responses; demo data goes into a separate "
                                "database (set DATABASE_URL, or use `pulse serve --demo`)")
        storage.mark_demo(db)
    answers = synthetic_answers(survey, n, rng)
    bar = _progress(n) if progress else None
    done = 0
    while done < n:
        size = min(BATCH, n - done)
        rows = []
        for _ in range(size):
            text = json.dumps(next(answers), separators=(",", ":"), sort_keys=True)
            # A random key nobody holds: demo responses are never "your clinic".
            rows.append((text, keys.keyed_hash(secret, "response", secrets.token_hex(16))))
        with storage.writer(engine) as db:
            storage.add_responses(db, survey.id, survey.version, rows)
        done += size
        if bar:
            bar.update(size)
    if bar:
        bar.render_finish()


def _progress(n: int):
    bar = click.progressbar(length=n, label="Writing synthetic responses", file=sys.stderr)
    bar.__enter__()
    return bar
