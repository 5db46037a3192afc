"""Every type of question, each one class: what it accepts, how it is asked, counted, scored and shown.

A survey file names a question's type (`type: single`); the class registered under that name
(TYPES, through register()) answers every question that depends on it, so that nothing else in
Pulse tells the types apart by name:

- parse: which of the file's rules fit the type (option_problem, scoring_problem), said at
  start-up with the file, the line and the question (questions.py adds those);
- an answer: check() (the submission's judge), json_schema() (the API's document of it,
  api_document.py) and example(), held to each other by tests/test_api_models.py;
- the form: form_field(), from_form() and missing_message(), and form_hint;
- the tally: `several` says how an answer is stored, one option key (a JSON string) or a list
  of them; pipeline/tallies.py counts the answers counted() accepts (a little looser than
  check(): stored answers are counted as they are) and refuses any other;
- the score and the scorecard: maximum(), raise_entries(), practices(), gain();
- the results: `chart` (one of the kinds pipeline/charts.py draws: "bars" or "dots") and the
  words around it; demo_answer() for the demo data.

Adding a type is one subclass here, registered, plus its tests (CONTRIBUTING.md says which).
Pure: neither Flask nor a database (wtforms builds the form field, without a request, and is
imported only when a form is built).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np

    from .questions import Option, Question, Scoring


class AnswerError(ValueError):
    """An answer that does not fit its question; the message is what the respondent is told."""


@cache
def checkbox_field() -> type:
    """wtforms' multiple select drawn as a group of checkboxes (made on first use: wtforms is
    loaded only where a form is built, not by the CLI or the pipeline)."""
    from wtforms import SelectMultipleField
    from wtforms.widgets import CheckboxInput, ListWidget

    class CheckboxField(SelectMultipleField):  # type: ignore[misc]
        widget = ListWidget(prefix_label=False)
        option_widget = CheckboxInput()

    return CheckboxField


class QuestionType:
    """One type of question. Subclasses set the class attributes and implement the methods."""

    # The name a survey file gives the type (`type: single`).
    name: ClassVar[str] = ""
    # The type in a sentence ("single choice in wave 1, multi-select in wave 2").
    title: ClassVar[str] = ""
    # An answer may hold several options: stored as a JSON list of option keys, else as one key.
    # A question whose answer is always one option may group the results (segment) or be the
    # outcome; only one with several may have exclusive options or score "any" and "extra".
    several: ClassVar[bool] = False
    # How the results draw its shares: "bars" (they add up to 100%) or "dots" (they need not).
    chart: ClassVar[str] = "bars"
    # The mark of a clinic's own answer on the chart ("your answer"), in the table beside it,
    # the line under the question's heading, the table's caption; the note on the wave
    # comparison; the hint under the question on the form.
    chart_mark: ClassVar[str] = ""
    table_mark: ClassVar[str] = ""
    answers_note: ClassVar[str] = ""
    caption: ClassVar[str] = ""
    wave_note: ClassVar[str] = ""
    form_hint: ClassVar[str] = ""

    # -- parse
    def option_problem(self, option: Option) -> str | None:
        """What is wrong with an option in this type of question, or None."""
        if option.exclusive and not self.several:
            return f"option {option.key!r} is exclusive, but only multi-choice questions have exclusive options"
        return None

    def scoring_problem(self, field: str, value: Any) -> str | None:
        """What is wrong with a scoring rule's `field` (`any`, `extra`) holding `value` for this
        type of question, or None. Both count options chosen together: one-answer types have none."""
        if field in ("any", "extra") and value and not self.several:
            return f"'{field}' applies to multi-choice questions only"
        return None

    # -- an answer
    def check(self, q: Question, value: Any) -> Any:
        """The clean answer (never empty: that is checked before); AnswerError otherwise."""
        raise NotImplementedError

    def counted(self, q: Question, value: Any) -> tuple[str, ...]:
        """The options a stored answer counts for; AnswerError if it cannot be counted.

        Looser than check(): a stored answer is counted as it is (its order, an exclusive option
        beside others), but never one that names no option of the question or names one twice.
        """
        raise NotImplementedError

    def json_schema(self, q: Question) -> dict[str, Any]:
        raise NotImplementedError

    def example(self, q: Question) -> Any:
        """A valid answer: the first option that stands with others."""
        raise NotImplementedError

    # -- the form
    def form_field(self, q: Question, **options: Any) -> Any:
        """The form's (unbound) field for the question, with wtforms' `options` (its `name`); the
        views check its answers themselves."""
        from wtforms import RadioField, SelectChoice  # see checkbox_field

        choices = [SelectChoice(o.key, o.label) for o in q.options]
        field = checkbox_field() if self.several else RadioField
        # validate_choice is off: our own validator gives one message per question for every channel.
        return field(q.text, choices=choices, validate_choice=False, **options)

    def from_form(self, values: list[str]) -> tuple[Any, str | None]:
        """The raw answer from the form's values for the question, and a problem check() cannot see."""
        raise NotImplementedError

    def missing_message(self, q: Question) -> str:
        """What the form says when the question is left unanswered: the question is named, so the
        message reads on its own in the error summary and to a screen reader."""
        raise NotImplementedError

    # -- the score
    def maximum(self, q: Question, rule: Scoring) -> int:
        """The most points the rule can give."""
        raise NotImplementedError

    def raise_entries(
        self, q: Question, rule: Scoring, chosen: tuple[str, ...], have: int
    ) -> list[tuple[int, list[str], int]]:
        """What would raise a clinic's points on the question: (position, options, points gained);
        no options for a bonus no single option carries."""
        raise NotImplementedError

    def practices(self, q: Question, rule: Scoring) -> list[list[str]]:
        """The practices the rule recommends, each as the options that count as doing it."""
        raise NotImplementedError

    def gain(self, q: Question, rule: Scoring, option: str, chosen: tuple[str, ...], have: int) -> int:
        """The points choosing `option` would add to a clinic that chose `chosen` (scoring `have`)."""
        raise NotImplementedError

    # -- demo data
    def demo_answer(self, q: Question, options: tuple[Option, ...], thorough: float, rng: np.random.Generator) -> Any:
        """A made-up clinic's answer among `options` (listed from most to least thorough)."""
        raise NotImplementedError


