"""questions.yaml loading and answer validation."""

from __future__ import annotations

import itertools
import os
import re
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from survey_app.questions import (
    TEXT_MAX,
    SurveyError,
    _LineLoader,
    as_tuple,
    load_survey,
    parse_survey,
    validate_answers,
)

from .helpers import FULL_ANSWERS, ROOT, fuzz_examples

DATA = Path(__file__).parent / "data"


def test_first_survey_matches_product(survey):
    assert survey.id == "pulse-aftercare"
    assert survey.keys == (
        "practice_type",
        "discharge_checks",
        "first_followup",
        "mood_tracking",
        "integration_support",
        "digital_tools",
        "after_hours",
        "followup_completion",
    )
    assert [q.type for q in survey.questions] == [
        "single",
        "multi",
        "single",
        "single",
        "multi",
        "multi",
        "single",
        "single",
    ]
    assert survey.segment == "practice_type" and survey.outcome == "followup_completion"
    assert survey.segment_label == "practice type"
    exclusive = {(q.key, o.key) for q in survey.questions for o in q.options if o.exclusive}
    assert exclusive == {("discharge_checks", "none"), ("integration_support", "none"), ("digital_tools", "none")}
    assert survey.question("first_followup").option_keys == (
        "within_24h",
        "within_48h",
        "within_72h",
        "within_week",
        "next_session",
        "no_followup",
    )


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({}, 100),
        (
            {
                "discharge_checks": ["none"],
                "first_followup": "no_followup",
                "mood_tracking": "never",
                "integration_support": ["none"],
                "digital_tools": ["none"],
                "after_hours": "no_pathway",
            },
            0,
        ),
        ({"discharge_checks": ["vitals"]}, 93),
        ({"first_followup": "within_72h"}, 90),
        ({"mood_tracking": "series_bounds"}, 90),
        ({"integration_support": ["peer_community"]}, 95),
        ({"integration_support": ["none"]}, 80),
        ({"digital_tools": ["none"]}, 90),
        ({"after_hours": "crisis_line"}, 85),
        ({"followup_completion": "not_tracked"}, 100),  # the outcome is not scored
    ],
)
def test_index_points(survey, changes, expected):
    assert survey.index_of(FULL_ANSWERS | changes) == expected


@pytest.mark.parametrize(
    "name, fragments",
    [
        ("bad_type.yaml", ["line 13", "question 'b'", "unknown type 'ranking'"]),
        ("duplicate_question.yaml", ["line 12", "question 'a'", "duplicate question key"]),
        ("missing_options.yaml", ["question 'b'", "'options' must list at least two options"]),
        ("exclusive_in_single.yaml", ["question 'a'", "option 'y' is exclusive"]),
        ("unknown_option_points.yaml", ["index scoring for 'a'", "points for unknown option 'z'"]),
        ("bad_yaml.yaml", ["line", "invalid YAML"]),
        ("duplicate_option.yaml", ["question 'a'", "duplicate option key 'x'"]),
        ("duplicate_yaml_key.yaml", ["line 4", "duplicate key 'title'"]),
        ("points_not_100.yaml", ["can reach 90", "exactly 100"]),
        ("unknown_segment.yaml", ["segment question 'zz'"]),
    ],
)
def test_broken_files_name_file_line_and_problem(name, fragments):
    with pytest.raises(SurveyError) as info:
        load_survey(DATA / name)
    message = str(info.value)
    assert str(DATA / name) in message
    for fragment in fragments:
        assert fragment in message, message


def test_small_good_file_loads():
    assert load_survey(DATA / "good_small.yaml").keys == ("a", "b")


def _variant(tmp_path, old: str, new: str) -> Path:
    """questions.yaml with one piece of text replaced, as a file of its own."""
    text = (ROOT / "questions.yaml").read_text()
    assert old in text
    path = tmp_path / "variant.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    "line, label",
    [
        ("", "practice type"),  # left out: the segment key, with spaces for underscores
        ("segment_label: kind of practice", "kind of practice"),
        ("segment_label: '  clinic size '", "clinic size"),
    ],
)
def test_segment_label(tmp_path, line, label):
    path = _variant(tmp_path, "segment_label: practice type", line)
    assert load_survey(path).segment_label == label


@pytest.mark.parametrize("value", ["''", "'   '", "3", "true", "[a, b]", "{a: b}", "null"])
def test_segment_label_must_be_text(tmp_path, value):
    path = _variant(tmp_path, "segment_label: practice type", f"segment_label: {value}")
    if value == "null":  # YAML null is "not given": the default
        assert load_survey(path).segment_label == "practice type"
        return
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    assert f"{path}, line 20: survey: 'segment_label' must be non-empty text" == str(info.value)


