"""The inputs of tests/data/published-golden.json: bodies and views the pipeline published before
its figures were typed (pipeline/figures.py), kept to prove the JSON is still byte-for-byte the same.

Regenerate only for a deliberate change of the published shape (publishing.SHAPE):
    PYTHONPATH=. python -m tests.published_golden > tests/data/published-golden.json
"""

from __future__ import annotations

import json
import random
import sys
import uuid
from pathlib import Path

import numpy as np

from survey_app.pipeline import publishing
from survey_app.pipeline.disclosure import Disclosure
from survey_app.pipeline.perturbation import PTable
from survey_app.pipeline.tallies import Tally, tally
from survey_app.questions import Survey, load_survey

ROOT = Path(__file__).resolve().parents[1]
SURVEYS = {"aftercare": ROOT / "questions.yaml", "comfort": ROOT / "surveys" / "patient-comfort.yaml"}
GOLDEN = ROOT / "tests" / "data" / "published-golden.json"
KEY = b"published-golden-noise-key"
SHIPPED = Disclosure(key=KEY)
# Counts as they are: the golden bodies then hang on the counts and the formulas only.
EXACT = Disclosure(key=KEY, ptable=PTable(np.zeros((SHIPPED.ptable.max_pcv + 1, 256), dtype=np.int64), "exact counts"))


def answer_sets(survey: Survey, n: int, seed: int) -> list[dict]:
    """n valid answer sets; the segment question's first option rare, so a merged group appears."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        answers: dict = {}
        for q in survey.questions:
            keys = [o.key for o in q.options]
            if q.key == survey.segment:
                answers[q.key] = rng.choices(keys, weights=[1] + [6] * (len(keys) - 1))[0]
            elif q.type == "single":
                answers[q.key] = rng.choice(keys)
            else:
                real = [o.key for o in q.options if not o.exclusive]
                chosen = [k for k in real if rng.random() < 0.4]
                none = [o.key for o in q.options if o.exclusive]
                answers[q.key] = chosen or none[:1] or real[:1]
        out.append(answers)
    return out


def counted(survey: Survey, rows: list[dict], seed: int) -> Tally:
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in rows]
    return tally(survey, [json.dumps(r) for r in rows], ids)


def cases() -> list[tuple[str, Survey, list[dict], Disclosure, bool]]:
    """(name, survey, answer sets, rules, released) of each golden body."""
    out = []
    for name, path in SURVEYS.items():
        survey = load_survey(path)
        out += [
            (f"{name}-waiting", survey, answer_sets(survey, 4, 1), SHIPPED, False),
            (f"{name}-exact", survey, answer_sets(survey, 90, 2), EXACT, True),
            (f"{name}-shipped", survey, answer_sets(survey, 140, 3), SHIPPED, True),
        ]
    return out


def generate() -> dict:
    """{name: {"published": stored bytes, "you": [each answer set's "you" as JSON bytes]}}."""
    golden = {}
    for name, survey, rows, rules, released in cases():
        published = publishing.publish(survey, counted(survey, rows, 9), rules, released)
        body = published.to_json() if hasattr(published, "to_json") else published
        views = []
        for answers in rows[:3]:
            view = publishing.you(survey, answers, published)
            views.append(json.dumps(view.to_json() if hasattr(view, "to_json") else view, separators=(",", ":")))
        golden[name] = {"published": json.dumps(body, separators=(",", ":")), "you": views}
    return golden


if __name__ == "__main__":
    json.dump(generate(), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
