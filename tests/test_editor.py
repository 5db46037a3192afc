"""/admin's survey editor: check (the start-up messages, the real form, points, waves), start
from a stored survey, save as `pulse survey add` does, uploads and bad input."""

from __future__ import annotations

import ast
import html
import io
import re

import pytest
from sqlalchemy import select

from survey_app import admin_auth, program, questions, storage
from survey_app.models import StoredSurvey
from survey_app.questions import parse_survey

from .helpers import ROOT, admin_login, form_tokens, run_pulse

# Saving and comparing read and write the stored surveys: SQL, on both databases.
pytestmark = pytest.mark.both_databases

QUESTIONS = (ROOT / "questions.yaml").read_text()
COMFORT = (ROOT / "surveys" / "patient-comfort.yaml").read_text()


@pytest.fixture
def organiser(app, client):
    with app.app_context():
        admin_auth.create_admin("ada", "correct horse battery")
    assert admin_login(client).status_code == 303
    return client


def post(client, action="check", text=None, file=None, **extra):
    """Submit the editor's form as a browser does (multipart, with the page's CSRF token)."""
    tokens = form_tokens(client.get("/admin/editor").get_data(as_text=True))
    data = {"action": action, **tokens, **extra}
    if text is not None:
        data["text"] = text
    if file is not None:
        data["file"] = file
    return client.post("/admin/editor", data=data, content_type="multipart/form-data")