class SingleChoice(QuestionType):
    """One option of several."""

    name = "single"
    title = "single choice"
    several = False
    chart = "bars"
    chart_mark = "your answer"
    table_mark = "your answer"
    answers_note = "One answer each."
    caption = "Share of clinics choosing each answer"

    def check(self, q: Question, value: Any) -> str:
        if not isinstance(value, str):
            raise AnswerError("must be one option key (a string)")
        if q.option(value) is None:
            raise AnswerError(f"unknown option {value!r}")
        return value

    def counted(self, q: Question, value: Any) -> tuple[str, ...]:
        return (self.check(q, value),)

    def json_schema(self, q: Question) -> dict[str, Any]:
        return {"type": "string", "enum": list(q.option_keys), "description": q.text}

    def example(self, q: Question) -> str:
        return q.options[0].key

    def from_form(self, values: list[str]) -> tuple[Any, str | None]:
        return (values[0] if values else None), ("choose only one option" if len(values) > 1 else None)

    def missing_message(self, q: Question) -> str:
        return f"Choose one answer to “{q.text}”"

    def maximum(self, q: Question, rule: Scoring) -> int:
        return max(dict(rule.points).values(), default=0) + rule.any

    def raise_entries(
        self, q: Question, rule: Scoring, chosen: tuple[str, ...], have: int
    ) -> list[tuple[int, list[str], int]]:
        """One entry: the best-scoring options together."""
        points = dict(rule.points)
        best = max(points.values(), default=0)
        return [(0, [o for o in q.option_keys if points.get(o, 0) == best], best - have)]

    def practices(self, q: Question, rule: Scoring) -> list[list[str]]:
        """The best-scoring answer(s), said as one practice."""
        points = dict(rule.points)
        best = max(points.values(), default=0)
        return [[o for o in q.option_keys if points.get(o, 0) == best]] if best else []

    def gain(self, q: Question, rule: Scoring, option: str, chosen: tuple[str, ...], have: int) -> int:
        return max(0, dict(rule.points).get(option, 0) - have)

    def demo_answer(self, q: Question, options: tuple[Option, ...], thorough: float, rng: np.random.Generator) -> str:
        # A caring clinic sits early in the list.
        position = rng.beta(1 + 4 * (1 - thorough), 1 + 4 * thorough) * len(options)
        return options[min(int(position), len(options) - 1)].key