def test_duplicate_key_inside_a_list_item_is_refused(tmp_path):
    # Items of a list are built after the mapping that holds the list: still checked.
    path = _variant(tmp_path, "    text: When does the first", "    type: single\n    text: When does the first")
    lines = path.read_text().splitlines()
    again = lines.index("  - key: first_followup") + 3  # 1-based: the added line, after key and type
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    assert f"line {again}: invalid YAML: duplicate key 'type' (first on line {again - 1})" in str(info.value)


def test_list_as_key_is_a_survey_error(tmp_path):
    path = _variant(tmp_path, "invite_only: false", "? [a, b]\n: x")
    with pytest.raises(SurveyError, match="line 15: invalid YAML: found unhashable key"):
        load_survey(path)


@pytest.mark.parametrize("deep", [False, True])
def test_loader_builds_lists_as_deep_as_asked(deep):
    # PyYAML's contract: deep=False leaves nested lists to be filled at the end of the document.
    loader = _LineLoader("a: [1, 2]\nb: {c: [3]}\n")
    try:
        mapping = loader.construct_mapping(loader.get_single_node(), deep=deep)
        assert mapping == ({"a": [1, 2], "b": {"c": [3]}} if deep else {"a": [], "b": {"c": []}})
        assert mapping.line == 1
    finally:
        loader.dispose()


SMALL = (DATA / "good_small.yaml").read_bytes()


@pytest.mark.parametrize(
    "data, line, problem",
    [
        (b"\0" * 64, 1, "unacceptable character #x0000: control characters are not allowed"),
        (b"\x7fELF\x02\x01\x01" + b"\0" * 57, 1, "unacceptable character #x007f: control characters are not allowed"),
        (
            SMALL.replace(b"intro: i", b"intro: \xc3\xa9\x01"),
            4,
            "unacceptable character #x0001",
        ),  # after a 2-byte letter
        (SMALL.replace(b"title: T", b"title: T\n\tx: 1"), 4, "found a tab character that violates indentation"),
        (SMALL.replace(b"title: T", b'title: "\\q"'), 3, "found unknown escape character"),
        (SMALL + b"---\nid: u\n", 20, "but found another document"),
        (b"a: [1\n", 2, "did not find expected ',' or ']'"),
    ],
    ids=["NUL bytes", "ELF", "control character", "tab", "escape", "two documents", "unclosed list"],
)
def test_every_yaml_error_is_one_line_naming_file_and_line(tmp_path, data, line, problem):
    path = tmp_path / "survey.yaml"
    path.write_bytes(data)
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}, line {line}: invalid YAML: "), message
    assert problem in message and info.value.line == line


def test_a_file_larger_than_the_editor_takes_is_refused_unread(tmp_path):
    path = tmp_path / "survey.yaml"
    path.write_bytes(SMALL + b"#" * (TEXT_MAX - len(SMALL) - 1) + b"\n")
    assert load_survey(path).id == "t"  # exactly TEXT_MAX bytes
    path.write_bytes(SMALL + b"#" * (TEXT_MAX - len(SMALL)) + b"\n")
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    assert (
        str(info.value)
        == f"{path}: not a survey file: it is larger than 64 KB (the surveys Pulse ships are about 11 KB)"
    )


@pytest.mark.parametrize("where", ["/dev/zero", "a folder"])
def test_a_folder_or_a_device_is_refused_unread(tmp_path, where):
    # /dev/zero never ends: reading it would fill the memory.
    path = tmp_path if where == "a folder" else Path(where)
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    assert str(info.value) == f"{path}: not a survey file: a folder, a device or a pipe, not a file"


def test_a_pipe_is_refused_unopened(tmp_path):
    pipe = tmp_path / "survey.yaml"
    os.mkfifo(pipe)
    # A writer waits with a valid survey: a loader that opened the pipe would take it (with no
    # writer it would wait for ever). Refused, the pipe is never opened for reading.
    writer = threading.Thread(target=pipe.write_bytes, args=(SMALL,))
    writer.start()
    try:
        with pytest.raises(SurveyError, match="not a survey file: a folder, a device or a pipe"):
            load_survey(pipe)
    finally:
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # the writer's open() returns
        writer.join()
        os.close(reader)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SurveyError, match="nowhere.yaml: cannot read"):
        load_survey(tmp_path / "nowhere.yaml")


