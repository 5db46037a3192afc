"""Every /api/v1 body as a pydantic model: what a request may hold and what a response holds.

One definition per body. The server reads requests through these models (their 422s name the
field, as PRODUCT.md's `{"errors": {field: message}}`), the views build their small answers
with them, and api_document.py publishes their JSON Schema as the OpenAPI document. A survey's
answers are the survey's own (questions.py: each question type's check beside its schema).
Pure: neither Flask nor a database.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError, WithJsonSchema
from pydantic import create_model as _create_model
from pydantic_core import PydanticCustomError

from . import plain_text, question_types, questions, schedule_times
from .questions import answers_schema, validate_answers

TITLE_MAX = 120
DESCRIPTION_MAX = 1000
# More ids than any round will hold: a longer list is a mistake or an attack, not a ballot.
BALLOT_MAX_IDS = 500
# Characters refused in topic text (plain_text.py: control characters, the bidirectional
# overrides and isolates, non-characters). A description may break lines (\n, \r\n) and hold
# tabs. The server searches with these and the document states them (`not: {pattern}`).
TITLE_REFUSED = plain_text.refused(r"\x00-\x1f")
DESCRIPTION_REFUSED = plain_text.refused(r"\x00-\x08\x0b\x0c\x0e-\x1f")
WEEK = r"^\d{4}-W\d{2}$"


class Refused(ValueError):
    """A body the server refuses (422): the message and what is wrong, by field."""

    def __init__(self, message: str, errors: dict[str, str]):
        super().__init__(message)
        self.message, self.errors = message, errors


# ------------------------------------------------------------------ requests


class Body(BaseModel):
    """A request body: no fields besides its own, JSON types as sent (no coercion).

    A refused body names its fields the way PRODUCT.md shows: REFUSALS gives the 422's message
    by field, in the order the fields are judged (a missing field first, as MISSING says it);
    fields that share a message are refused together, the others wait for the next request.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    REFUSALS: ClassVar[dict[str, str]] = {}
    MISSING: ClassVar[dict[str, tuple[str, str]]] = {}
    # What a field's pydantic error says, by error type ("*" for any), for fields of plain types.
    SAYS: ClassVar[dict[str, dict[str, str]]] = {}

    @classmethod
    def fields(cls) -> set[str]:
        return set(cls.model_fields)

    @classmethod
    def parse(cls, data: Any):
        """The validated body; Refused naming the field otherwise."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise cls._refusal(exc.errors()) from None

    @classmethod
    def _refusal(cls, found: list[dict]) -> Refused:
        names = list(cls.model_fields)
        judged: list[tuple[tuple, str, dict[str, str]]] = []  # (rank, message, errors by field)
        for error in found:
            field = str(error["loc"][0]) if error["loc"] else ""
            kind = error["type"]
            if kind == "model_type":
                return Refused("The body must be a JSON object.", {"body": "must be a JSON object"})
            if kind == "extra_forbidden":
                judged.append(((0, field), "Unknown fields in the body.", {field[:40]: "unknown field"}))
            elif kind == "missing":
                message, says = cls.MISSING[field]
                judged.append(((1, names.index(field)), message, {field: says}))
            else:
                order = list(cls.REFUSALS)
                says = cls.SAYS.get(field, {})
                text = error.get("ctx", {}).get("errors") if kind == "refused" else None
                if text is None:
                    text = {field: error["msg"] if kind == "refused" else says.get(kind, says.get("*", error["msg"]))}
                # A field's type error before its length: a list of numbers is not a list of ids, however long.
                rank = (2, order.index(field), 0 if kind != "too_long" else 1)
                judged.append((rank, cls.REFUSALS[field], text))
        judged.sort(key=lambda j: j[0])
        (first, _), message = judged[0][0][:2], judged[0][1]
        errors: dict[str, str] = {}
        for _, said, text in judged:
            if said == message:
                for name, words in text.items():
                    errors.setdefault(name, words)
        if first == 0:  # unknown fields, as errors.json_object names them: ten at most
            errors = dict(list(errors.items())[:10])
        return Refused(message, errors)


def _refuse(message: str, errors: dict[str, str] | None = None) -> PydanticCustomError:
    """A field's own message (or, for answers, errors by question key) for the 422."""
    return PydanticCustomError("refused", message, {"errors": errors} if errors is not None else None)


