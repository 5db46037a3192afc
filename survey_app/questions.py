"""The survey definition: questions.yaml -> frozen dataclasses, and answer validation.

Pure: imports neither Flask nor the database. A broken file raises SurveyError naming the
file, the line, the question and the problem, so start-up stops with a useful message.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
import stat
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from . import plain_text, question_types
from .question_types import AnswerError, QuestionType

log = logging.getLogger(__name__)
# The index is reported on a 0-100 scale; the YAML's points must reach exactly this.
INDEX_MAX = 100
SURVEY_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# The surveys table's title column.
TITLE_MAX = 200
# The largest value of a 32-bit INTEGER column (PostgreSQL's).
VERSION_MAX = 2**31 - 1
# Every field a survey file may hold, by where it is (docs/writing-a-survey.md describes each):
# any other key is a misspelling or a field Pulse does not have, and is refused with its line
# rather than dropped (`invite_onyl: true` made a public survey).
SURVEY_FIELDS = (
    "id",
    "version",
    "title",
    "intro",
    "privacy",
    "invite_only",
    "segment",
    "segment_label",
    "outcome",
    "questions",
    "index",
)
QUESTION_FIELDS = ("key", "type", "text", "options")
OPTION_FIELDS = ("key", "label", "exclusive", "action", "why")
INDEX_FIELDS = ("note", "name", "scoring")
RULE_FIELDS = ("points", "any", "extra")
EXTRA_FIELDS = ("at_least", "points")
# The survey form posts one field per question, named by the question's key, beside fields of its
# own: the CSRF token (Flask-WTF's default name), the signed time the form was served (forms.py)
# and, for an invite-only survey, the invite code (the form's template). views/survey.py reads
# them by these names, and tests/test_survey.py reads the form's own names back from the page: a
# question keyed like one of them would be posted under the same name and could not be answered.
CSRF_FIELD = "csrf_token"
SERVED_FIELD = "served"
INVITE_FIELD = "invite_code"
FORM_FIELDS = (CSRF_FIELD, SERVED_FIELD, INVITE_FIELD)
# A scored option's `action` is one short imperative (a row of the scorecard on a phone); its
# `why` one or two sentences.
ACTION_MAX = 80
WHY_MAX = 320
# What a survey's texts may not hold (plain_text.py); they may break lines and hold tabs.
TEXT_REFUSED = plain_text.refused(r"\x00-\x08\x0b-\x1f")
# The largest survey, in bytes: a file `pulse survey add` or start-up reads, the editor's text
# or upload (the shipped surveys are about 11 KB). It is also the largest text field a form may
# send (MAX_FORM_MEMORY_SIZE in create_app).
TEXT_MAX = 64 * 1024


class SurveyError(ValueError):
    """A questions file that cannot be used; the message names file, line and problem.

    `line` is the line the problem is on, when the message names one (the editor in /admin
    shows that line beside the text)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Option:
    key: str
    label: str
    exclusive: bool = False
    # What a clinic would do to earn the option's points, and why it matters: text for the
    # scorecard and the guide, never shown in the survey form. They do not take part in comparing
    # two definitions (program.py): adding or polishing them changes no answer and no score.
    action: str = field(default="", compare=False)
    why: str = field(default="", compare=False)


@dataclass(frozen=True)
class Question:
    key: str
    type: str
    text: str
    options: tuple[Option, ...]

    @property
    def option_keys(self) -> tuple[str, ...]:
        return tuple(o.key for o in self.options)

    def option(self, key: str) -> Option | None:
        """The option with this key, or None."""
        return next((o for o in self.options if o.key == key), None)

    @property
    def kind(self) -> QuestionType:
        """The question's type: everything that depends on it (question_types.py)."""
        return question_types.of(self.type)