def page(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def version(text: str, n: int) -> str:
    return re.sub(r"(?m)^version: \d+", f"version: {n}", text, count=1)


def stored(app) -> list[tuple[str, int]]:
    with app.app_context():
        return [(r.id, r.version) for r in storage.reader().scalars(select(StoredSurvey))]


def fieldsets(text: str) -> list[str]:
    return re.findall(r'<fieldset class="question".*?</fieldset>', text, re.S)


# ------------------------------------------------------------------ access


def test_the_editor_needs_an_organiser(client):
    assert client.get("/admin/editor").status_code == 302
    assert client.get("/admin/editor/guide").status_code == 302
    tokens = form_tokens(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/editor", data={"text": QUESTIONS, "action": "save", **tokens})
    # The login page, not the editor: only the poster's own text comes back, to copy.
    assert response.status_code == 401 and 'action="/admin/login"' in response.get_data(as_text=True)
    assert "Check or Save" not in response.get_data(as_text=True)


def test_posting_without_the_csrf_token_is_refused(organiser, app):
    response = organiser.post("/admin/editor", data={"text": version(QUESTIONS, 2), "action": "save"})
    assert response.status_code == 400
    assert ("pulse-aftercare", 2) not in stored(app)


def textarea(response) -> str:
    """What the page's text area holds, as the browser shows it."""
    return html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", response.get_data(as_text=True), re.S)[1])


def test_an_expired_form_token_keeps_the_text_on_the_editor(organiser, app, monkeypatch):
    # An organiser who wrote for over an hour (the token's lifetime) gets the text back, not a
    # bare 400 page that loses it; nothing is saved by the refused post.
    text = version(QUESTIONS, 2)
    monkeypatch.setitem(app.config, "WTF_CSRF_TIME_LIMIT", -1)  # every token has expired
    response = post(organiser, "save", text=text)
    assert response.status_code == 400
    assert "security token" in page(response) and "Nothing was checked or saved" in page(response)
    assert textarea(response) == text
    assert ("pulse-aftercare", 2) not in stored(app)


def test_a_session_that_ended_keeps_the_text_on_the_login_page(organiser, app, monkeypatch):
    # Idle too long (or logged out elsewhere): the login page shows the text, to copy, not lose.
    text = version(QUESTIONS, 2)
    tokens = form_tokens(organiser.get("/admin/editor").get_data(as_text=True))
    monkeypatch.setattr(admin_auth, "IDLE_SECONDS", -1)
    response = organiser.post("/admin/editor", data={"action": "save", "text": text, **tokens})
    assert response.status_code == 401
    said = page(response)
    assert 'action="/admin/login"' in said and "was not checked or saved" in said
    assert textarea(response) == text
    assert ("pulse-aftercare", 2) not in stored(app)


def test_an_empty_file_says_so_and_keeps_the_text(organiser, app):
    text = version(QUESTIONS, 2)
    response = post(organiser, "save", text=text, file=(io.BytesIO(b""), "empty.yaml"))
    assert response.status_code == 422
    assert "empty.yaml is empty" in page(response)
    assert textarea(response) == text
    assert ("pulse-aftercare", 2) not in stored(app)


def test_the_admin_pages_link_the_editor_and_the_editor_links_its_guide(organiser):
    assert 'href="/admin/editor"' in organiser.get("/admin").get_data(as_text=True)
    text = organiser.get("/admin/editor").get_data(as_text=True)
    assert 'href="/admin/editor/guide"' in text
    assert '<textarea id="editor-text" name="text"' in text and 'type="file"' in text
    assert 'enctype="multipart/form-data"' in text
    guide = organiser.get("/admin/editor/guide")
    assert guide.status_code == 200 and "invite_only" in guide.get_data(as_text=True)


# ------------------------------------------------------------------ check


def test_check_shows_the_loaders_message_with_its_line(organiser):
    broken = QUESTIONS.replace("    type: multi\n", "    type: multiple\n", 1)
    line = broken.splitlines().index("    type: multiple") + 1
    response = post(organiser, text=broken)
    assert response.status_code == 422
    text = page(response)
    assert (
        f"the text above, line {line}: question 'discharge_checks': unknown type 'multiple' "
        "(use one of: single, multi)" in text
    )
    # The line the message names (the faulty `type`'s own), with the lines around it.
    assert re.search(rf'class="here">\s*{line}  {re.escape("    type: multiple")}</span>', text)
    assert re.search(rf"<span>\s*{line - 1}  {re.escape('  - key: discharge_checks')}</span>", text)
    assert "type: multiple" in text.split("<textarea", 1)[1]  # the text is kept to be fixed
    assert 'id="editor-preview"' not in text


def test_check_gives_yaml_errors_with_their_line(organiser):
    response = post(organiser, text="id: x\nversion: 1\ntitle: [unclosed\n")
    assert response.status_code == 422
    assert re.search(r"the text above, line \d: invalid YAML", page(response))


def test_check_previews_the_real_form_with_points_and_the_maximum(organiser):
    response = post(organiser, text=version(QUESTIONS, 2))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    # The survey page's own markup, question by question: the same partial renders both.
    survey_page = organiser.get("/survey").get_data(as_text=True)
    assert fieldsets(text) == fieldsets(survey_page) and len(fieldsets(text)) == 8
    assert '<span class="qnum">1 of 8</span> Which best describes your practice?' in text
    assert 'type="radio" value="within_24h"' in text and 'type="checkbox" value="vitals"' in text
    readable = page(response)
    assert "reaches at most <strong>100</strong> points" in readable
    assert re.search(
        r"Re-check vital signs \(blood pressure, heart rate\) <code>vitals</code></td><td class=\"num\">8<", readable
    )
    assert 'Any option but an exclusive one</td><td class="num">+15' in readable
    assert '2 or more options but an exclusive one</td><td class="num">+5' in readable
    assert "up to 20 points" in readable and "the segment question · not scored" in readable
    assert "Save adds it as a new version." in readable


def test_check_says_which_questions_the_wave_comparison_can_compare(organiser):
    new = version(QUESTIONS, 2).replace(
        "      - {key: ride_home, label: Confirm a safe ride home}\n",
        "      - {key: ride_home, label: Confirm a safe ride home}\n"
        "      - {key: pharmacy, label: Check medications}\n",
    )
    text = page(post(organiser, text=new))
    comparable = text.split('class="editor-comparable"', 1)[1].split("</ul>", 1)[0]
    not_comparable = text.split('class="editor-not-comparable"', 1)[1].split("</ul>", 1)[0]
    assert "Compared with wave 1" in text
    assert "<code>practice_type</code>" in comparable and "discharge_checks" not in comparable
    assert "<code>discharge_checks</code>" in not_comparable
    assert "its answers changed in wave 2 (added: “Check medications”)" in not_comparable
    assert "Can be compared (7)" in text and "Cannot be compared (1)" in text


def test_check_of_a_first_version_has_no_comparison(organiser):
    text = page(post(organiser, text=COMFORT))
    assert "The survey is valid" in text and "Compared with wave" not in text


def test_check_says_save_would_change_nothing_or_be_refused(organiser):
    assert "stored already, exactly so: Save changes nothing" in page(post(organiser, text=QUESTIONS))
    changed = page(post(organiser, text=QUESTIONS.replace("Which best describes your practice?", "Your practice?")))
    assert (
        "Save will refuse it: the text above: survey pulse-aftercare@1 is already stored with different content"
        in changed
    )


# ------------------------------------------------------------------ start from


def test_start_from_copies_a_stored_survey_with_its_version_raised(organiser, app, db_url):
    assert run_pulse(db_url, "survey", "add", str(ROOT / "surveys" / "patient-comfort.yaml")).exit_code == 0
    three = version(COMFORT, 3)
    assert post(organiser, "save", text=three).status_code == 303
    text = page(organiser.get("/admin/editor?from=patient-comfort@1"))
    area = text.split("<textarea", 1)[1].split("</textarea>", 1)[0]
    assert "\nversion: 4\n" in area  # one more than the highest stored, 3
    assert area.split(">", 1)[1].lstrip("\n") == version(COMFORT, 4)  # comments and layout kept
    current = page(organiser.get("/admin/editor?from=pulse-aftercare"))
    assert "\nversion: 2\n" in current.split("<textarea", 1)[1]


def test_start_from_an_unknown_survey_says_so(organiser):
    response = organiser.get("/admin/editor?from=no-such-survey")
    assert response.status_code == 404
    assert "There is no stored survey 'no-such-survey'" in page(response)
    assert organiser.get("/admin/editor?from=pulse-aftercare@two").status_code == 422
    assert organiser.get("/admin/editor?from=pulse-aftercare@9").status_code == 404


# ------------------------------------------------------------------ save


def test_save_stores_a_new_version_as_pulse_survey_add_does(organiser, app, db_url, tmp_path):
    response = post(organiser, "save", text=version(QUESTIONS, 2))
    assert response.status_code == 303 and response.location.endswith("/admin?survey=pulse-aftercare@2")
    assert ("pulse-aftercare", 2) in stored(app)
    flashed = page(organiser.get(response.location))
    assert "Added 'The Pulse of Clinical Aftercare' (pulse-aftercare@2); open it under Surveys on /admin." in flashed
    with app.app_context():
        row = storage.reader().get(StoredSurvey, ("pulse-aftercare", 2))
        assert row.definition == version(QUESTIONS, 2)  # the text as typed, stored as a file's is
    # The command line sees the very same stored survey: adding the same file again is a no-op.
    path = tmp_path / "v2.yaml"
    path.write_text(version(QUESTIONS, 2))
    again = run_pulse(db_url, "survey", "add", str(path))
    assert "already stored, unchanged; nothing to do" in again.output


def test_save_of_an_identical_survey_changes_nothing(organiser, app):
    before = stored(app)
    response = post(organiser, "save", text=QUESTIONS.replace("\n", "\r\n"))  # as a browser sends a text area
    assert response.status_code == 303
    assert "pulse-aftercare@1 is already stored, unchanged; nothing to do." in page(organiser.get(response.location))
    assert stored(app) == before


def test_save_of_a_changed_survey_under_a_stored_version_is_refused(organiser, app):
    changed = QUESTIONS.replace("Which best describes your practice?", "Your practice?")
    response = post(organiser, "save", text=changed)
    assert response.status_code == 409
    assert (
        "the text above: survey pulse-aftercare@1 is already stored with different content (questions, options, "
        "points or texts); a changed survey needs a new version. Nothing was changed." in page(response)
    )
    with app.app_context():
        assert program.find("pulse-aftercare@1").question("practice_type").text == "Which best describes your practice?"


def test_save_of_an_invalid_survey_stores_nothing(organiser, app):
    before = stored(app)
    response = post(organiser, "save", text=version(QUESTIONS, 2).replace("points: {vitals: 8", "points: {vitals: 9"))
    assert response.status_code == 422
    assert "the points can reach 101; they must reach exactly 100" in page(response)
    assert stored(app) == before


@pytest.mark.parametrize("action", ["check", "save"])
@pytest.mark.parametrize("at_least", ["two", "[2]"])
def test_a_scoring_value_of_another_type_is_a_422_with_its_line(organiser, app, action, at_least):
    # It reached int() unchecked: a 500 for Check and Save alike.
    rule = "    integration_support: {any: 15, extra: {at_least: 2, points: 5}}"
    bad = version(QUESTIONS, 2).replace(rule, rule.replace("at_least: 2", f"at_least: {at_least}"))
    line = bad.splitlines().index(rule.replace("at_least: 2", f"at_least: {at_least}")) + 1
    response = post(organiser, action, text=bad)
    assert response.status_code == 422
    assert (
        f"the text above, line {line}: index scoring for 'integration_support': 'at_least' in 'extra' must be "
        "a whole number from 2 to 5"
    ) in page(response)
    assert ("pulse-aftercare", 2) not in stored(app)


@pytest.mark.parametrize("action", ["check", "save"])
def test_a_misspelt_field_is_a_422_naming_it(organiser, app, action):
    # Dropped without a word, Check called it valid and Save stored a public survey.
    bad = version(QUESTIONS, 2).replace("invite_only: false", "invite_onyl: true")
    line = bad.splitlines().index("invite_onyl: true") + 1
    response = post(organiser, action, text=bad)
    assert response.status_code == 422
    assert f"the text above, line {line}: survey: unknown field 'invite_onyl' (did you mean 'invite_only'?)" in page(
        response
    )
    assert ("pulse-aftercare", 2) not in stored(app)


def test_save_links_the_topic_it_answers(organiser, app):
    from survey_app.community import voting
    from survey_app.models import Topic

    with app.app_context():
        with storage.writer() as db:
            db.add(Topic(id="t1", title="Patient comfort", status="approved", week="2026-W01"))
        assert voting.linkable_topics()
    response = post(organiser, "save", text=COMFORT, topic="t1")
    assert response.status_code == 303
    with app.app_context():
        assert storage.reader().get(StoredSurvey, ("patient-comfort", 1)).topic_id == "t1"
    unknown = post(organiser, "save", text=version(COMFORT, 2), topic="nope")
    assert unknown.status_code == 404 and ("patient-comfort", 2) not in stored(app)


# ------------------------------------------------------------------ uploads and bad input


def test_an_uploaded_file_is_checked_under_its_own_name(organiser):
    broken = COMFORT.replace("version: 1", "version: one", 1)
    response = post(organiser, file=(io.BytesIO(broken.encode()), "C:\\surveys\\comfort.yaml"))
    assert response.status_code == 422
    text = page(response)
    assert "comfort.yaml, line " in text and "'version' must be a whole number" in text
    assert "version: one" in text.split("<textarea", 1)[1]  # the file's text, ready to fix


def test_an_uploaded_file_can_be_saved(organiser, app):
    response = post(organiser, "save", file=(io.BytesIO(COMFORT.encode()), "patient-comfort.yaml"))
    assert response.status_code == 303 and ("patient-comfort", 1) in stored(app)


def test_a_binary_upload_gets_the_commands_message(organiser, app):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    response = post(organiser, "save", file=(io.BytesIO(png), "logo.png"))
    assert response.status_code == 422
    assert "logo.png: not a survey file: byte 0 is not UTF-8 text" in page(response)
    assert stored(app) == [("pulse-aftercare", 1)]


@pytest.mark.parametrize("field", ["file", "text"])
def test_too_large_is_a_413_with_a_message_on_the_editor(organiser, field):
    big = "# " + "x" * (200 * 1024) + "\n" + QUESTIONS
    data = {"file": (io.BytesIO(big.encode()), "big.yaml")} if field == "file" else {"text": big}
    response = post(organiser, **data)
    assert response.status_code == 413
    text = page(response)
    assert "too large for a survey" in text and 'id="editor-text"' in text


def test_a_file_just_over_the_limit_is_refused_without_the_whole_request_being(organiser):
    big = "#" * (64 * 1024 + 1)
    response = post(organiser, file=(io.BytesIO(big.encode()), "big.yaml"))
    assert response.status_code == 413 and "too large for a survey" in page(response)


@pytest.mark.parametrize(
    "text, status, says",
    [
        ("", 422, "there was nothing to check"),
        ("   \n", 422, "there was nothing to check"),
        ("- just\n- a list\n", 422, "the file must be a mapping"),
        ("\x00\x01", 422, "invalid YAML"),
        ("a: &a [*a, *a]\n", 422, "the text above"),
        ("id: x\nid: y\n", 422, "duplicate key 'id'"),
    ],
)
def test_bad_input_is_a_clear_4xx(organiser, text, status, says):
    response = post(organiser, text=text)
    assert response.status_code == status
    assert says in page(response)


def test_an_unknown_action_is_refused(organiser, app):
    response = post(organiser, "publish", text=version(QUESTIONS, 2))
    assert response.status_code == 422 and "Choose Check or Save." in page(response)
    assert ("pulse-aftercare", 2) not in stored(app)


@pytest.mark.parametrize("key", ["meta", "process", "_fields", "data", "validate"])
def test_a_question_named_like_a_form_attribute_previews_and_is_answered(organiser, app, key):
    new = (
        version(QUESTIONS, 2)
        .replace("key: practice_type", f"key: {key}")
        .replace("segment: practice_type", f"segment: {key}")
    )
    response = post(organiser, "save", text=new)
    assert response.status_code == 303
    text = page(post(organiser, text=new))
    assert f'id="q-{key}"' in text and f'name="{key}" type="radio" value="psychiatry"' in text
    with app.app_context():
        program.open_survey("pulse-aftercare@2")
    assert f'name="{key}" type="radio"' in organiser.get("/survey").get_data(as_text=True)


# ------------------------------------------------------------------ the guide to the file format

GUIDE = ROOT / "docs" / "writing-a-survey.md"
LOADER = ("_parse", "_key", "_parse_question", "_parse_scoring", "_parse_extra", "_check_guide_texts")


def loader_fields() -> set[str]:
    """Every key the survey loader reads (questions.py): `x.get("key")`, `_text(source, node, "key", ...)`,
    `node["key"]` and the sets of keys it allows, in the functions that parse a file."""
    tree = ast.parse((ROOT / "survey_app" / "questions.py").read_text())
    found = set()
    for function in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in LOADER):
        for node in ast.walk(function):
            if isinstance(node, ast.Call) and node.args:
                named = isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                arg = node.args[0] if named else node.args[2] if _is(node.func, "_text") else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                found.add(node.slice.value)
            elif isinstance(node, ast.Set) and all(isinstance(e, ast.Constant) for e in node.elts):
                found |= {e.value for e in node.elts}
    return found


def _is(func, name: str) -> bool:
    return isinstance(func, ast.Name) and func.id == name


def test_the_loader_fields_are_found():
    fields = loader_fields()
    assert {"id", "version", "invite_only", "segment_label", "exclusive", "why", "any", "at_least"} <= fields
    assert "PULSE_QUESTIONS" not in fields


def test_every_field_the_loader_accepts_is_documented_and_nothing_else():
    guide = GUIDE.read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", guide, re.M))
    assert loader_fields() - documented == set(), "fields the loader reads that docs/writing-a-survey.md leaves out"
    assert documented - loader_fields() == set(), "fields docs/writing-a-survey.md describes that the loader ignores"
    # Any other key is refused: the fields it accepts are the fields it reads.
    levels = ("SURVEY", "QUESTION", "OPTION", "INDEX", "RULE", "EXTRA")
    accepted = set().union(*(getattr(questions, f"{level}_FIELDS") for level in levels))
    assert accepted == loader_fields()


def test_the_guides_example_is_a_valid_survey():
    example = re.search(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S).group(1)
    survey = parse_survey(example, "the example")
    assert survey.invite_only is False and survey.outcome and survey.segment_label
    assert {f for q in survey.questions for o in q.options for f in ("action", "why") if getattr(o, f)} == {
        "action",
        "why",
    }


def test_the_guide_ships_with_the_package_as_the_page_shows_it(organiser):
    shipped = ROOT / "survey_app" / "writing-a-survey.md"
    assert shipped.read_text() == GUIDE.read_text()
    assert html.escape(GUIDE.read_text().splitlines()[2], quote=False) in organiser.get("/admin/editor/guide").get_data(
        as_text=True
    )
