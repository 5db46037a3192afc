"""The survey form, built from the survey definition (Flask-WTF, works without JavaScript)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField

from .questions import Survey, validate_answers

SERVED_SALT = "pulse/form-served"
# The attribute that holds a question's field (its name in the page stays the question's key): a
# question keyed `meta`, `process` or `data` would otherwise take the place of the form's own.
FIELD = "q_{}"


def survey_form(survey: Survey, formdata: MultiDict | None = None, **kwargs) -> FlaskForm:
    """A form with one field per question and the signed 'served' stamp, filled from formdata."""

    class SurveyForm(FlaskForm):
        served = HiddenField()  # questions.SERVED_FIELD: no question may take its name

        def __getitem__(self, key: str):
            """A question's field by the question's key (form[q.key])."""
            return super().__getitem__(FIELD.format(key) if FIELD.format(key) in self._fields else key)

    for q in survey.questions:
        setattr(SurveyForm, FIELD.format(q.key), q.kind.form_field(q, name=q.key))
    return SurveyForm(formdata=formdata, **kwargs)


def answers_from_form(survey: Survey, formdata: MultiDict) -> tuple[dict[str, Any], dict[str, str]]:
    """Validated answers from posted form data, or errors by question key."""
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for q in survey.questions:
        raw[q.key], problem = q.kind.from_form(formdata.getlist(q.key))
        if problem:
            errors[q.key] = problem
    clean, problems = validate_answers(survey, raw)
    problems.update(errors)
    for q in survey.questions:  # a missing answer, said with the question it belongs to
        if not raw[q.key] and q.key in problems:
            problems[q.key] = q.kind.missing_message(q)
    return (clean, {}) if not problems else ({}, problems)


def stamp_served(secret: str) -> str:
    """A signed value recording when the form was served (it travels in the form, never stored)."""
    return URLSafeTimedSerializer(secret, salt=SERVED_SALT).dumps("survey")


def seconds_since_served(secret: str, value: str | None) -> float | None:
    """How long ago the form was served, or None if the stamp is missing or forged."""
    if not value:
        return None
    try:
        _, when = URLSafeTimedSerializer(secret, salt=SERVED_SALT).loads(value, return_timestamp=True)
    except BadSignature:
        return None
    import datetime as dt

    return (dt.datetime.now(dt.timezone.utc) - when).total_seconds()
