"""The published figures, typed: what publishing.py builds and every reader reads by attribute.

Pure: imports neither Flask nor the database. A snapshot stores its published body as JSON and
the API serves it; `to_json()` gives exactly that JSON (the same keys, in the same order, as
publishing.SHAPE describes), and `from_json()` reads a stored body back. Attribute names are
the JSON keys, except where a key is a Python keyword: "from" is `from_`, "raise" is `raise_`
(as api_models.py names them). A renamed attribute is then a type error (mypy) in the pipeline
and in whatever reads it, not a blank cell on a page.

Older stored bodies lack fields later shapes added ("enough", "disclosure", its "from" and
"changes"); they are read with what those fields meant before, until program.start publishes
them again in the current shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

# A parsed JSON object, as the stored body gives it.
Json = Mapping[str, Any]
# The index at the published percentiles ("10" ... "90"); None where too few clinics lie beyond one.
Percentiles = dict[str, float | None]


def _ci(value: Sequence[int]) -> tuple[int, int]:
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class Cell:
    """One published option: a perturbed count, its percent of the row's n and a 95% interval."""

    key: str
    count: int
    percent: int
    ci: tuple[int, int]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "count": self.count, "percent": self.percent, "ci": list(self.ci)}

    @classmethod
    def from_json(cls, data: Json) -> Cell:
        return cls(data["key"], data["count"], data["percent"], _ci(data["ci"]))


def _cells(data: Sequence[Json]) -> tuple[Cell, ...]:
    return tuple(Cell.from_json(c) for c in data)


@dataclass(frozen=True)
class SegmentCells:
    """A question's shares within one segment group."""

    key: str
    n: int
    caution: bool
    options: tuple[Cell, ...]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "n": self.n, "caution": self.caution, "options": [c.to_json() for c in self.options]}

    @classmethod
    def from_json(cls, data: Json) -> SegmentCells:
        return cls(data["key"], data["n"], data["caution"], _cells(data["options"]))


@dataclass(frozen=True)
class QuestionFigures:
    """One question's published shares, overall and per segment group; no shares while not `enough`."""

    key: str
    type: str
    n: int
    caution: bool
    enough: bool
    options: tuple[Cell, ...]
    segments: tuple[SegmentCells, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "type": self.type,
            "n": self.n,
            "caution": self.caution,
            "enough": self.enough,
            "options": [c.to_json() for c in self.options],
            "segments": [s.to_json() for s in self.segments],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Json) -> QuestionFigures:
        options = _cells(data.get("options") or ())
        return cls(
            data["key"],
            data["type"],
            data["n"],
            data["caution"],
            # Bodies from before "enough": a question was published when it had shares.
            bool(data.get("enough", bool(options))),
            options,
            tuple(SegmentCells.from_json(s) for s in data.get("segments") or ()),
            tuple(data.get("notes") or ()),
        )


@dataclass(frozen=True)
class SegmentGroup:
    """A group of the segment question's options, published on its own (merged when too small)."""

    key: str
    n: int
    members: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "n": self.n, "members": list(self.members)}

    @classmethod
    def from_json(cls, data: Json) -> SegmentGroup:
        return cls(data["key"], data["n"], tuple(data["members"]))


@dataclass(frozen=True)
class Segment:
    """The segment question and its published groups (none: no breakdown)."""

    question: str
    groups: tuple[SegmentGroup, ...]

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "groups": [g.to_json() for g in self.groups]}

    @classmethod
    def from_json(cls, data: Json) -> Segment:
        return cls(data["question"], tuple(SegmentGroup.from_json(g) for g in data.get("groups") or ()))


@dataclass(frozen=True)
class Bin:
    """One 10-point bin of the index histogram (JSON "from" and "to", both included)."""

    from_: int
    to: int
    count: int
    percent: int
    ci: tuple[int, int]

    def to_json(self) -> dict[str, Any]:
        return {"from": self.from_, "to": self.to, "count": self.count, "percent": self.percent, "ci": list(self.ci)}

    @classmethod
    def from_json(cls, data: Json) -> Bin:
        return cls(data["from"], data["to"], data["count"], data["percent"], _ci(data["ci"]))

    def holds(self, value: int) -> bool:
        return self.from_ <= value <= self.to


@dataclass(frozen=True)
class IndexFigures:
    """The index distribution: N, a perturbed 10-point histogram and the percentiles it shows."""

    n: int
    caution: bool
    percentiles: Percentiles
    histogram: tuple[Bin, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "caution": self.caution,
            "percentiles": dict(self.percentiles),
            "histogram": [b.to_json() for b in self.histogram],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Json) -> IndexFigures:
        return cls(
            data["n"],
            data["caution"],
            dict(data["percentiles"]),
            tuple(Bin.from_json(b) for b in data.get("histogram") or ()),
            tuple(data.get("notes") or ()),
        )

    def shown(self) -> dict[int, float]:
        """The percentiles shown, by their number: {25: 41.5, ...}."""
        return {int(p): v for p, v in self.percentiles.items() if v is not None}


@dataclass(frozen=True)
class OutcomeOption:
    """The index percentiles of the clinics giving one answer to the outcome question."""

    key: str
    n: int | None
    percentiles: Percentiles

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "n": self.n, "percentiles": dict(self.percentiles)}

    @classmethod
    def from_json(cls, data: Json) -> OutcomeOption:
        return cls(data["key"], data["n"], dict(data["percentiles"]))


