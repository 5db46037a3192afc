"""Every setting Pulse reads from the environment: name, default, parser and help.

The table feeds the app config, the README (a test checks every name is documented) and
the /privacy page, so the numbers a person reads are the numbers the code uses.
"""
from __future__ import annotations

import os
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


@dataclass(frozen=True)
class Setting:
    env: str
    config: str
    default: Any
    parse: Callable[[str], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", "DATABASE_URL", None, str,
            "SQLAlchemy URL. Default: a SQLite file `pulse.sqlite3` in the instance folder. "
            "PostgreSQL: `postgresql+psycopg://user@host/db`."),
    Setting("SECRET_KEY", "SECRET_KEY", None, str,
            "Signs sessions, CSRF tokens and keys the results-key hashes. Required (at least 32 "
            "random bytes, the same for every worker) unless PULSE_ENV=development or --demo, where "
            "one is generated and kept in the instance folder (`secret_key`)."),
    Setting("PULSE_ENV", "PULSE_ENV", "production", str,
            "`development` allows a generated SECRET_KEY and the debugger; anything else is production."),
    Setting("PULSE_DEMO", "PULSE_DEMO", False, _bool,
            "Set by `pulse serve --demo`: use the separate demo database `pulse-demo.sqlite3` in the "
            "instance folder, filled with synthetic responses, and mark every page \"demo data\"."),
    Setting("PULSE_QUESTIONS", "PULSE_QUESTIONS", None, str,
            "Path of the survey file added at every start (if its id and version are not stored yet) and made "
            "current if no survey is. Default: the `questions.yaml` installed with the package."),
    Setting("PULSE_RELEASE_THRESHOLD", "PULSE_RELEASE_THRESHOLD", 10, _positive_int,
            "Nothing is published before this many responses; a question with fewer answers shows "
            "\"not enough responses yet\"."),
    Setting("PULSE_SMALL_COUNT_K", "PULSE_SMALL_COUNT_K", 5, _positive_int,
            "Small-count k: a percentile is shown only when at least k clinics lie beyond it. The "
            "perturbation table publishes counts 1 to k-1 as 0 or k or more."),
    Setting("PULSE_PTABLE", "PULSE_PTABLE", None, str,
            "Perturbation table in the ONS format (`pcv,ckey,pvalue` CSV), such as ONS's "
            "`ptable_10_5_rule.csv`. Default: the table shipped with Pulse (unbiased; counts of 10 or "
            "more change by -4..+4, small changes likeliest; small counts as 0 or 5+)."),
    Setting("PULSE_SEGMENT_MIN", "PULSE_SEGMENT_MIN", 10, _positive_int,
            "Smallest segment group shown, judged on the published (perturbed) group sizes."),
    Setting("PULSE_SNAPSHOT_MIN_NEW", "PULSE_SNAPSHOT_MIN_NEW", 5, _positive_int,
            "A new snapshot needs at least this many new responses (the organisers' rebuild too)."),
    Setting("PULSE_SNAPSHOT_GROWTH", "PULSE_SNAPSHOT_GROWTH", 1.0, _share,
            "The next snapshot is built once the new responses reach this share of the last "
            "snapshot's N (or PULSE_SNAPSHOT_MIN_NEW, whichever is more): 1.0, so each snapshot at "
            "least doubles N and an attacker can trigger few fresh draws of the noise."),
    Setting("PULSE_SNAPSHOT_MIN_INTERVAL", "PULSE_SNAPSHOT_MIN_INTERVAL", 1.0, _seconds,
            "Under load, a worker checks for a due rebuild at most this often (seconds); a late check "
            "is scheduled, so no response waits for the next submission."),
    Setting("PULSE_RATELIMIT_ENABLED", "RATELIMIT_ENABLED", True, _bool,
            "Rate-limit submissions, proposals, ballots and admin logins per client network."),
    Setting("PULSE_RATELIMIT_STORAGE_URI", "RATELIMIT_STORAGE_URI", "memory://", str,
            "Where limit counters live: `memory://` (one worker process) or `redis://host:6379` "
            "(several workers or hosts)."),
    Setting("PULSE_RATELIMIT_IPV4_PREFIX", "PULSE_RATELIMIT_IPV4_PREFIX", 24, _prefix_length(8, 32),
            "Rate limits count IPv4 clients per network of this prefix length (8 to 32; 32 is one address)."),
    Setting("PULSE_RATELIMIT_IPV6_PREFIX", "PULSE_RATELIMIT_IPV6_PREFIX", 64, _prefix_length(16, 128),
            "Rate limits count IPv6 clients per network of this prefix length (16 to 128; 64 is one "
            "customer's network at most providers)."),
    Setting("PULSE_SUBMIT_LIMIT", "PULSE_SUBMIT_LIMIT", "20 per hour", str,
            "Flask-Limiter string for survey submissions per client network."),
    Setting("PULSE_SUBMIT_LIMIT_WIDE", "PULSE_SUBMIT_LIMIT_WIDE", "100 per hour", str,
            "Flask-Limiter string for survey submissions per wider network (IPv4 /16, IPv6 /48), beside "
            "PULSE_SUBMIT_LIMIT: one site holding many /64s or /24s cannot multiply its budget."),
    Setting("PULSE_MIN_FILL_SECONDS", "PULSE_MIN_FILL_SECONDS", 5.0, _seconds,
            "A form submitted sooner than this after it was served is refused (signed, never stored)."),
    Setting("PULSE_HTTPS", "PULSE_HTTPS", False, _bool,
            "Served over HTTPS: Secure `__Host-` cookies and HSTS. Keep false for plain HTTP on localhost."),
    Setting("PULSE_PROXY_HOPS", "PULSE_PROXY_HOPS", 0, int,
            "Number of trusted reverse proxies in front of Pulse (their X-Forwarded-For/-Proto are used)."),
    Setting("PULSE_MAX_CONTENT_LENGTH", "MAX_CONTENT_LENGTH", 64 * 1024, _positive_int,
            "Largest request body in bytes; larger ones get 413."),
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