def test_env_names_another_file(monkeypatch):
    monkeypatch.setenv("PULSE_QUESTIONS", str(DATA / "good_small.yaml"))
    assert load_survey().id == "t"


def test_packaged_copy_is_the_root_file():
    packaged = ROOT / "survey_app" / "questions.yaml"
    assert packaged.read_text() == (ROOT / "questions.yaml").read_text()


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"practice_type": None}, "practice_type", "required"),
        ({"practice_type": "nope"}, "practice_type", "unknown option"),
        ({"practice_type": ["psychiatry"]}, "practice_type", "one option key"),
        ({"discharge_checks": "vitals"}, "discharge_checks", "list of option keys"),
        ({"discharge_checks": []}, "discharge_checks", "required"),
        ({"discharge_checks": ["vitals", "vitals"]}, "discharge_checks", "repeated"),
        ({"discharge_checks": ["vitals", "none"]}, "discharge_checks", "cannot be combined"),
        ({"discharge_checks": ["vitals", 3]}, "discharge_checks", "list of option keys"),
        ({"first_followup": 24}, "first_followup", "one option key"),
        ({"extra_question": "x"}, "extra_question", "unknown question"),
    ],
)
def test_bad_answers_name_the_field(survey, changes, field, message):
    answers = {k: v for k, v in (FULL_ANSWERS | changes).items() if v is not None}
    clean, errors = validate_answers(survey, answers)
    assert clean == {}
    assert message in errors[field]


def test_valid_answers_are_normalised(survey):
    clean, errors = validate_answers(survey, FULL_ANSWERS | {"discharge_checks": ["emotional_checkin", "vitals"]})
    assert errors == {}
    assert clean["discharge_checks"] == ["vitals", "emotional_checkin"]


def test_not_an_object(survey):
    assert validate_answers(survey, ["x"]) == (
        {},
        {"answers": "must be an object mapping question keys to option keys"},
    )


@pytest.mark.parametrize(
    "line, problem",
    [
        ("id: pulse/aftercare", "'id' must be 1 to 100 letters, digits, '-' or '_'"),
        ("id: pulse aftercare", "'id' must be 1 to 100 letters, digits, '-' or '_'"),
        ("id: " + "x" * 101, "'id' must be 1 to 100 letters, digits, '-' or '_'"),
        ("version: 2147483648", "'version' must be a whole number from 1 to 2147483647"),
        ("version: 0", "'version' must be a whole number from 1 to 2147483647"),
    ],
)
def test_id_and_version_fit_a_web_address_and_every_database(tmp_path, line, problem):
    """Surveys are stored and addressed by id and version (/results/<id>/<version>)."""
    key = "id: pulse-aftercare" if line.startswith("id") else "version: 1"
    with pytest.raises(SurveyError, match=re.escape(problem)):
        load_survey(_variant(tmp_path, key, line))


def test_title_fits_the_surveys_table(tmp_path):
    with pytest.raises(SurveyError, match="'title' must be at most 200 characters"):
        load_survey(_variant(tmp_path, "title: The Pulse of Clinical Aftercare", "title: " + "T" * 201))


def test_every_scored_option_of_the_shipped_surveys_has_an_action_and_a_reason():
    for path in (ROOT / "questions.yaml", ROOT / "surveys" / "patient-comfort.yaml"):
        survey = load_survey(path)
        for qkey, okey in survey.scored_options():
            option = survey.question(qkey).option(okey)
            assert 0 < len(option.action) <= 80, (path.name, qkey, okey)
            assert option.why.endswith(".") and len(option.why) > 40, (path.name, qkey, okey)
        # Unscored options (the segment, the outcome, "none") carry none.
        scored = set(survey.scored_options())
        assert not [
            (q.key, o.key)
            for q in survey.questions
            for o in q.options
            if (q.key, o.key) not in scored and (o.action or o.why)
        ]


def test_an_action_and_a_reason_are_read_from_the_option(survey):
    vitals = survey.question("discharge_checks").option("vitals")
    assert vitals.action == "Re-check blood pressure and heart rate before each patient leaves"
    assert vitals.why.startswith("Ketamine can raise blood pressure") and "\n" not in vitals.why


VITALS_ACTION = "        action: Re-check blood pressure and heart rate before each patient leaves"


