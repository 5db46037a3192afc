"""The typed published figures (pipeline/figures.py): the JSON they give is exactly what was
published before they were typed, a stored body reads back into the same figures, the API's
models describe every field of the dump, and a renamed attribute is a type error, not a page."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from functools import cache
from pathlib import Path

import pytest
from mypy import api as mypy_api
from pydantic import BaseModel

from survey_app import api_models
from survey_app.pipeline import figures, publishing

from .published_golden import GOLDEN, ROOT, cases, counted

GOLDEN_BODIES = json.loads(GOLDEN.read_text(encoding="utf-8"))
CASES = {name: (survey, rows, rules, released) for name, survey, rows, rules, released in cases()}


@cache
def published(name: str) -> figures.Published:
    survey, rows, rules, released = CASES[name]
    return publishing.publish(survey, counted(survey, rows, 9), rules, released)


def test_the_golden_cases_are_all_here():
    assert set(GOLDEN_BODIES) == set(CASES)
    assert {json.loads(GOLDEN_BODIES[n]["published"])["published"] for n in CASES} == {True, False}
    # A merged segment group, an outcome and a participant's group are among them.
    bodies = [json.loads(GOLDEN_BODIES[n]["published"]) for n in CASES]
    assert any(len(g["members"]) > 1 for b in bodies for g in b["segment"]["groups"])
    assert any(b["outcome"] for b in bodies)
    assert any(json.loads(v)["group"] for n in CASES for v in GOLDEN_BODIES[n]["you"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_json_is_byte_for_byte_what_was_published_before(name):
    """The stored body and "you", as the untyped pipeline wrote them (tests/data/published-golden.json)."""
    survey, rows, _, _ = CASES[name]
    body = published(name)
    assert json.dumps(body.to_json(), separators=(",", ":")) == GOLDEN_BODIES[name]["published"]
    views = [json.dumps(publishing.you(survey, a, body).to_json(), separators=(",", ":")) for a in rows[:3]]
    assert views == GOLDEN_BODIES[name]["you"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_stored_body_reads_back_into_the_same_figures(name):
    survey, rows, _, _ = CASES[name]
    body = published(name)
    stored = json.dumps(body.to_json(), separators=(",", ":"))
    again = figures.Published.from_json(json.loads(stored))
    assert again == body
    assert json.dumps(again.to_json(), separators=(",", ":")) == stored
    # "you" from the stored body is "you" from the body as published.
    assert [publishing.you(survey, a, again) for a in rows[:3]] == [publishing.you(survey, a, body) for a in rows[:3]]


def test_a_body_from_before_enough_and_disclosure_still_reads():
    """Shape 1 bodies lacked "enough" (a question with shares was published) and may lack
    "disclosure"; they are read as they meant until program.start publishes them again."""
    old = published("aftercare-shipped").to_json()
    del old["disclosure"]
    for q in old["questions"]:
        del q["enough"]
    body = figures.Published.from_json(old)
    assert body.disclosure is None and "disclosure" not in body.to_json()
    assert [q.enough for q in body.questions] == [bool(q["options"]) for q in old["questions"]]


def test_the_figures_are_frozen():
    body = published("comfort-exact")
    with pytest.raises(dataclasses.FrozenInstanceError):
        body.responses = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        body.questions[0].options[0].count = 0  # type: ignore[misc]


# The API's models (api_models.py) beside the figures they describe.
MODELS = {
    figures.Published: api_models.Benchmark,
    figures.SurveyRef: api_models.SurveyRef,
    figures.Rules: api_models.Rules,
    figures.Perturbation: api_models.Disclosure,
    figures.Change: api_models.Change,
    figures.Segment: api_models.Segment,
    figures.SegmentGroup: api_models.SegmentGroup,
    figures.QuestionFigures: api_models.BenchmarkQuestion,
    figures.Cell: api_models.Cell,
    figures.SegmentCells: api_models.SegmentCells,
    figures.IndexFigures: api_models.IndexFigures,
    figures.Bin: api_models.Bin,
    figures.Outcome: api_models.Outcome,
    figures.OutcomeOption: api_models.OutcomeOption,
    figures.You: api_models.You,
    figures.Raise: api_models.Raise,
    figures.YourGroup: api_models.Group,
    figures.GroupQuestion: api_models.GroupQuestion,
}


@pytest.mark.parametrize("figure, model", MODELS.items(), ids=[f.__name__ for f in MODELS])
def test_each_figure_has_the_fields_its_api_model_describes(figure, model):
    """JSON names: a field named after a Python keyword ("from_", "raise_") is its alias."""
    described = {f.alias or name for name, f in model.model_fields.items()}
    if model is api_models.Benchmark:
        described.discard("you")  # beside the body, only with a results key
    assert {f.name.rstrip("_") for f in dataclasses.fields(figure)} == described


def _undescribed(model: BaseModel, path: str = "") -> list[str]:
    """Fields an Open model took in without describing them, anywhere in the tree."""
    out = [f"{path}.{k}" for k in model.model_extra or {}]
    for name in type(model).model_fields:
        value = getattr(model, name)
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, BaseModel):
                out += _undescribed(item, f"{path}.{name}[{i}]")
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_dump_is_what_the_api_models_describe(name):
    """The API's JSON is the figures' dump: the models read it, describe every field of it and
    write it back unchanged."""
    survey, rows, _, _ = CASES[name]
    body = published(name)
    for answers in rows[:3]:
        dump = json.loads(json.dumps(body.to_json() | {"you": publishing.you(survey, answers, body).to_json()}))
        model = api_models.Benchmark.model_validate(dump)
        assert _undescribed(model) == []
        assert model.model_dump(mode="json", by_alias=True, exclude_unset=True) == dump


def test_a_renamed_attribute_is_a_type_error_before_any_page(tmp_path):
    """mypy (as .ci/run runs it, pyproject.toml) reads the figures' readers: a misspelt field of
    a published figure fails there, in the pipeline and in presentation alike."""
    config = str(ROOT / "pyproject.toml")
    reader = tmp_path / "reader.py"
    reader.write_text(
        textwrap.dedent(
            """
            from survey_app.pipeline.figures import Published, You

            def shares(published: Published, you: You) -> list[int]:
                return [c.percnt for q in published.questions for c in q.options] + [you.raise_[0].points]
            """
        )
    )
    out, _, status = mypy_api.run(["--config-file", config, str(reader)])
    assert status == 1 and '"Cell" has no attribute "percnt"' in out, out
    reader.write_text(reader.read_text().replace("percnt", "percent"))
    out, _, status = mypy_api.run(["--config-file", config, str(reader)])
    assert status == 0, out
    # And the project's own readers are in mypy's files.
    files = set(_mypy_files(config))
    assert {
        "survey_app/pipeline",
        "survey_app/presentation.py",
        "survey_app/exports.py",
        "survey_app/report.py",
    } <= files


def _mypy_files(config: str) -> list[str]:
    import tomllib

    return tomllib.loads(Path(config).read_text(encoding="utf-8"))["tool"]["mypy"]["files"]