def _topic_text(name: str, limit: int, refused: str, required: bool, description: str):
    """A plain-text field of a topic: the server's check and the document's schema from the same rules."""

    def check(value: Any) -> str:
        # The checks apply to the text as sent, exactly as the schema states them.
        if not isinstance(value, str):
            raise _refuse(f"the {name} must be text")
        if len(value) > limit:
            raise _refuse(f"the {name} is {len(value)} characters long; at most {limit} are allowed")
        if plain_text.first_refused(value, refused):
            raise _refuse(f"the {name} contains control characters; use plain text")
        text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
        if required and not text:
            raise _refuse(f"the {name} is required")
        return text

    schema: dict[str, Any] = {
        "type": "string",
        "maxLength": limit,
        "not": {"pattern": refused},
        "description": description,
    }
    if required:
        schema |= {"minLength": 1, "pattern": r"\S"}
    return Annotated[str, PlainValidator(check), WithJsonSchema(schema)]


TopicTitle = _topic_text("title", TITLE_MAX, TITLE_REFUSED, True, "Plain text: not only spaces, no control characters.")
TopicDescription = _topic_text(
    "description", DESCRIPTION_MAX, DESCRIPTION_REFUSED, False, "Optional plain text; line breaks allowed."
)


class Proposal(Body):
    """POST /api/v1/topics (and the /topics form): a topic for the next survey."""

    REFUSALS = {"title": "The proposal needs attention.", "description": "The proposal needs attention."}
    MISSING = {"title": ("The proposal needs attention.", "the title is required")}
    title: TopicTitle
    description: TopicDescription = ""


def _at_most(ids: list[str]) -> list[str]:
    if len(ids) > BALLOT_MAX_IDS:
        raise PydanticCustomError("too_long", f"at most {BALLOT_MAX_IDS} ids")
    return ids


class Ballot(Body):
    """PUT /api/v1/ballot: every topic this results key approves in the open round."""

    REFUSALS = {"approve": "The ballot needs attention."}
    MISSING = {"approve": ("The ballot needs attention.", "required")}
    SAYS = {"approve": {"*": "must be a list of topic ids", "too_long": f"at most {BALLOT_MAX_IDS} ids"}}
    approve: Annotated[list[str], AfterValidator(_at_most)] = Field(
        json_schema_extra={"maxItems": BALLOT_MAX_IDS},
        description="Ids of every topic this ballot approves (any number).",
    )


class Submission(Body):
    """POST .../responses: one clinic's answers to a survey (submission_model makes each survey's)."""

    REFUSALS = {"invite_code": "The invite code must be text.", "answers": "Some answers need attention."}
    MISSING = {"answers": ("The answers are missing.", "required")}
    SAYS = {"invite_code": {"*": "must be text"}}


class _InviteOnly(Submission):
    model_config = ConfigDict(json_schema_extra=lambda schema: schema["required"].append("invite_code"))


@lru_cache(maxsize=64)
def submission_model(survey: questions.Survey) -> type[Submission]:
    """The body a survey takes: its own answers (questions.py checks them), and an invite code.

    A survey not in invite mode ignores a code given as text, and refuses one of another type.
    In invite mode the code is required; one that is missing or unknown is refused after the
    answers are judged (submissions.py), so the model lets a missing one through.
    """

    def check(value: Any) -> dict[str, Any]:
        clean, errors = validate_answers(survey, value)
        if errors:
            raise _refuse("answers", errors)
        return clean

    answers = Annotated[dict, PlainValidator(check), WithJsonSchema(answers_schema(survey))]
    code_says = (
        "Required: this survey is in invite mode."
        if survey.invite_only
        else "Ignored: this survey is not in invite mode."
    )
    return _create_model(
        "Submission",
        __base__=_InviteOnly if survey.invite_only else Submission,
        __doc__=Submission.__doc__,
        answers=(answers, Field(description="One answer per question, by question key.")),
        invite_code=(str, Field(default=None, description=code_says)),
    )


# ------------------------------------------------------------------ responses