@pytest.mark.parametrize(
    "new, fragments",
    [
        (
            "        action: " + "A" * 81,
            ["option 'vitals'", "'action' must be one line of at most 80 characters", "it has 81"],
        ),
        ("        action: ''", ["option 'vitals'", "'action' must be non-empty text"]),
        ("        action: [a, b]", ["option 'vitals'", "'action' must be non-empty text"]),
    ],
)
def test_a_bad_action_names_file_line_question_and_option(tmp_path, new, fragments):
    path = _variant(tmp_path, VITALS_ACTION, new)
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    message = str(info.value)
    assert str(path) in message and re.search(r"line \d+", message) and "question 'discharge_checks'" in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_long_reason_is_refused(tmp_path):
    path = _variant(tmp_path, "          Ketamine can raise", "          " + "Long. " * 60 + "Ketamine can raise")
    with pytest.raises(SurveyError, match=r"option 'vitals': 'why' must be at most 320 characters"):
        load_survey(path)


def test_an_action_on_an_unscored_option_is_refused(tmp_path):
    path = _variant(
        tmp_path,
        "{key: ride_home, label: Confirm a safe ride home}",
        "{key: ride_home, label: Confirm a safe ride home, action: Confirm a ride}",
    )
    with pytest.raises(
        SurveyError,
        match=r"line \d+: question 'discharge_checks': option 'ride_home' has "
        r"'action' or 'why' but carries no index points",
    ):
        load_survey(path)


@pytest.mark.parametrize(
    "old, new, marker, problem",
    [
        ("version: 1", "version: two", "version: two", "survey: 'version' must be a whole number"),
        (
            "invite_only: false",
            "invite_only: sometimes",
            "invite_only: sometimes",
            "'invite_only' must be true or false",
        ),
        ("outcome: followup_completion", "outcome: nowhere", "outcome: nowhere", "outcome question 'nowhere'"),
        (
            "segment: practice_type",
            "segment: discharge_checks",
            "segment: discharge_checks",
            "the segment question must be single-choice",
        ),
        (
            "  - key: first_followup\n    type: single",
            "  - key: first_followup\n    type: ranking",
            "    type: ranking",
            "question 'first_followup': unknown type 'ranking'",
        ),
        (
            "    text: Which best describes your practice?",
            "    text: ''",
            "    text: ''",
            "question 'practice_type': 'text' must be non-empty text",
        ),
        (
            VITALS_ACTION,
            VITALS_ACTION + "\n        exclusive: maybe",
            "        exclusive: maybe",
            "option 'vitals': 'exclusive' must be true or false",
        ),
        (
            "  - key: practice_type\n",
            "  - just a sentence\n  - key: practice_type\n",
            "  - just a sentence",
            "question 1: must be a mapping",
        ),
        (
            "    digital_tools: {any: 10}",
            "    digital_tool: {any: 10}",
            "    digital_tool: {any: 10}",
            "not a question",
        ),
        ("{points: {vitals: 8,", "{points: {vitals: 9,", "  scoring:", "the points can reach 101"),
    ],
    ids=[
        "version",
        "invite_only",
        "outcome",
        "segment",
        "type",
        "text",
        "exclusive",
        "a question that is not a mapping",
        "scoring of an unknown question",
        "points that do not add up",
    ],
)
def test_a_problem_names_the_line_of_its_own_field(tmp_path, old, new, marker, problem):
    """The line the message and the editor show is the field's, not its mapping's first line."""
    path = _variant(tmp_path, old, new)
    line = path.read_text().splitlines().index(marker) + 1
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line {line}: ") and info.value.line == line, message
    assert problem in message, message


