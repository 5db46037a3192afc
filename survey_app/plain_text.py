"""The characters a text Pulse stores and shows may not hold: topic proposals (api_models.py)
and every text of a survey file (questions.py) refuse the same ones. Pure.

These texts reach HTML, CSV, the report and the Atom feed, whose XML 1.0 cannot carry C0
controls, lone surrogates or U+FFFE/U+FFFF at all.
"""

from __future__ import annotations

import re

# Refused in every text: DEL and the C1 controls; the direction marks and the bidirectional
# overrides and isolates, which can make a text read otherwise than it is stored; and U+FFFE
# and U+FFFF, which are not characters. The C0 controls are refused too, but each kind of text
# keeps its own line breaks and tabs (`refused`). The body of a regex character class: the
# OpenAPI document states the patterns made from it.
ALWAYS_REFUSED = r"\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffe\uffff"
# Lone surrogates (a JSON "\ud800") are not text at all and no database can store them.
# Schema regex engines cannot name them, so only the server states this rule.
SURROGATES = re.compile(r"[\ud800-\udfff]")


def refused(controls: str) -> str:
    """The pattern of what a text refuses: the C0 controls in `controls` (a character class body,
    such as r"\\x00-\\x1f" for a one-line title), and ALWAYS_REFUSED."""
    return f"[{controls}{ALWAYS_REFUSED}]"


def first_refused(text: str, pattern: str) -> str | None:
    """The first character of `text` that `pattern` (from `refused`) refuses, or a lone surrogate; None if none."""
    found = re.search(pattern, text) or SURROGATES.search(text)
    return found.group() if found else None