class Answer(BaseModel):
    """A response body: exactly the fields the server sends (a new one must be described first)."""

    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """A published figure: the fields described here, and any the pipeline adds beside them."""

    model_config = ConfigDict(extra="allow")


class Error(Answer):
    """Every refusal: a sentence, and what is wrong by question key or field."""

    error: str
    errors: dict[str, str] = None  # absent when no field is to blame


class SurveyOption(Answer):
    key: str
    label: str
    exclusive: bool


def _question_type(name: str) -> str:
    if name not in question_types.TYPES:
        raise PydanticCustomError("question_type", "not a registered question type")
    return name


# A question's type: one the registry holds (the document lists those registered at start-up).
QuestionTypeName = Annotated[
    str,
    AfterValidator(_question_type),
    WithJsonSchema({"enum": list(question_types.TYPES), "type": "string"}),
]


class SurveyQuestion(Answer):
    key: str
    type: QuestionTypeName
    text: str
    options: list[SurveyOption]


# A scheduled time as the API gives it: ISO 8601 in UTC, to the second.
UtcTime = Annotated[
    str, Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", json_schema_extra={"format": "date-time"})
]


class Schedule(Answer):
    """When the survey opens and closes by itself, as the organisers scheduled it (UTC)."""

    opens: UtcTime | None = Field(description="When it opens (and becomes current) by itself; null: not scheduled")
    closes: UtcTime | None = Field(description="When it closes by itself; null: not scheduled")

    @classmethod
    def of(cls, opens_at: int | None, closes_at: int | None) -> Schedule:
        """From the stored Unix seconds."""
        return cls(opens=schedule_times.iso_utc(opens_at), closes=schedule_times.iso_utc(closes_at))


class Survey(Answer):
    """GET /api/v1/survey and /api/v1/surveys/{id}/{version}: questions and options, and the schedule."""

    id: str
    version: int
    title: str
    invite_only: bool
    questions: list[SurveyQuestion]
    schedule: Schedule

    @classmethod
    def of(cls, survey: questions.Survey, schedule: Schedule) -> Survey:
        return cls(
            id=survey.id,
            version=survey.version,
            title=survey.title,
            invite_only=survey.invite_only,
            schedule=schedule,
            questions=[
                SurveyQuestion(
                    key=q.key,
                    type=q.type,
                    text=q.text,
                    options=[SurveyOption(key=o.key, label=o.label, exclusive=o.exclusive) for o in q.options],
                )
                for q in survey.questions
            ],
        )


Week = Annotated[str, Field(pattern=WEEK)]


class Weeks(Answer):
    opened: Week = Field(description="ISO week first opened")
    closed: Week | None = Field(description="ISO week last closed; null while open")


class TopicRef(Answer):
    id: str
    title: str


class SurveyListing(Answer):
    id: str
    version: int
    title: str
    status: Literal["open", "closed"]
    weeks: Weeks
    responses: int | None = Field(ge=0, description="The published N; null until results are released and published")
    topic: TopicRef | None = Field(description="The community topic this survey answers, if the organisers linked one")
    schedule: Schedule


class SurveyList(Answer):
    """GET /api/v1/surveys: every survey that has been opened, the current one first."""

    surveys: list[SurveyListing]


class ResultsKey(Answer):
    """201 to a submission: the results key, shown only now."""

    results_key: str


Percentiles = Annotated[
    dict[str, float | None],
    Field(
        description='The index at the 10th, 25th, 50th, 75th and 90th percentile ("10" … "90"); null where '
        "too few clinics lie beyond it to show it."
    ),
]


class Cell(Open):
    """One published option: a perturbed count, its percent of n and a 95% interval."""

    key: str
    count: int | None
    percent: int | None
    ci: list[int] = Field(min_length=2, max_length=2)


class SegmentCells(Open):
    """A question's shares within one segment group."""

    key: str
    n: int
    caution: bool
    options: list[Cell]


class BenchmarkQuestion(Open):
    key: str
    type: str
    n: int
    caution: bool
    enough: bool
    options: list[Cell]
    segments: list[SegmentCells]
    notes: list[str]


class SegmentGroup(Open):
    """A group of the segment question's options, published on its own (merged when too small)."""

    key: str
    members: list[str]
    n: int


class Segment(Open):
    question: str
    groups: list[SegmentGroup]