@pytest.mark.parametrize(
    "old, new, line, where, code",
    [
        # YAML escapes in double quotes make any character; the ones YAML takes as they are too.
        ("title: The Pulse of Clinical Aftercare", r'title: "Comfort \x0b \e title"', 4, "survey: 'title'", "U+000B"),
        ("title: The Pulse of Clinical Aftercare", r'title: "Comfort \e title"', 4, "survey: 'title'", "U+001B"),
        ("  An anonymous, 8-question", "  An anonymous\u202e, 8-question", 5, "survey: 'intro'", "U+202E"),
        ("  Nothing you give us", "  Nothing\u2066 you give us", 9, "survey: 'privacy'", "U+2066"),
        ("segment_label: practice type", r'segment_label: "practice\x85type"', 20, "survey: 'segment_label'", "U+0085"),
        (
            "    text: Which best describes your practice?",
            r'    text: "Which best describes\x7f your practice?"',
            30,
            "question 'practice_type': 'text'",
            "U+007F",
        ),
        (
            "label: Dedicated ketamine or psychedelic-assisted therapy clinic}",
            r'label: "Dedicated \uFFFE clinic"}',
            32,
            "question 'practice_type', option 'dedicated_clinic': 'label'",
            "U+FFFE",
        ),
        (
            "label: Other}",
            r'label: "Other \uFFFF"}',
            37,
            "question 'practice_type', option 'other': 'label'",
            "U+FFFF",
        ),
        (VITALS_ACTION, r'        action: "Re-check \r blood pressure"', 45, "option 'vitals': 'action'", "U+000D"),
        ("          Ketamine can raise", "          Ketamine\u202d can raise", 46, "option 'vitals': 'why'", "U+202D"),
        (
            "    The aftercare index describes",
            "    The aftercare index\u2069 describes",
            223,
            "index: 'note'",
            "U+2069",
        ),
        ("index:\n  note:", 'index:\n  name: "comfort\\x9bindex"\n  note:', 223, "index: 'name'", "U+009B"),
    ],
    ids=[
        "title VT",
        "title ESC",
        "intro RLO",
        "privacy LRI",
        "segment_label NEL",
        "text DEL",
        "label U+FFFE",
        "label U+FFFF",
        "action CR",
        "why LRO",
        "index note PDI",
        "index name CSI",
    ],
)
def test_a_control_or_direction_character_in_any_text_is_refused(tmp_path, old, new, line, where, code):
    """Survey texts reach HTML, CSV, the report and the Atom feed (XML 1.0 cannot carry C0 controls
    or U+FFFE/U+FFFF), and a direction control makes a text read otherwise than it is stored."""
    path = _variant(tmp_path, old, new)
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line {line}: ") and info.value.line == line, message
    assert f"{where} contains the character {code}" in message and "\n" not in message, message


def test_line_breaks_and_tabs_are_plain_text(tmp_path):
    path = _variant(tmp_path, "title: The Pulse of Clinical Aftercare", r'title: "The Pulse\tof aftercare\nand more"')
    assert load_survey(path).title == "The Pulse\tof aftercare\nand more"


# ---------------------------------------------------------------------------- index scoring

INTEGRATION = "    integration_support: {any: 15, extra: {at_least: 2, points: 5}}"


@pytest.mark.parametrize(
    "new, problem",
    [
        # Not a whole number: these reached int() unchecked (a ValueError and a traceback, a 500 in
        # the editor) or were silently made one (2.9 counted as 2, "5" as 5, true as 1).
        ("{any: 15, extra: {at_least: two, points: 5}}", "'at_least' in 'extra' must be a whole number"),
        ("{any: 15, extra: {at_least: [2], points: 5}}", "'at_least' in 'extra' must be a whole number"),
        ("{any: 15, extra: {at_least: 2.9, points: 5}}", "'at_least' in 'extra' must be a whole number"),
        ("{any: 15, extra: {at_least: true, points: 5}}", "'at_least' in 'extra' must be a whole number"),
        ("{any: 15, extra: {at_least: 2, points: '5'}}", "'points' in 'extra' must be a whole number"),
        ("{any: 15, extra: {at_least: 2, points: 5.0}}", "'points' in 'extra' must be a whole number"),
        ("{any: 15, extra: {at_least: 2, points: true}}", "'points' in 'extra' must be a whole number"),
        ("{any: 15, extra: {at_least: 2, points: null}}", "'points' in 'extra' must be a whole number"),
        # Out of range: negative points lower the index below 0 or let other points past 100; an
        # `at_least` of 0 or 1 is `any`, one above the options can never be reached.
        ("{any: 25, extra: {at_least: 2, points: -5}}", "'points' in 'extra' must be a whole number of at least 1"),
        ("{any: 20, extra: {at_least: 2, points: 0}}", "'points' in 'extra' must be a whole number of at least 1"),
        ("{any: 15, extra: {at_least: 0, points: 5}}", "'at_least' in 'extra' must be a whole number from 2 to 5"),
        ("{any: 15, extra: {at_least: 1, points: 5}}", "'any' gives points for choosing at least one"),
        ("{any: 15, extra: {at_least: 6, points: 5}}", "from 2 to 5 (the question's options that are not exclusive)"),
        ("{any: 20, extra: {}}", "'extra' must hold 'at_least' and 'points'"),
    ],
)
def test_a_bad_extra_is_refused_with_its_line(tmp_path, new, problem):
    path = _variant(tmp_path, INTEGRATION, f"    integration_support: {new}")
    line = path.read_text().splitlines().index(f"    integration_support: {new}") + 1
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line {line}: index scoring for 'integration_support': "), message
    assert problem in message and info.value.line == line, message


