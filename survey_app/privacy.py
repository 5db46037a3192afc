"""What /privacy states, read from the real schema and settings so it cannot drift from the code."""
from __future__ import annotations

from typing import Any, Mapping

from .models import Response

# Plain-words meaning of each stored column; a test fails if a column has no entry here.
COLUMN_MEANING = {
    "id": "a random identifier (UUID4) that reveals nothing about when or in which order you answered",
    "survey_id": "which survey you answered",
    "survey_version": "which version of it",
    "answers": "the options you chose (there is no free text)",
    "week": "the calendar week your answers arrived (for example 2026-W48), not the day or time",
    "key_hash": "a keyed hash of your results key, so the key can later show you your own clinic; "
                "the key itself is never stored",
    "in_snapshot": "whether the latest published benchmark counts your response, so your comparison can leave you out",
}

NEVER_STORED = (
    "your IP address", "your browser or device (user agent)", "the page you came from (referrer)",
    "the exact time you answered", "cookies or session identifiers", "browser fingerprints",
    "your name, email or clinic name: the survey has no free-text fields",
)


def facts(config: Mapping[str, Any]) -> dict[str, Any]:
    """The stored columns with their meaning, and the disclosure thresholds in force."""
    columns = [(c.name, COLUMN_MEANING[c.name]) for c in Response.__table__.columns]
    return {
        "columns": columns,
        "never": NEVER_STORED,
        "release_threshold": config["PULSE_RELEASE_THRESHOLD"],
        "k": config["PULSE_SUPPRESSION_K"],
        "segment_min": max(config["PULSE_SEGMENT_MIN"], config["PULSE_SUPPRESSION_K"]),
        "snapshot_every": config["PULSE_SNAPSHOT_EVERY"],
    }