class Bin(Open):
    from_: int = Field(alias="from")
    to: int
    count: int
    percent: int | None
    ci: list[int] = Field(min_length=2, max_length=2)


class IndexFigures(Open):
    """The index distribution: N, a perturbed 10-point histogram and the percentiles it shows."""

    n: int
    caution: bool
    percentiles: Percentiles
    histogram: list[Bin]
    notes: list[str]


class OutcomeOption(Open):
    key: str
    n: int | None
    percentiles: Percentiles


class Outcome(Open):
    """Index percentiles per option of the survey's outcome question."""

    question: str
    options: list[OutcomeOption]


class Rules(Open):
    release_threshold: int
    k: int
    segment_min: int


class GroupQuestion(Open):
    key: str
    type: str
    n: int
    caution: bool
    options: list[Cell]


class Group(Open):
    """Clinics like yours: the participant's segment group as published."""

    key: str
    n: int
    questions: list[GroupQuestion]


class Raise(Open):
    """Something that would raise the index, with the published share of clinics doing it."""

    question: str
    options: list[str]
    points: int
    percent: int | None


class You(Open):
    """With a valid X-Results-Key: this participant beside the others."""

    answers: dict[str, Any]
    index: int
    below: int | None
    same_band: int | None
    above: int | None
    between_percentiles: list[int | None] = Field(min_length=2, max_length=2)
    raise_: list[Raise] = Field(alias="raise")
    group: Group | None


class SurveyRef(Open):
    id: str
    version: int


class Change(Open):
    change: int
    probability: float


class Disclosure(Open):
    """How the counts were perturbed: the largest change, from which count, and how likely each change is."""

    method: str
    max_change: int
    small_counts: str
    from_: int = Field(alias="from")
    changes: list[Change]


class Benchmark(Open):
    """GET .../benchmarks: a survey's latest snapshot as published (with "you" for a results key).

    The pipeline writes this body (pipeline/publishing.py); a figure it adds is allowed here
    until it is described, so the document never refuses a body the server sends.
    """

    survey: SurveyRef
    responses: int
    released: bool
    published: bool
    needed: int
    rules: Rules
    disclosure: Disclosure
    notes: list[str]
    segment: Segment
    questions: list[BenchmarkQuestion]
    index: IndexFigures
    outcome: Outcome | None
    you: You = None  # only with a valid X-Results-Key


class Round(Answer):
    id: int
    status: Literal["open", "closed"]
    chosen: str | None = Field(
        default=None,
        description=(
            "The id of the topic the closed round chose: the most approved, or on a tie the organisers' "
            "choice. Null while open or while a tie waits."
        ),
    )
    closes: UtcTime | None = Field(
        default=None,
        description="When the open round closes by itself (UTC); null: not scheduled, or closed already",
    )

    @classmethod
    def listed(cls, info: dict[str, Any], closes_at: int | None) -> Round:
        """The round as GET /api/v1/topics lists it: voting.topics_view's round, and its scheduled close."""
        return cls(**info, closes=schedule_times.iso_utc(closes_at))


class ListedTopic(Answer):
    id: str
    title: str
    description: str
    votes: int | None


# A round as GET /api/v1/topics lists it always says what it chose and when it closes by itself
# (null until it has, or when nothing is scheduled).
ListedRound = Annotated[
    Round | None,
    WithJsonSchema(
        {
            "oneOf": [
                {"allOf": [{"$ref": "#/components/schemas/Round"}, {"required": ["chosen", "closes"]}]},
                {"type": "null"},
            ]
        }
    ),
]


class Topics(Answer):
    """GET /api/v1/topics: the latest round and its topics."""

    round: ListedRound
    topics: list[ListedTopic]


class ProposalStored(Answer):
    """201 to a proposal: stored, waiting for moderation."""

    id: str
    status: Literal["pending"]


class BallotStored(Answer):
    """200 to a ballot: it replaces this key's earlier ballot in the round."""

    round: Round
    approve: list[str]


# Every body the document describes, for api_document.py and the tests.
RESPONSES = (Error, Survey, SurveyList, ResultsKey, Benchmark, Topics, ProposalStored, BallotStored)
REQUESTS = (Proposal, Ballot)
