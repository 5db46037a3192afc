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
    "your IP address",
    "your browser or device (user agent)",
    "the page you came from (referrer)",
    "the exact time you answered",
    "a session record: the server keeps no sessions, so the one cookie below points to nothing stored",
    "browser fingerprints",
    "your name, email or clinic name: the survey has no free-text fields",
)


# The measured odds of the strongest attacker we know (`python benchmarks/attacks.py`, SECURITY.md),
# in plain words for /privacy.
ATTACK_SUMMARY = (
    "in 300 simulated attacks for each of 16 ways of attacking surveys of 20 and 60 clinics, an attacker "
    "sending up to 15 times as many answers of its own, reading every snapshot and combining them exactly "
    "guessed a clinic's answer to a question at most 14 points more often than a plain guess from the "
    "published shares (35% against 21% in its best case, 1 to 10 points in most), got all but two of a "
    "response's answers right in at most 3 trials in 100, and recovered a whole response at most once in 300. "
    "With exact counts the same attacker reads every answer."
)


def change_words(changes: dict[int, float]) -> dict[str, str]:
    """How likely a count is to stay, move by 1 or 2, or move by more, as whole percents."""
    stay = changes.get(0, 0.0)
    near = sum(p for c, p in changes.items() if 1 <= abs(c) <= 2)
    far = sum(p for c, p in changes.items() if abs(c) > 2)
    return {"stay": f"{round(100 * stay)}%", "near": f"{round(100 * near)}%", "far": f"{round(100 * far)}%"}


def facts(config: Mapping[str, Any], rules) -> dict[str, Any]:
    """The stored columns with their meaning, and the disclosure thresholds in force."""
    columns = [(c.name, COLUMN_MEANING[c.name]) for c in Response.__table__.columns]
    described = rules.describe()
    return {
        "columns": columns,
        "cookie": config.get("SESSION_COOKIE_NAME") or "session",
        "never": NEVER_STORED,
        "storage": storage_facts(config),
        "release_threshold": config["PULSE_RELEASE_THRESHOLD"],
        "k": config["PULSE_SMALL_COUNT_K"],
        "segment_min": config["PULSE_SEGMENT_MIN"],
        "snapshot_min_new": config["PULSE_SNAPSHOT_MIN_NEW"],
        "snapshot_growth": round(100 * config["PULSE_SNAPSHOT_GROWTH"]),
        "max_change": described["max_change"],
        "small_counts": described["small_counts"],
        "changes": change_words(rules.ptable.change_probabilities()),
        "regular_from": rules.ptable.regular_from,
        "attack_summary": ATTACK_SUMMARY,
    }


# What the database keeps about the order of responses, and what invite mode protects, in
# plain words per database engine (SECURITY.md, "Order" and "Invite mode", has the measurements).
ORDER = {
    "sqlite": "Responses are filed under their random identifier, not in the order they arrived. For a short while "
    "the database's write log still lists the most recent responses in order, until it is written over: "
    "someone with a copy of the database files could see that order, never who answered.",
    "postgresql": "Responses are filed under their random identifier. The database server (PostgreSQL) also keeps a "
    "transaction number with every row, which Pulse cannot remove: someone with access to the database "
    "can tell in which order the responses since the last published snapshot arrived, and which "
    "responses one snapshot counted together, never who answered.",
}
INVITE_PROTECTS = (
    "Your invite code is checked and deleted when you submit, and your response keeps no trace of which code it "
    "was. Someone who later gets a copy of the database files, even together with the list of codes, cannot tell "
    "which code went with which response: the database keeps no record of the code's deletion beside your response "
    "once the submission is saved."
)
INVITE_HOW = {
    "sqlite": "After every submission Pulse empties the database's write log into the main file and overwrites the "
    "deleted code with zeros.",
    "postgresql": "One exception, on this server's database (PostgreSQL): its own transaction log keeps the code's "
    "deletion and your response side by side for a while, and the deleted code stays in its table "
    "file until the server cleans it up. Only whoever runs the database server can read those.",
}
INVITE_TRUST = (
    "The organisers hand out the codes and run the server, and we trust them not to record submissions as they "
    "happen: someone who knows who received which code and watches submissions arrive could link them. Invite "
    "codes protect you against a later copy of the database, not against the organisers."
)


def storage_facts(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the database engine in use keeps about order, and what invite mode protects (or None)."""
    engine = "postgresql" if str(config.get("DATABASE_URL", "")).startswith("postgresql") else "sqlite"
    invite_only = getattr(config.get("SURVEY"), "invite_only", False)
    invite = {"protects": INVITE_PROTECTS, "how": INVITE_HOW[engine], "trust": INVITE_TRUST} if invite_only else None
    return {"order": ORDER[engine], "invite": invite}
