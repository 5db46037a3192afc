"""Times in a schedule: read as organisers type them, stored as Unix seconds UTC, shown in words.

Organisers give a time in PULSE_TIMEZONE ("2027-01-31 17:00", or ISO 8601 such as
"2027-01-31T17:00"; one with its own offset or "Z" means what it says). Pure: no clock is read
here (callers pass `now`), and nothing here knows Flask or the database.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from .domain_errors import Invalid

# What a time may look like: a date, optionally a time of day (seconds optional), optionally an
# offset. A bare date means the start of that day.
_FORMAT = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[ T](?P<time>\d{2}:\d{2}(?::\d{2})?)(?P<offset>Z|[+-]\d{2}:?\d{2})?)?$"
)
# The words that clear a time, on the command line and in the form.
CLEAR = ("none", "clear")


def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def parse(text: str, tz: dt.tzinfo, field: str) -> int:
    """Unix seconds (UTC) of a time typed in `tz`; Invalid naming `field` when it is not a time."""
    cleaned = " ".join(str(text).split())
    match = _FORMAT.match(cleaned)
    if match is None:
        raise Invalid("schedule_format", field=field, text=cleaned[:40])
    iso = match["date"] + ("T" + match["time"] if match["time"] else "T00:00") + (match["offset"] or "")
    try:
        moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:  # 2027-02-30, 25:00
        raise Invalid("schedule_format", field=field, text=cleaned[:40]) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return int(moment.timestamp())


def check(opens: int | None, closes: int | None, now: float) -> None:
    """A schedule's times must lie ahead (a time already past would act at once: that is opening or
    closing now, which organisers do directly), and a close must come after the opening."""
    for field, value in (("opens", opens), ("closes", closes)):
        if value is not None and value <= now:
            raise Invalid("schedule_past", field=field)
    if opens is not None and closes is not None and closes <= opens:
        raise Invalid("schedule_order")


def iso_utc(seconds: int | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the API gives it ("2027-01-31T16:00:00Z"); None stays None."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def local(seconds: int, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz)


def day(seconds: int, tz: dt.tzinfo, now: float | None = None) -> str:
    """The day in words, "31 January" (with the year when it is not this year's)."""
    moment = local(seconds, tz)
    text = f"{moment.day} {moment:%B}"
    if now is None or local(int(now), tz).year != moment.year:
        text += f" {moment.year}"
    return text


def when(seconds: int, tz: dt.tzinfo, now: float | None = None) -> str:
    """The day and the time of day in words, "31 January, 17:00 CET"."""
    moment = local(seconds, tz)
    return f"{day(seconds, tz, now)}, {moment:%H:%M} {moment.tzname()}"


def form_value(seconds: int | None, tz: dt.tzinfo) -> str:
    """What a form field shows for a stored time: "2027-01-31 17:00" in `tz`; "" for none."""
    return "" if seconds is None else f"{local(seconds, tz):%Y-%m-%d %H:%M}"