@dataclass(frozen=True)
class Outcome:
    """Index percentiles per option of the survey's outcome question."""

    question: str
    options: tuple[OutcomeOption, ...]

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "options": [o.to_json() for o in self.options]}

    @classmethod
    def from_json(cls, data: Json) -> Outcome:
        return cls(data["question"], tuple(OutcomeOption.from_json(o) for o in data["options"]))


@dataclass(frozen=True)
class Rules:
    """The disclosure rules the body was published under."""

    release_threshold: int
    k: int
    segment_min: int

    def to_json(self) -> dict[str, Any]:
        return {"release_threshold": self.release_threshold, "k": self.k, "segment_min": self.segment_min}

    @classmethod
    def from_json(cls, data: Json) -> Rules:
        return cls(data["release_threshold"], data["k"], data["segment_min"])


@dataclass(frozen=True)
class Change:
    """How likely one change of a count is."""

    change: int
    probability: float

    def to_json(self) -> dict[str, Any]:
        return {"change": self.change, "probability": self.probability}


@dataclass(frozen=True)
class Perturbation:
    """The body's "disclosure": how the counts were perturbed (perturbation.PTable.describe)."""

    method: str
    max_change: int
    small_counts: str
    # The count from which `changes` holds (JSON "from").
    from_: int | None
    changes: tuple[Change, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "max_change": self.max_change,
            "small_counts": self.small_counts,
            "from": self.from_,
            "changes": [c.to_json() for c in self.changes],
        }

    @classmethod
    def from_json(cls, data: Json) -> Perturbation:
        return cls(
            data["method"],
            data["max_change"],
            data["small_counts"],
            data.get("from"),
            tuple(Change(c["change"], c["probability"]) for c in data.get("changes") or ()),
        )


@dataclass(frozen=True)
class SurveyRef:
    id: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version}


@dataclass(frozen=True)
class Published:
    """A snapshot's published body (the /api/v1/benchmarks body without "you")."""

    survey: SurveyRef
    # The snapshot's N: the one exact number published.
    responses: int
    released: bool
    published: bool
    # Responses still needed before anything is published.
    needed: int
    rules: Rules
    disclosure: Perturbation | None
    notes: tuple[str, ...]
    segment: Segment
    questions: tuple[QuestionFigures, ...]
    index: IndexFigures
    outcome: Outcome | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "survey": self.survey.to_json(),
            "responses": self.responses,
            "released": self.released,
            "published": self.published,
            "needed": self.needed,
            "rules": self.rules.to_json(),
        }
        if self.disclosure is not None:  # bodies from before it had none
            out["disclosure"] = self.disclosure.to_json()
        out |= {
            "notes": list(self.notes),
            "segment": self.segment.to_json(),
            "questions": [q.to_json() for q in self.questions],
            "index": self.index.to_json(),
            "outcome": self.outcome.to_json() if self.outcome is not None else None,
        }
        return out

    @classmethod
    def from_json(cls, data: Json) -> Published:
        disclosure, outcome = data.get("disclosure"), data.get("outcome")
        return cls(
            SurveyRef(data["survey"]["id"], data["survey"]["version"]),
            data["responses"],
            data["released"],
            data["published"],
            data["needed"],
            Rules.from_json(data["rules"]),
            Perturbation.from_json(disclosure) if disclosure else None,
            tuple(data.get("notes") or ()),
            Segment.from_json(data["segment"]),
            tuple(QuestionFigures.from_json(q) for q in data.get("questions") or ()),
            IndexFigures.from_json(data["index"]),
            Outcome.from_json(outcome) if outcome else None,
        )

    def question(self, key: str) -> QuestionFigures | None:
        """The published figures of one question, or None when the body has none."""
        return next((q for q in self.questions if q.key == key), None)


# ---------------------------------------------------------------------------- a participant


@dataclass(frozen=True)
class GroupQuestion:
    """One question's shares within the participant's segment group."""

    key: str
    type: str
    n: int
    caution: bool
    options: tuple[Cell, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "type": self.type,
            "n": self.n,
            "caution": self.caution,
            "options": [c.to_json() for c in self.options],
        }


@dataclass(frozen=True)
class YourGroup:
    """Clinics like yours: the participant's segment group as published."""

    key: str
    n: int
    questions: tuple[GroupQuestion, ...]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "n": self.n, "questions": [q.to_json() for q in self.questions]}


@dataclass(frozen=True)
class Raise:
    """Something that would raise the index, with the published share of clinics doing it
    (None for a bonus no single option carries, or when the share is not published)."""

    question: str
    options: tuple[str, ...]
    points: int
    percent: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "options": list(self.options),
            "points": self.points,
            "percent": self.percent,
        }


@dataclass(frozen=True)
class You:
    """A participant's view: their answers and index, where they stand among the published
    figures, what would raise the index, and clinics like theirs (JSON "you")."""

    answers: dict[str, Any]
    index: int
    # Whole percents of clinics in a lower 10-point band, the same one and a higher one.
    below: int | None
    same_band: int | None
    above: int | None
    # The published percentiles just below and above the index (None where there is none).
    between_percentiles: tuple[int | None, int | None]
    raise_: tuple[Raise, ...]
    group: YourGroup | None

    def to_json(self) -> dict[str, Any]:
        return {
            "answers": dict(self.answers),
            "index": self.index,
            "below": self.below,
            "same_band": self.same_band,
            "above": self.above,
            "between_percentiles": list(self.between_percentiles),
            "raise": [r.to_json() for r in self.raise_],
            "group": self.group.to_json() if self.group is not None else None,
        }