@dataclass(frozen=True)
class Scoring:
    """How one question adds to the aftercare index."""

    question: str
    points: tuple[tuple[str, int], ...] = ()
    any: int = 0
    extra_at_least: int = 0
    extra_points: int = 0

    def score(self, chosen: tuple[str, ...], real_options: frozenset[str]) -> int:
        """Points for the chosen option keys."""
        table = dict(self.points)
        total = sum(table.get(k, 0) for k in chosen)
        real = [k for k in chosen if k in real_options]
        if self.any and real:
            total += self.any
        if self.extra_points and len(real) >= self.extra_at_least:
            total += self.extra_points
        return total

    def maximum(self, question: Question) -> int:
        """The most points this question can give."""
        return question.kind.maximum(question, self)

    def scored_options(self, question: Question) -> tuple[str, ...]:
        """Option keys that carry index points on their own."""
        table = dict(self.points)
        return tuple(o.key for o in question.options if table.get(o.key, 0) > 0 or (self.any and not o.exclusive))


@dataclass(frozen=True)
class Survey:
    id: str
    version: int
    title: str
    intro: str
    privacy: str
    questions: tuple[Question, ...]
    segment: str
    # What the segment groups are called in headings ("By practice type"); lower case.
    segment_label: str
    outcome: str | None
    scoring: tuple[Scoring, ...]
    index_note: str
    # What the index is called in sentences ("your comfort index"); the first survey's name by
    # default, so that definitions stored before the name existed read the same.
    index_name: str = "aftercare index"
    invite_only: bool = False
    source: str = field(default="", compare=False)

    def question(self, key: str) -> Question | None:
        """The question with this key, or None."""
        return next((q for q in self.questions if q.key == key), None)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(q.key for q in self.questions)

    def index_of(self, answers: Mapping[str, Any]) -> int:
        """The aftercare index (0-100) of one validated set of answers."""
        total = 0
        for rule in self.scoring:
            q = self.question(rule.question)
            chosen = as_tuple(answers.get(rule.question))
            real = frozenset(o.key for o in q.options if not o.exclusive)
            total += rule.score(chosen, real)
        return total

    def guide_texts(self) -> tuple[tuple[str, str, str, str], ...]:
        """(question, option, action, why) of every option: what comparing two definitions leaves out."""
        return tuple((q.key, o.key, o.action, o.why) for q in self.questions for o in q.options)

    def scored_options(self) -> tuple[tuple[str, str], ...]:
        """(question, option) pairs that carry index points."""
        out = []
        for rule in self.scoring:
            q = self.question(rule.question)
            out += [(q.key, k) for k in rule.scored_options(q)]
        return tuple(out)


def as_tuple(value: Any) -> tuple[str, ...]:
    """An answer (one key or a list of keys) as a tuple of keys."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


# ---------------------------------------------------------------------------- loading


class _Node(dict):
    """A YAML mapping that remembers the line it started on, and the line of each of its keys."""

    line = 0
    lines: Mapping[Any, int] = {}


class _List(list):
    """A YAML list that remembers the line it started on, and the line of each of its items."""

    line = 0
    lines: Mapping[int, int] = {}


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that records line numbers and refuses duplicate keys.

    On libyaml's C parser where PyYAML has it (about 7x faster: a survey file is parsed at every
    start, for every stored definition and every CLI command); the pure-Python one otherwise."""

    def construct_mapping(self, node, deep=False):
        # deep is PyYAML's: with it, nested lists are filled now; without, at the end of the
        # document. Keys are checked either way, so a repeated key is refused wherever it is.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # a list or mapping as key: the constructor below refuses it, with its line
            if key in seen:
                raise yaml.MarkedYAMLError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        mapping = _Node(super().construct_mapping(node, deep=deep))
        mapping.line = node.start_mark.line + 1
        # A field's problem is said on the field's own line, not on the mapping's first one.
        mapping.lines = {key: line + 1 for key, line in seen.items()}
        return mapping

    def construct_list(self, node):
        # A generator, as PyYAML's own: the list exists before its items, which may refer to it.
        items = _List()
        items.line = node.start_mark.line + 1
        items.lines = {i: item.start_mark.line + 1 for i, item in enumerate(node.value)}
        yield items
        items.extend(self.construct_sequence(node))


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, lambda loader, node: loader.construct_mapping(node)
)
_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, lambda loader, node: loader.construct_list(node)
)