def test_extra_on_a_single_choice_question_is_refused(tmp_path):
    # It was ignored by the maximum, yet counted by the score of an answer when `at_least` was 1.
    path = _variant(
        tmp_path,
        "{points: {within_24h: 20, within_48h: 20, within_72h: 10}}",
        "{points: {within_24h: 20, within_48h: 20, within_72h: 10}, extra: {at_least: 1, points: 5}}",
    )
    with pytest.raises(SurveyError, match=r"index scoring for 'first_followup': 'extra' applies to multi-choice"):
        load_survey(path)


def test_points_on_an_exclusive_option_count_towards_the_maximum(tmp_path):
    # "None of these" alone scoring 20 where the others together score 15: the index could reach 105.
    path = _variant(
        tmp_path, "{points: {vitals: 8, emotional_checkin: 7}}", "{points: {vitals: 8, emotional_checkin: 7, none: 20}}"
    )
    with pytest.raises(SurveyError, match="the points can reach 105; they must reach exactly 100"):
        load_survey(path)


def test_the_audits_survey_that_scored_120_is_refused():
    # Check said its index reached 100 while a clinic choosing only quiet_room scored 120.
    example = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "writing-a-survey.md").read_text(), re.S).group(1)
    rule = "    recovery_space: {points: {quiet_room: 60}, any: 20, extra: {at_least: 2, points: 20}}"
    bad = "    recovery_space: {points: {quiet_room: 120}, extra: {at_least: 2, points: -20}}"
    assert rule in example
    broken = example.replace(rule, bad)
    with pytest.raises(SurveyError) as info:
        parse_survey(broken, "the text")
    assert str(info.value) == (
        f"the text, line {broken.splitlines().index(bad) + 1}: index scoring for 'recovery_space': "
        "'points' in 'extra' must be a whole number of at least 1, not -20"
    )


def test_at_least_of_a_question_with_two_options_that_count_must_be_2():
    example = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "writing-a-survey.md").read_text(), re.S).group(1)
    broken = example.replace("extra: {at_least: 2, points: 20}", "extra: {at_least: 3, points: 20}")
    with pytest.raises(SurveyError) as info:
        parse_survey(broken, "the text")
    assert str(info.value).endswith(
        "index scoring for 'recovery_space': 'at_least' in 'extra' must be 2 (the question's options that are not "
        "exclusive), not 3"
    )


# Mostly whole numbers in range, so that many drawn rules are valid; the rest out of range or
# not whole numbers at all.
RULE_VALUES = st.one_of(
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 3),
    st.integers(-3, -1),
    st.floats(-2, 5, allow_nan=False),
    st.sampled_from(["two", "5", "", None, True, False, [2], {"a": 1}]),
)


@st.composite
def scored_questions(draw):
    """A question (single or multi, some options exclusive) and a scoring rule for it, made of any
    values a file may hold: whole numbers in and out of range, decimals, text, lists, nothing."""
    multi = draw(st.sampled_from([True, True, False]))
    n = draw(st.integers(2, 5))
    options = [f"o{i}" for i in range(n)]
    exclusive = set(draw(st.sets(st.sampled_from(options), max_size=2))) if multi else set()
    rule: dict = {}
    if draw(st.booleans()):
        rule["points"] = draw(st.dictionaries(st.sampled_from(options), RULE_VALUES, max_size=n))
    if draw(st.booleans()):
        rule["any"] = draw(RULE_VALUES)
    if draw(st.booleans()):
        near = st.one_of(st.integers(2, n), st.integers(2, n), st.integers(0, n + 1), RULE_VALUES)
        rule["extra"] = {"at_least": draw(near), "points": draw(near)}
    return multi, options, exclusive, rule or {"points": {}}


def _scored_survey(multi, options, exclusive, rule, filler: int) -> str:
    """A survey of the drawn question, a segment and a single-choice question whose option `a`
    scores `filler` points (to bring the most the index can give to 100)."""
    question = {
        "key": "q",
        "type": "multi" if multi else "single",
        "text": "Q?",
        "options": [{"key": o, "label": o} | ({"exclusive": True} if o in exclusive else {}) for o in options],
    }
    single = {"type": "single", "text": "S?", "options": [{"key": "a", "label": "A"}, {"key": "b", "label": "B"}]}
    data = {
        "id": "t",
        "version": 1,
        "title": "T",
        "intro": "i",
        "privacy": "p",
        "segment": "s",
        "questions": [{"key": "s", **single}, question, {"key": "f", **single}],
        "index": {"note": "n", "scoring": {"q": rule, "f": {"points": {"a": filler}}}},
    }
    return yaml.safe_dump(data, sort_keys=False)