class MultiChoice(QuestionType):
    """Several options, each once; an exclusive option ("None of these") stands alone."""

    name = "multi"
    title = "multi-select"
    several = True
    chart = "dots"
    chart_mark = "your clinic does this"
    table_mark = "you do this"
    answers_note = "Clinics could choose several answers, so the shares do not add up to 100%."
    caption = "Share of clinics doing each"
    wave_note = " Clinics could choose several answers."
    form_hint = "Choose all that apply."

    def check(self, q: Question, value: Any) -> list[str]:
        self._keys(q, value)
        exclusive = next((q.option(v).label for v in value if q.option(v).exclusive), None)  # type: ignore[union-attr]
        if len(value) > 1 and exclusive is not None:
            raise AnswerError(f"'{exclusive}' cannot be combined with other options")
        order = q.option_keys
        return sorted(value, key=order.index)

    def counted(self, q: Question, value: Any) -> tuple[str, ...]:
        if value == []:
            raise AnswerError("must hold at least one option key")
        return tuple(self._keys(q, value))

    @staticmethod
    def _keys(q: Question, value: Any) -> list[str]:
        """A list of distinct option keys of the question; AnswerError otherwise."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AnswerError("must be a list of option keys")
        unknown = [v for v in value if q.option(v) is None]
        if unknown:
            raise AnswerError(f"unknown option {unknown[0]!r}")
        if len(set(value)) != len(value):
            raise AnswerError("an option is repeated")
        return value

    def json_schema(self, q: Question) -> dict[str, Any]:
        exclusive = [o.key for o in q.options if o.exclusive]
        real = [o.key for o in q.options if not o.exclusive]
        several = {"type": "array", "items": {"type": "string", "enum": real}, "minItems": 1, "uniqueItems": True}
        if not exclusive:
            return several | {"description": q.text}
        # An exclusive option stands alone: say so in the schema itself.
        alone = {"type": "array", "items": {"type": "string", "enum": exclusive}, "minItems": 1, "maxItems": 1}
        note = f"An exclusive option ({', '.join(exclusive)}) stands alone."
        return {"oneOf": [several, alone], "description": f"{q.text} {note}"}

    def example(self, q: Question) -> list[str]:
        return [next((o.key for o in q.options if not o.exclusive), q.options[0].key)]

    def from_form(self, values: list[str]) -> tuple[Any, str | None]:
        return values, None

    def missing_message(self, q: Question) -> str:
        exclusive = next((o.label for o in q.options if o.exclusive), None)
        return f"Choose at least one answer to “{q.text}”" + (f", or “{exclusive}”" if exclusive else "")

    def maximum(self, q: Question, rule: Scoring) -> int:
        """Every option that is not exclusive, or the best exclusive option alone: an answer is one
        or the other, and every point is at least 0 (the loader's rule)."""
        table = dict(rule.points)
        real = [o.key for o in q.options if not o.exclusive]
        best = sum(table.get(k, 0) for k in real) + (rule.any if real else 0)
        if rule.extra_points and len(real) >= rule.extra_at_least:
            best += rule.extra_points
        alone = max((table.get(o.key, 0) for o in q.options if o.exclusive), default=0)
        return max(best, alone)

    def raise_entries(
        self, q: Question, rule: Scoring, chosen: tuple[str, ...], have: int
    ) -> list[tuple[int, list[str], int]]:
        """One entry per scored option not chosen, and the bonus of several if not reached."""
        real_options = {o.key for o in q.options if not o.exclusive}
        real = [o for o in chosen if o in real_options]
        out = []
        for position, o in enumerate(q.option_keys):
            if o in chosen or o not in real_options:
                continue
            gain = dict(rule.points).get(o, 0) + (rule.any if not real else 0)
            if gain:
                out.append((position, [o], gain))
        if rule.extra_points and len(real) < rule.extra_at_least:
            out.append((len(q.options), [], rule.extra_points))
        return out

    def practices(self, q: Question, rule: Scoring) -> list[list[str]]:
        """Every scored option, each a practice of its own."""
        return [[o] for o in rule.scored_options(q)]

    def gain(self, q: Question, rule: Scoring, option: str, chosen: tuple[str, ...], have: int) -> int:
        if option in chosen:
            return 0
        real_chosen = [o for o in chosen if (found := q.option(o)) is not None and not found.exclusive]
        return dict(rule.points).get(option, 0) + (rule.any if not real_chosen else 0)

    def demo_answer(
        self, q: Question, options: tuple[Option, ...], thorough: float, rng: np.random.Generator
    ) -> list[str]:
        real = [o.key for o in options if not o.exclusive]
        chosen = [k for k in real if rng.random() < thorough * 0.8]
        none = next((o.key for o in options if o.exclusive), None)
        return chosen or ([none] if none else [real[0]])


# Every question type, by the name a survey file gives it.
TYPES: dict[str, QuestionType] = {}


def register(kind: QuestionType) -> QuestionType:
    """Make a type usable in survey files under its name (once per name)."""
    if not kind.name or kind.name in TYPES:
        raise ValueError(f"a question type needs a name of its own, not {kind.name!r}")
    TYPES[kind.name] = kind
    return kind


def of(name: str) -> QuestionType:
    """The type registered under this name (KeyError for an unknown one: parsing refused it)."""
    return TYPES[name]


register(SingleChoice())
register(MultiChoice())