def default_path() -> Path:
    """The survey file: $PULSE_QUESTIONS, else the one installed with the package."""
    env = os.environ.get("PULSE_QUESTIONS")
    if env:
        return Path(env)
    packaged = resources.files("survey_app") / "questions.yaml"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "questions.yaml"


def load_survey(path: str | os.PathLike | None = None) -> Survey:
    """Read and validate a questions file; raise SurveyError on any problem."""
    return read_survey_file(path)[0]


def read_survey_file(path: str | os.PathLike | None = None) -> tuple[Survey, str]:
    """The validated survey of a questions file and the file's text (stored as its definition)."""
    path = Path(path) if path is not None else default_path()
    try:
        # Asked before opening: opening a pipe waits for a writer, and a device (/dev/zero) or a
        # file past TEXT_MAX would be read into memory for nothing.
        if not stat.S_ISREG(path.stat().st_mode):
            raise SurveyError(f"{path}: not a survey file: a folder, a device or a pipe, not a file")
        with path.open("rb") as file:
            data = file.read(TEXT_MAX + 1)
    except OSError as exc:
        raise SurveyError(f"{path}: cannot read the survey file: {exc.strerror or exc}") from None
    if len(data) > TEXT_MAX:
        raise SurveyError(
            f"{path}: not a survey file: it is larger than {TEXT_MAX // 1024} KB "
            "(the surveys Pulse ships are about 11 KB)"
        )
    text = survey_text(data, str(path))
    return parse_survey(text, str(path)), text