def _answers(multi: bool, options: list[str]):
    """Every answer a participant could give to the drawn question (the loader's own check decides)."""
    if not multi:
        return [(o,) for o in options]
    return [combo for n in range(1, len(options) + 1) for combo in itertools.combinations(options, n)]


@settings(max_examples=fuzz_examples("PULSE_FUZZ_EXAMPLES", ci=300, local=100), deadline=None)
@given(scored_questions())
def test_no_answer_scores_above_the_maximum_and_the_best_reach_exactly_100(drawn):
    multi, options, exclusive, rule = drawn
    try:
        parse_survey(_scored_survey(multi, options, exclusive, rule, 0), "drawn.yaml")
        reach = 100
    except SurveyError as exc:
        # Refused (with a line); when only the total is wrong, the filler makes it 100.
        assert re.match(r"drawn\.yaml, line \d+: ", str(exc)), exc
        found = re.search(r"the points can reach (\d+); they must reach exactly 100", str(exc))
        if found is None or int(found.group(1)) > 100:
            return
        reach = int(found.group(1))
    survey = parse_survey(_scored_survey(multi, options, exclusive, rule, 100 - reach), "drawn.yaml")
    q = survey.question("q")
    scores = []
    for chosen in _answers(multi, options):
        value = list(chosen) if multi else chosen[0]
        clean, errors = validate_answers(survey, {"s": "a", "q": value, "f": "a"})
        if errors:
            continue
        rule_q = next(r for r in survey.scoring if r.question == "q")
        points = survey.index_of(clean)
        assert 0 <= points <= 100, (chosen, points)
        assert rule_q.score(as_tuple(clean["q"]), frozenset(o.key for o in q.options if not o.exclusive)) <= (
            rule_q.maximum(q)
        )
        scores.append(points)
    assert max(scores) == 100


def test_a_stored_survey_is_read_under_the_rules_it_was_stored_under(caplog):
    # Stored when 2.9 was taken for 2 and `extra` on a single-choice question was ignored: its
    # responses and snapshots hang on it, so it is read as it was (and the log says why), while
    # the same text as a new survey is refused.
    text = (
        (ROOT / "questions.yaml")
        .read_text()
        .replace(INTEGRATION, "    integration_support: {any: 15, extra: {at_least: 2.9, points: 5}}")
        .replace(
            "{points: {within_24h: 20, within_48h: 20, within_72h: 10}}",
            "{points: {within_24h: 20, within_48h: 20, within_72h: 10}, extra: {at_least: 2, points: 5}}",
        )
    )
    with pytest.raises(SurveyError, match="'first_followup': 'extra' applies to multi-choice questions only"):
        parse_survey(text, "new.yaml")
    with pytest.raises(SurveyError, match="'at_least' in 'extra' must be a whole number from 2 to 5"):
        parse_survey(text.replace(", extra: {at_least: 2, points: 5}}", "}"), "new.yaml")
    with caplog.at_level("WARNING", logger="survey_app.questions"):
        survey = parse_survey(text, "stored survey pulse-aftercare@7", stored=True)
    rule = next(r for r in survey.scoring if r.question == "integration_support")
    assert (rule.extra_at_least, rule.extra_points) == (2, 5)
    assert survey.index_of(FULL_ANSWERS) == 100
    assert "stored survey pulse-aftercare@7, line 228: index scoring for 'first_followup'" in caplog.text
    assert "it is read as it was stored" in caplog.text
    # What was always refused still is.
    with pytest.raises(SurveyError, match="'extra' must hold whole numbers"):
        parse_survey(text.replace("at_least: 2.9", "at_least: two"), "stored survey pulse-aftercare@8", stored=True)


# ---------------------------------------------------------------------------- unknown fields


