"""What the survey program, the community and the organisers' actions refuse, as data.

A domain module raises one of these with a `reason` (a fixed name, one per rule) and the facts
the refusal is about; nothing has changed when it is raised. It carries no HTTP status, no
sentence and no command syntax: the blueprints and the CLI say it each their own way
(wording.py holds the sentences and the statuses).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal: `reason` names the rule, `data` holds the facts (ids, titles, counts)."""

    def __init__(self, reason: str, **data: Any):
        super().__init__(reason)
        self.reason, self.data = reason, data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.data!r})"


class NotFound(DomainError):
    """Something named does not exist (a survey, a topic)."""


class Conflict(DomainError):
    """The request is fine, but the state it meets does not allow it now (a survey already
    closed, a round still open, too few new responses)."""


class Refused(DomainError):
    """Never done here, whatever the state (demo data into a database holding real responses)."""


class Invalid(DomainError):
    """Input (or stored data) that breaks a rule; `fields` (field name -> what is wrong, when a validator already
    said it) names the fields, otherwise the wording does."""

    def __init__(self, reason: str, fields: dict[str, str] | None = None, **data: Any):
        super().__init__(reason, **data)
        self.fields = fields or {}