def survey_text(data: bytes, source: str) -> str:
    """The text of a survey file's bytes (a file on disk, an upload); SurveyError when they are not text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SurveyError(
            f"{source}: not a survey file: byte {exc.start} is not UTF-8 text (a survey file is "
            "YAML text; is this the right file?)"
        ) from None
    return plain_lines(text)


def plain_lines(text: str) -> str:
    """Line ends as a file read as text has them (a browser sends a text area's as \\r\\n)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def with_version(text: str, version: int) -> str:
    """A valid survey file's text with its top-level `version` set to `version`, everything else
    (comments, layout) as written: "start from" a stored survey in /admin's editor."""
    # The pure-Python loader: its marks count characters (the C loader's may count bytes).
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for key, value in root.value if isinstance(root, yaml.MappingNode) else ():
        if isinstance(key, yaml.ScalarNode) and key.value == "version":
            return text[: value.start_mark.index] + str(version) + text[value.end_mark.index :]
    raise SurveyError("the survey has no top-level 'version' to raise")


def parse_survey(text: str, source: str, stored: bool = False) -> Survey:
    """Validate a survey definition's YAML text; `source` names it in messages (a file, a stored survey).

    `stored`: the text of a survey stored before (program.py reads every stored survey again,
    at start-up and on the pages that serve it). It passed the rules of its day, and responses,
    snapshots and keys hang on it, so a rule added since (those that ask `strict`) must not stop
    Pulse: the survey is read as it was then, and what the rule refuses now is said in the log.
    Every new survey, from a file, the editor or the command line, meets every rule.

    A survey is frozen, so the same text parsed once, under the same registered question types,
    serves every app of the process (the tests make one per test; a worker reads its surveys once
    anyway). A refused text raises each time.
    """
    return _parsed(text, source, tuple(question_types.TYPES.items()), stored)


@functools.lru_cache(maxsize=64)
def _parsed(text: str, source: str, _types: tuple, stored: bool) -> Survey:
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        line, problem = _yaml_problem(exc, text)
        at = f", line {line}" if line else ""
        raise SurveyError(f"{source}{at}: invalid YAML: {problem}", line) from None
    try:
        return _parse(data, source)
    except SurveyError as exc:
        if not stored:
            raise
        survey = _parse(data, source, strict=False)  # what it always refused, it still does
        log.warning("%s (a rule newer than this stored survey; it is read as it was stored)", exc)
        return survey


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[int | None, str]:
    """The line and the one-line problem of a YAML error (its str() spans lines, with marks that
    name "<unicode string>")."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        return (mark.line + 1 if mark else None), exc.problem or exc.context or "not YAML"
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        # A character YAML never takes (a binary file's NUL) has a position and no mark; the C
        # parser counts it in bytes, so find the character itself: its first place is the one refused.
        at = text.find(chr(exc.character))
        line = text.count("\n", 0, at) + 1 if at >= 0 else None
        return line, f"unacceptable character #x{exc.character:04x}: {exc.reason}"
    return None, " ".join(str(exc).split())


def _fail(source: str, node: Any, where: str, problem: str, field: Any = None) -> SurveyError:
    """The problem, said with the line of `field` (a key of the mapping `node`, an index of the
    list `node`) where the file has it, else the line `node` starts on."""
    lines = getattr(node, "lines", {})
    line = lines.get(field, 0) if field is not None and isinstance(field, Hashable) else 0
    line = line or getattr(node, "line", 0)
    at = f", line {line}" if line else ""
    return SurveyError(f"{source}{at}: {where}: {problem}", line or None)


def _nearest(name: Any, names: Any) -> str:
    """ " (did you mean 'x'?)" when `name` looks like a misspelling of one of `names`, else ""."""
    close = difflib.get_close_matches(name, list(names), n=1) if isinstance(name, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known(source: str, node: Mapping, fields: tuple[str, ...], where: str, what: str) -> None:
    """Refuse the first key of `node` that is not one of `fields`, on its line, with the field it
    is nearest to, or else every field `what` ("a survey") has."""
    for key in node:
        if key not in fields:
            hint = _nearest(key, fields) or f" ({what} has: {', '.join(fields)})"
            raise _fail(source, node, where, f"unknown field {key!r}{hint}", key)


def _text(source: str, node: Mapping, key: str, where: str, required: bool = True) -> str:
    value = node.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or str(value).strip() == "":
        raise _fail(source, node, where, f"'{key}' must be non-empty text", key)
    _plain(source, node, where, key, str(value))
    return str(value).strip()


def _plain(source: str, node: Any, where: str, key: str, value: str) -> None:
    """Refuse a text holding a character no text of Pulse may hold (plain_text.py); line breaks
    and tabs are text. Checked before strip(), which would drop some of them from the ends."""
    found = plain_text.first_refused(value, TEXT_REFUSED)
    if found is not None:
        raise _fail(
            source,
            node,
            where,
            f"'{key}' contains the character U+{ord(found):04X} (a control, direction or non-character); "
            "use plain text",
            key,
        )


def _parse(data: Any, source: str, strict: bool = True) -> Survey:
    """The survey of a parsed file; `strict` (parse_survey's `stored`): every rule, also those
    added since surveys were first stored."""
    if not isinstance(data, Mapping):
        raise SurveyError(f"{source}: the file must be a mapping with id, version, title and questions")
    top = "survey"
    if strict:
        _known(source, data, SURVEY_FIELDS, top, "a survey")
    survey_id = _text(source, data, "id", top)
    # Stored under (id, version) and addressed as /results/<id>/<version>: both must fit a web
    # address and an INTEGER column on every database.
    if not SURVEY_ID.fullmatch(survey_id):
        raise _fail(source, data, top, "'id' must be 1 to 100 letters, digits, '-' or '_'", "id")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION_MAX:
        raise _fail(source, data, top, f"'version' must be a whole number from 1 to {VERSION_MAX}", "version")
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise _fail(source, data, top, "'questions' must be a non-empty list", "questions")

    questions: list[Question] = []
    for i, raw in enumerate(raw_questions, start=1):
        questions.append(_parse_question(source, raw_questions, i, {q.key for q in questions}, strict))
    by_key = {q.key: q for q in questions}

    segment = _text(source, data, "segment", top)
    if segment not in by_key:
        raise _fail(source, data, top, f"segment question {segment!r} is not a question of this survey", "segment")
    if by_key[segment].kind.several:
        raise _fail(source, data, f"question {segment!r}", "the segment question must be single-choice", "segment")
    segment_label = data.get("segment_label")
    if segment_label is None:
        segment_label = segment.replace("_", " ")
    elif not isinstance(segment_label, str) or not segment_label.strip():
        raise _fail(source, data, top, "'segment_label' must be non-empty text", "segment_label")
    _plain(source, data, top, "segment_label", segment_label)
    segment_label = segment_label.strip()
    outcome = data.get("outcome")
    if outcome is not None and (outcome not in by_key or by_key[outcome].kind.several):
        raise _fail(
            source,
            data,
            top,
            f"outcome question {outcome!r} must be a single-choice question of this survey",
            "outcome",
        )

    index = data.get("index")
    if strict and isinstance(index, Mapping):
        _known(source, index, INDEX_FIELDS, "index", "the index")
    if not isinstance(index, Mapping) or not isinstance(index.get("scoring"), Mapping):
        raise _fail(
            source,
            index if isinstance(index, Mapping) else data,
            top,
            "'index' must hold 'note' and a 'scoring' mapping",
            "scoring" if isinstance(index, Mapping) else "index",
        )
    scoring = tuple(_parse_scoring(source, index["scoring"], by_key, strict))
    _check_guide_texts(source, raw_questions, questions, scoring)
    maximum = sum(rule.maximum(by_key[rule.question]) for rule in scoring)
    # A survey stored before the maximum counted points on an exclusive option may reach another total.
    if maximum != INDEX_MAX and strict:
        raise _fail(
            source, index, "index", f"the points can reach {maximum}; they must reach exactly {INDEX_MAX}", "scoring"
        )

    title = _text(source, data, "title", top)
    if len(title) > TITLE_MAX:
        raise _fail(source, data, top, f"'title' must be at most {TITLE_MAX} characters", "title")
    invite_only = data.get("invite_only", False)
    if not isinstance(invite_only, bool):
        raise _fail(source, data, top, "'invite_only' must be true or false", "invite_only")
    return Survey(
        id=survey_id,
        version=version,
        title=title,
        intro=_text(source, data, "intro", top),
        privacy=_text(source, data, "privacy", top),
        questions=tuple(questions),
        segment=segment,
        segment_label=segment_label,
        outcome=outcome,
        scoring=scoring,
        index_note=_text(source, index, "note", "index"),
        index_name=_text(source, index, "name", "index", required=False) or "aftercare index",
        invite_only=invite_only,
        source=source,
    )


def _key(source: str, node: Any, where: str) -> str:
    key = node.get("key") if isinstance(node, Mapping) else None
    if not isinstance(key, str) or not key.isidentifier():
        raise _fail(source, node, where, "'key' must be a name made of letters, digits and underscores", "key")
    return key


def _named(raw: Mapping, what: str, otherwise: str) -> str:
    """How messages name a question or an option (`what`): by its key if it has a valid one."""
    key = raw.get("key")
    return f"{what} {key!r}" if isinstance(key, str) and key.isidentifier() else otherwise


def _parse_question(source: str, raw_questions: list, number: int, taken: set[str], strict: bool) -> Question:
    """The question `number` (from 1) of the file's list of questions."""
    where = f"question {number}"
    raw = raw_questions[number - 1]
    if not isinstance(raw, Mapping):
        raise _fail(source, raw_questions, where, "must be a mapping with key, type, text and options", number - 1)
    if strict:
        _known(source, raw, QUESTION_FIELDS, _named(raw, "question", where), "a question")
    key = _key(source, raw, where)
    where = f"question {key!r}"
    if key in taken:
        raise _fail(source, raw, where, "duplicate question key", "key")
    if key in FORM_FIELDS and strict:
        raise _fail(
            source,
            raw,
            where,
            f"'key' cannot be {key!r}, a name the survey form uses for a field of its own "
            f"(it uses {', '.join(FORM_FIELDS[:-1])} and {FORM_FIELDS[-1]})",
            "key",
        )
    qtype = raw.get("type")
    if qtype not in question_types.TYPES:
        raise _fail(
            source, raw, where, f"unknown type {qtype!r} (use one of: {', '.join(question_types.TYPES)})", "type"
        )
    kind = question_types.of(qtype)
    text = _text(source, raw, "text", where)
    raw_options = raw.get("options")
    if not isinstance(raw_options, list) or len(raw_options) < 2:
        raise _fail(source, raw, where, "'options' must list at least two options", "options")
    options: list[Option] = []
    for i, item in enumerate(raw_options):
        if not isinstance(item, Mapping):
            raise _fail(source, raw_options, f"{where}, an option", "must be a mapping with key and label", i)
        if strict:
            _known(source, item, OPTION_FIELDS, f"{where}, {_named(item, 'option', 'an option')}", "an option")
        okey = _key(source, item, f"{where}, an option")
        if any(o.key == okey for o in options):
            raise _fail(source, item, where, f"duplicate option key {okey!r}", "key")
        exclusive = item.get("exclusive", False)
        if not isinstance(exclusive, bool):
            raise _fail(source, item, where, f"option {okey!r}: 'exclusive' must be true or false", "exclusive")
        problem = kind.option_problem(Option(okey, "", exclusive))
        if problem:
            raise _fail(source, item, where, problem, "exclusive")
        label = _text(source, item, "label", f"{where}, option {okey!r}")
        action = _text(source, item, "action", f"{where}, option {okey!r}", required=False)
        if len(action) > ACTION_MAX or "\n" in action:
            raise _fail(
                source,
                item,
                where,
                f"option {okey!r}: 'action' must be one line of at most {ACTION_MAX} characters (it has {len(action)})",
                "action",
            )
        why = " ".join(_text(source, item, "why", f"{where}, option {okey!r}", required=False).split())
        if len(why) > WHY_MAX:
            raise _fail(
                source,
                item,
                where,
                f"option {okey!r}: 'why' must be at most {WHY_MAX} characters "
                f"(one or two sentences; it has {len(why)})",
                "why",
            )
        options.append(Option(okey, label, exclusive, action, why))
    return Question(key=key, type=qtype, text=text, options=tuple(options))


def _check_guide_texts(
    source: str, raw_questions: list, questions: list[Question], scoring: tuple[Scoring, ...]
) -> None:
    """`action` and `why` belong to options that carry index points: nothing else shows them."""
    scored = {
        (rule.question, k)
        for rule in scoring
        for q in questions
        if q.key == rule.question
        for k in rule.scored_options(q)
    }
    for raw, question in zip(raw_questions, questions):
        for item, option in zip(raw["options"], question.options):
            if (option.action or option.why) and (question.key, option.key) not in scored:
                raise _fail(
                    source,
                    item,
                    f"question {question.key!r}",
                    f"option {option.key!r} has 'action' or 'why' but carries no index points",
                    "action" if option.action else "why",
                )


def _parse_scoring(source: str, raw: Mapping, by_key: Mapping[str, Question], strict: bool = True):
    for qkey, rule in raw.items():
        where = f"index scoring for {qkey!r}"
        if qkey not in by_key:
            raise _fail(source, raw, where, f"not a question of this survey{_nearest(qkey, by_key)}", qkey)
        question = by_key[qkey]
        if not isinstance(rule, Mapping) or not rule:
            raise _fail(source, raw, where, "use 'points', 'any' and/or 'extra'", qkey)
        _known(source, rule, RULE_FIELDS, where, "a scoring rule")  # refused by every release
        points = rule.get("points", {})
        if not isinstance(points, Mapping):
            raise _fail(source, rule, where, "'points' must map option keys to points", "points")
        for okey, value in points.items():
            if question.option(okey) is None:
                hint = _nearest(okey, question.option_keys)
                raise _fail(source, points, where, f"points for unknown option {okey!r}{hint}", okey)
            if not _whole(value) or value < 0:
                raise _fail(source, points, where, f"points for {okey!r} must be a whole number of at least 0", okey)
        any_points = rule.get("any", 0)
        problem = question.kind.scoring_problem("any", any_points)
        if problem:
            raise _fail(source, rule, where, problem, "any")
        if not _whole(any_points) or any_points < 0:
            raise _fail(source, rule, where, "'any' must be a whole number of at least 0", "any")
        at_least, extra_points = _parse_extra(source, rule, question, where, strict)
        yield Scoring(
            question=qkey,
            points=tuple((k, int(v)) for k, v in points.items()),
            any=int(any_points),
            extra_at_least=at_least,
            extra_points=extra_points,
        )


def _whole(value: Any) -> bool:
    """A whole number as YAML writes one: not true or false (YAML's booleans are Python's ints),
    not 2.0, not "2"."""
    return isinstance(value, int) and not isinstance(value, bool)


def _said(value: Any) -> str:
    """A value of the file as the file writes it, for a message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "empty"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _parse_extra(source: str, rule: Mapping, question: Question, where: str, strict: bool) -> tuple[int, int]:
    """(at_least, points) of a rule's `extra`: points for choosing at least `at_least` options that
    are not exclusive; (0, 0) without one."""
    if "extra" not in rule:
        return 0, 0
    extra = rule["extra"]
    problem = question.kind.scoring_problem("extra", extra)
    if problem and strict:
        raise _fail(source, rule, where, problem, "extra")
    if isinstance(extra, Mapping):
        _known(source, extra, EXTRA_FIELDS, where, "'extra'")  # refused by every release
    if not isinstance(extra, Mapping) or ((extra or strict) and set(extra) != set(EXTRA_FIELDS)):
        raise _fail(source, rule, where, "'extra' must hold 'at_least' and 'points'", "extra")
    if not strict:
        # As surveys stored before these rules were read: whatever int() made of the values.
        try:
            return int(extra.get("at_least", 0)), int(extra.get("points", 0))
        except (TypeError, ValueError):
            raise _fail(source, rule, where, "'extra' must hold whole numbers", "extra") from None
    at_least, points = extra["at_least"], extra["points"]
    # Points of 0 would give nothing, and fewer would lower the index below 0, or let the other
    # points of the question pass the maximum the index counts.
    if not _whole(points) or points < 1:
        raise _fail(
            source,
            extra,
            where,
            f"'points' in 'extra' must be a whole number of at least 1, not {_said(points)}",
            "points",
        )
    # Choosing one option is `any`; more options than the question has that are not exclusive can
    # never be chosen (and an exclusive option stands alone: it never counts).
    several = sum(1 for o in question.options if not o.exclusive)
    if several < 2:
        raise _fail(
            source,
            rule,
            where,
            f"'extra' needs at least 2 options that are not exclusive; the question has {several}",
            "extra",
        )
    if not _whole(at_least) or not 2 <= at_least <= several:
        allowed = "2" if several == 2 else f"a whole number from 2 to {several}"
        hint = "; 'any' gives points for choosing at least one" if at_least == 1 and _whole(at_least) else ""
        raise _fail(
            source,
            extra,
            where,
            f"'at_least' in 'extra' must be {allowed} (the question's options that are not exclusive), "
            f"not {_said(at_least)}{hint}",
            "at_least",
        )
    return at_least, points


# ---------------------------------------------------------------------------- answers

# Each type's check and schema live in its class (question_types.py, AnswerError with them).
NOT_AN_OBJECT = "must be an object mapping question keys to option keys"


def validate_answers(survey: Survey, answers: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Check a submission against the survey: (clean answers, errors by question key).

    Clean answers are what each question's type makes of them (a string for single-choice, a
    sorted list for multi-choice questions). Any error means nothing may be stored.
    """
    if not isinstance(answers, Mapping):
        return {}, {"answers": NOT_AN_OBJECT}
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for key in answers:
        if not isinstance(key, str) or survey.question(key) is None:
            errors[str(key)] = "unknown question"
    for q in survey.questions:
        value = answers.get(q.key)
        if value is None or value == "" or value == []:
            errors[q.key] = "an answer is required"
            continue
        try:
            clean[q.key] = q.kind.check(q, value)
        except AnswerError as exc:
            errors[q.key] = str(exc)
    if errors:
        return {}, errors
    return clean, {}


def answers_schema(survey: Survey) -> dict[str, Any]:
    """JSON schema of the answers object: one property per question, all required, nothing else."""
    return {
        "type": "object",
        "properties": {q.key: q.kind.json_schema(q) for q in survey.questions},
        "required": list(survey.keys),
        "additionalProperties": False,
    }


def example_answers(survey: Survey) -> dict[str, Any]:
    """A complete, valid set of answers to this survey."""
    return {q.key: q.kind.example(q) for q in survey.questions}