@pytest.mark.parametrize(
    "old, new, marker, message",
    [
        # Each of these was dropped without a word: a public survey, a "None" that combines, a
        # survey Check called valid.
        (
            "invite_only: false",
            "invite_onyl: true",
            "invite_onyl: true",
            "survey: unknown field 'invite_onyl' (did you mean 'invite_only'?)",
        ),
        (
            "title: The Pulse",
            "titel: Pulse\ntitle: The Pulse",
            "titel: Pulse",
            "survey: unknown field 'titel' (did you mean 'title'?)",
        ),
        (
            "segment: practice_type",
            "segmnet: practice_type",
            "segmnet: practice_type",
            "survey: unknown field 'segmnet' (did you mean 'segment'?)",
        ),
        ("\nindex:", "\nindx:", "indx:", "survey: unknown field 'indx' (did you mean 'index'?)"),
        (
            "invite_only: false",
            "invite_only: false\ncolour: blue",
            "colour: blue",
            "survey: unknown field 'colour' (a survey has: id, version, title, intro, privacy, invite_only, "
            "segment, segment_label, outcome, questions, index)",
        ),
        (
            "invite_only: false",
            "invite_only: false\n7: seven",
            "7: seven",
            "survey: unknown field 7 (a survey has: id, version, title, intro, privacy, invite_only, segment, "
            "segment_label, outcome, questions, index)",
        ),
        (
            "    text: Which best describes your practice?",
            "    txt: Which best describes your practice?",
            "    txt: Which best describes your practice?",
            "question 'practice_type': unknown field 'txt' (did you mean 'text'?)",
        ),
        (
            "      - {key: other, label: Other}",
            "      - {key: other, label: Other, lable2: x}",
            "      - {key: other, label: Other, lable2: x}",
            "question 'practice_type', option 'other': unknown field 'lable2' (did you mean 'label'?)",
        ),
        (
            "      - {key: none, label: None, exclusive: true}",
            "      - {key: none, label: None, exclusve: true}",
            "      - {key: none, label: None, exclusve: true}",
            "question 'integration_support', option 'none': unknown field 'exclusve' (did you mean 'exclusive'?)",
        ),
        (
            "index:\n  note:",
            "index:\n  nam: x\n  note:",
            "  nam: x",
            "index: unknown field 'nam' (did you mean 'name'?)",
        ),
        (
            "    digital_tools: {any: 10}",
            "    digital_tools: {anny: 10}",
            "    digital_tools: {anny: 10}",
            "index scoring for 'digital_tools': unknown field 'anny' (did you mean 'any'?)",
        ),
        (
            "extra: {at_least: 2, points: 5}",
            "extra: {at_leats: 2, points: 5}",
            "    integration_support: {any: 15, extra: {at_leats: 2, points: 5}}",
            "index scoring for 'integration_support': unknown field 'at_leats' (did you mean 'at_least'?)",
        ),
        (
            "    digital_tools: {any: 10}",
            "    digital_tool: {any: 10}",
            "    digital_tool: {any: 10}",
            "index scoring for 'digital_tool': not a question of this survey (did you mean 'digital_tools'?)",
        ),
        (
            "{points: {vitals: 8,",
            "{points: {vitalz: 8,",
            "    discharge_checks: {points: {vitalz: 8, emotional_checkin: 7}}",
            "index scoring for 'discharge_checks': points for unknown option 'vitalz' (did you mean 'vitals'?)",
        ),
    ],
    ids=[
        "invite_onyl",
        "titel",
        "segmnet",
        "indx",
        "colour",
        "a number",
        "txt",
        "lable2",
        "exclusve",
        "nam",
        "anny",
        "at_leats",
        "scoring a misspelt question",
        "points for a misspelt option",
    ],
)
def test_an_unknown_field_is_refused_naming_it_and_the_nearest_field(tmp_path, old, new, marker, message):
    path = _variant(tmp_path, old, new)
    line = path.read_text().splitlines().index(marker) + 1
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    assert str(info.value) == f"{path}, line {line}: {message}" and info.value.line == line


@pytest.mark.parametrize("key", ["csrf_token", "served", "invite_code"])
def test_a_question_keyed_like_a_field_of_the_survey_form_is_refused(tmp_path, key):
    # The form posts its CSRF token, the time it was served and the invite code under these
    # names: a question keyed so was posted under the same name, and no answer could be sent.
    path = _variant(tmp_path, "  - key: after_hours\n", f"  - key: {key}\n")
    text = path.read_text().replace("    after_hours: {points:", f"    {key}: {{points:")
    path.write_text(text)
    line = text.splitlines().index(f"  - key: {key}") + 1
    with pytest.raises(SurveyError) as info:
        load_survey(path)
    assert str(info.value) == (
        f"{path}, line {line}: question {key!r}: 'key' cannot be {key!r}, a name the survey form uses for a field "
        "of its own (it uses csrf_token, served and invite_code)"
    )
