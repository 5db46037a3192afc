"""Times in a schedule: read as organisers type them, stored as Unix seconds UTC, shown in words.

Organisers give a time in PULSE_TIMEZONE ("2027-01-31 17:00", or ISO 8601 such as
"2027-01-31T17:00"; one with its own offset or "Z" means what it says). Pure: no clock is read
here (callers pass `now`), and nothing here knows Flask or the database.

Where the clocks change, a local time may not exist (02:30 on the night they go forward) or
happen twice (02:30 on the night they go back). Neither is guessed: the first is refused, the
second is refused without its offset ("2027-10-31 02:30+01:00"). A stored time in such an hour is
shown in a form with its offset, so a form saved unchanged keeps the instant.
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
# How far ahead a schedule reaches: three years (1,096 days). A time further ahead is a typo in
# the year (2207 for 2027) sooner than a plan, and near year 9999 one no calendar could show.
MAX_AHEAD_SECONDS = 1096 * 86400
# What can be shown: a time outside these (stored before times were bounded, or written into the
# database by hand) is shown as the nearest of them. A day inside year 1 and year 9999, so that
# every zone's offset (under a day) still gives a date the calendar holds.
_FIRST = int(dt.datetime(1, 1, 2, tzinfo=dt.timezone.utc).timestamp())
_LAST = int(dt.datetime(9999, 12, 30, tzinfo=dt.timezone.utc).timestamp())


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
        _exists_once(moment, tz, field, cleaned[:40])
        moment = moment.replace(tzinfo=tz)
    return int(moment.timestamp())


def _exists_once(wall: dt.datetime, tz: dt.tzinfo, field: str, text: str) -> None:
    """Refuse a local time the clocks skip or pass twice in `tz` (Invalid naming `field`).

    PEP 495: `fold=0` gives the offset before a change and `fold=1` the one after; they differ only
    at a change. The clocks going forward (a gap) raise the offset, going back (a fold) lower it.
    """
    before, after = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    offsets = before.utcoffset(), after.utcoffset()
    if offsets[0] is None or offsets[1] is None or offsets[0] == offsets[1]:
        return
    zone_name = getattr(tz, "key", str(tz))
    if offsets[0] < offsets[1]:
        raise Invalid("schedule_skipped", field=field, text=text, zone=zone_name)
    raise Invalid(
        "schedule_twice",
        field=field,
        text=text,
        zone=zone_name,
        first=(_offset(before), before.tzname()),
        second=(_offset(after), after.tzname()),
    )


def _offset(moment: dt.datetime) -> str:
    """Its UTC offset as a time may carry it: "+01:00"."""
    text = moment.strftime("%z")
    return f"{text[:3]}:{text[3:5]}"


def _twice(moment: dt.datetime) -> bool:
    """Whether the local time of day of this moment happens twice in its zone (the clocks went back)."""
    wall, tz = moment.replace(tzinfo=None), moment.tzinfo
    return wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset()


def check(opens: int | None, closes: int | None, now: float) -> None:
    """A schedule's times must lie ahead (a time already past would act at once: that is opening or
    closing now, which organisers do directly) but no more than MAX_AHEAD_SECONDS, and a close
    must come after the opening."""
    for field, value in (("opens", opens), ("closes", closes)):
        if value is not None and value <= now:
            raise Invalid("schedule_past", field=field)
        if value is not None and value > now + MAX_AHEAD_SECONDS:
            raise Invalid("schedule_far", field=field)
    if opens is not None and closes is not None and closes <= opens:
        raise Invalid("schedule_order")


def iso_utc(seconds: int | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the API gives it ("2027-01-31T16:00:00Z"); None stays None."""
    if seconds is None:
        return None
    # isoformat, not strftime: %Y drops the zeros of a year below 1000 on glibc.
    return local(seconds, dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def local(seconds: int, tz: dt.tzinfo) -> dt.datetime:
    """The moment in `tz`; one the calendar cannot hold is shown as the nearest it can (_LAST)."""
    return dt.datetime.fromtimestamp(min(max(seconds, _FIRST), _LAST), tz)


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
    """What a form field shows for a stored time: "2027-01-31 17:00" in `tz`; "" for none. In the
    hour the clocks pass twice, with its offset ("2027-10-31 02:30+01:00"): parse() reads it back as
    the same instant (without it, it would refuse the time as ambiguous)."""
    if seconds is None:
        return ""
    moment = local(seconds, tz)
    text = moment.replace(tzinfo=None).isoformat(" ", "minutes")
    return text + _offset(moment) if _twice(moment) else text


def listed(seconds: int, tz: dt.tzinfo) -> str:
    """A time as a table lists it: "2027-01-31 17:00 CET" (the zone's abbreviation tells the two
    02:30 of the night the clocks go back apart)."""
    moment = local(seconds, tz)
    return f"{moment.replace(tzinfo=None).isoformat(' ', 'minutes')} {moment.tzname()}"
