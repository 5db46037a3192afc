"""Every setting Pulse reads from the environment: name, default, parser and help.

The table feeds the app config, the README's settings table (`python -m tools.readme_tables`
prints it; tests/test_docs.py checks the README holds exactly that) and the /privacy page, so the
numbers a person reads are the numbers the code uses.
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import dataclass
from typing import Any, Callable, Mapping


class SettingsError(ValueError):
    """An environment variable that cannot be used; the message names it."""


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("use true or false")


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _interval(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be above 0 seconds")
    return number


def _share(value: str) -> float:
    number = float(value)
    if not 0 < number <= 10:
        raise ValueError("must be a share above 0 (1.0 is 100%)")
    return number


def _prefix_length(low: int, high: int) -> Callable[[str], int]:
    """A network prefix length from `low` to `high` bits."""

    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"must be a prefix length from {low} to {high}")
        return number

    return parse


def _timezone(value: str) -> str:
    name = value.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("not a time zone name such as UTC or Europe/Berlin") from None
    return name


@dataclass(frozen=True)
class Setting:
    env: str
    config: str
    default: Any
    parse: Callable[[str], Any]
    help: str  # Markdown, as the README's settings table shows it
    # The default as the README says it, where the value cannot (None: worked out at start).
    default_text: str = ""

    def shown_default(self) -> str:
        if self.default_text:
            return self.default_text
        if self.default is None:
            raise ValueError(f"{self.env}: a default of None needs default_text to say what it means")
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, str):
            return f"`{self.default}`"
        return str(self.default)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "DATABASE_URL",
        None,
        str,
        "SQLAlchemy URL; PostgreSQL as `postgresql+psycopg://user@host/db`",
        default_text="SQLite file `pulse.sqlite3` in the instance folder",
    ),
    Setting(
        "SECRET_KEY",
        "SECRET_KEY",
        None,
        str,
        "at least 32 random characters, the same for every worker; signs sessions and CSRF tokens and keys "
        "the results-key hashes. Not needed with `PULSE_ENV=development` or `--demo`: one is generated and "
        "kept in the instance folder (`secret_key`), so results keys survive a restart",
        default_text="none: required",
    ),
    Setting(
        "PULSE_ENV",
        "PULSE_ENV",
        "production",
        str,
        "`development` allows a generated `SECRET_KEY` and the debugger; anything else is production",
    ),
    Setting(
        "PULSE_DEMO",
        "PULSE_DEMO",
        False,
        _bool,
        "set by `pulse serve --demo`: the separate demo database `pulse-demo.sqlite3` in the instance "
        'folder, filled with synthetic responses, every page marked "demo data"',
    ),
    Setting(
        "PULSE_QUESTIONS",
        "PULSE_QUESTIONS",
        None,
        str,
        "the survey file added at every start if its id and version are not stored yet, and made current "
        "if no survey is (more surveys: `pulse survey add`)",
        default_text="the packaged `questions.yaml`",
    ),
    Setting(
        "PULSE_RELEASE_THRESHOLD",
        "PULSE_RELEASE_THRESHOLD",
        10,
        _positive_int,
        "nothing is published before this many responses; a question with fewer answers shows "
        '"not enough responses yet"',
    ),
    Setting(
        "PULSE_SMALL_COUNT_K",
        "PULSE_SMALL_COUNT_K",
        5,
        _positive_int,
        "a percentile is shown only when at least k clinics lie beyond it; the perturbation table "
        "publishes counts 1…k−1 as 0 or k+",
    ),
    Setting(
        "PULSE_PTABLE",
        "PULSE_PTABLE",
        None,
        str,
        "perturbation table in the ONS format (`pcv,ckey,pvalue` CSV), e.g. ONS's own "
        '`ptable_10_5_rule.csv`; see "Disclosure" below',
        default_text="the shipped table (unbiased; counts of 10 or more change by -4..+4, small changes "
        "likeliest; small counts as 0 or 5+)",
    ),
    Setting(
        "PULSE_SEGMENT_MIN",
        "PULSE_SEGMENT_MIN",
        10,
        _positive_int,
        "smallest segment group shown (a practice type in the aftercare survey), judged on the published "
        "(perturbed) group sizes",
    ),
    Setting(
        "PULSE_SNAPSHOT_MIN_NEW",
        "PULSE_SNAPSHOT_MIN_NEW",
        5,
        _positive_int,
        "a new snapshot needs at least this many new responses (the organisers' rebuild too)",
    ),
    Setting(
        "PULSE_SNAPSHOT_GROWTH",
        "PULSE_SNAPSHOT_GROWTH",
        1.0,
        _share,
        "the next snapshot is built once the new responses reach this share of the last snapshot's N "
        "(or `PULSE_SNAPSHOT_MIN_NEW`, whichever is more): each snapshot at least doubles N, so an "
        "attacker can trigger few fresh draws of the noise",
    ),
    Setting(
        "PULSE_SNAPSHOT_MIN_INTERVAL",
        "PULSE_SNAPSHOT_MIN_INTERVAL",
        1.0,
        _seconds,
        "under load a worker checks for a due rebuild at most this often (seconds); a catch-up check is "
        "scheduled, so no response waits for the next submission",
    ),
    Setting(
        "PULSE_RATELIMIT_ENABLED",
        "RATELIMIT_ENABLED",
        True,
        _bool,
        "rate-limit submissions, proposals, ballots and admin logins per client network",
    ),
    Setting(
        "PULSE_RATELIMIT_STORAGE_URI",
        "RATELIMIT_STORAGE_URI",
        "memory://",
        str,
        "where limit counters live: `memory://` for one worker process, `redis://127.0.0.1:6379` for "
        "several workers or hosts",
    ),
    Setting(
        "PULSE_RATELIMIT_IPV4_PREFIX",
        "PULSE_RATELIMIT_IPV4_PREFIX",
        24,
        _prefix_length(8, 32),
        "rate limits count IPv4 clients per network of this prefix length (8–32; 32 counts each address)",
    ),
    Setting(
        "PULSE_RATELIMIT_IPV6_PREFIX",
        "PULSE_RATELIMIT_IPV6_PREFIX",
        64,
        _prefix_length(16, 128),
        "the same for IPv6 (16–128); an IPv6 form of an IPv4 address (`::ffff:192.0.2.7`, `::192.0.2.7`, "
        "6to4 `2002:c000:207::`) counts as IPv4",
    ),
    Setting(
        "PULSE_SUBMIT_LIMIT",
        "PULSE_SUBMIT_LIMIT",
        "20 per hour",
        str,
        "Flask-Limiter string for survey submissions per client network",
    ),
    Setting(
        "PULSE_SUBMIT_LIMIT_WIDE",
        "PULSE_SUBMIT_LIMIT_WIDE",
        "100 per hour",
        str,
        "Flask-Limiter string for survey submissions per wider network (IPv4 /16, IPv6 /48), beside "
        "`PULSE_SUBMIT_LIMIT`: one site holding many /64s or /24s cannot multiply its budget",
    ),
    Setting(
        "PULSE_MIN_FILL_SECONDS",
        "PULSE_MIN_FILL_SECONDS",
        5.0,
        _seconds,
        "a form submitted sooner after it was served is refused (signed in the form, never stored)",
    ),
    Setting(
        "PULSE_TIMEZONE",
        "PULSE_TIMEZONE",
        "UTC",
        _timezone,
        "the IANA time zone (e.g. `Europe/Berlin`) in which organisers give schedules (`pulse survey schedule`, "
        "/admin) and pages show them; stored and served by the API in UTC",
    ),
    Setting(
        "PULSE_SCHEDULE_POLL_SECONDS",
        "PULSE_SCHEDULE_POLL_SECONDS",
        15.0,
        _interval,
        "each worker asks the database for the next scheduled time at least this often (seconds), request "
        "or not: a time set on another host or from the command line is acted on within about this",
    ),
    Setting(
        "PULSE_HTTPS",
        "PULSE_HTTPS",
        False,
        _bool,
        "served over HTTPS: `__Host-` Secure cookies and HSTS; keep false for plain HTTP on localhost",
    ),
    Setting(
        "PULSE_PROXY_HOPS",
        "PULSE_PROXY_HOPS",
        0,
        int,
        "trusted reverse proxies in front of Pulse (their `X-Forwarded-For` gives the client address "
        "used by rate limits)",
    ),
    Setting(
        "PULSE_MAX_CONTENT_LENGTH",
        "MAX_CONTENT_LENGTH",
        64 * 1024,
        _positive_int,
        "largest request body in bytes (larger: 413)",
    ),
)


def read_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Config values from the environment, parsed, with defaults for what is unset."""
    environ = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            config[setting.config] = setting.default
            continue
        try:
            config[setting.config] = setting.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{setting.env}={raw!r}: {exc}") from None
    return config


def markdown_table() -> str:
    """The README's settings table: name, default and meaning of every setting."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.env}` | {s.shown_default()} | {s.help} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"
