"""Cron schedules as Kubernetes' CronJob controller reads them (robfig/cron's standard parser),
shared by kubesim's CronJob controller and the jobs gateway's check of saved definitions.

Five fields (minute, hour, day of month, month, day of week) with ``*``, ``?``, ranges
``a-b``, steps ``*/n`` and ``a-b/n``, lists, month and weekday names (``jan``, ``mon``;
``7`` is Sunday too), and the macros ``@yearly``/``@annually``, ``@monthly``, ``@weekly``,
``@daily``/``@midnight``, ``@hourly``. As upstream: when both day fields are restricted a time
matches either (``0 0 1 * mon`` is the 1st and every Monday); ``TZ=``/``CRON_TZ=`` prefixes are
refused (the CronJob's ``spec.timeZone`` says the zone). Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Schedule", "parse_schedule", "zone"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {
    m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())
}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# (name, low, high, names)
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# Searching further than this finds nothing (e.g. "0 0 30 2 *"): robfig gives up after 5 years.
_SEARCH_YEARS = 5


class CronError(ValueError):
    """The schedule does not parse; the message says which field and why."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool
    weekdays_star: bool

    def matches(self, t: dt.datetime) -> bool:
        """``t`` (wall time in the schedule's zone) is a firing time, to the minute."""
        if t.minute not in self.minutes or t.hour not in self.hours or t.month not in self.months:
            return False
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def next_after(self, after: dt.datetime, tz: dt.tzinfo) -> dt.datetime | None:
        """The first firing time strictly after ``after`` (aware), as an aware UTC time;
        ``None`` when the schedule never fires (a 30th of February)."""
        local = after.astimezone(tz).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        end = local + dt.timedelta(days=366 * _SEARCH_YEARS)
        t = local.replace(tzinfo=None)
        while t < end.replace(tzinfo=None):
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += dt.timedelta(minutes=1)
                continue
            aware = t.replace(tzinfo=tz)
            # A wall time skipped by a DST jump does not exist: round trip through UTC shows it.
            if aware.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) == t:
                result = aware.astimezone(dt.UTC)
                if result > after:
                    return result
            t += dt.timedelta(minutes=1)
        return None

    def _day_matches(self, t: dt.datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow


def zone(name: str | None) -> dt.tzinfo:
    """The zone a CronJob's ``spec.timeZone`` names (UTC when unset); ``CronError`` for a
    name outside the tz database (upstream refuses ``Local`` too)."""
    if name is None:
        return dt.UTC
    if not name or name == "Local" or name.strip() != name:
        raise CronError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r}") from None


def parse_schedule(text: str) -> Schedule:
    if not isinstance(text, str) or not text.strip():
        raise CronError("empty schedule")
    text = text.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if text.startswith("@"):
        if text not in MACROS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = MACROS[text]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {text}")
    sets = [_field(p, *f) for p, f in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Schedule(
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=weekdays,
        days_star=parts[2] in ("*", "?"),
        weekdays_star=parts[4] in ("*", "?"),
    )


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            step = _number(step_text, name, names={})
            if step <= 0:
                raise CronError(f"{name}: step of range should be a positive number: {part}")
        if rng in ("*", "?"):
            lo, hi = low, high
            if name == "day of week":
                hi = 6
        elif "-" in rng:
            a, _, b = rng.partition("-")
            lo, hi = _number(a, name, names), _number(b, name, names)
        else:
            lo = _number(rng, name, names)
            hi = high if step_text else lo
        if lo < low or hi > high:
            raise CronError(f"{name}: {part} is out of range {low}-{high}")
        if lo > hi:
            raise CronError(f"{name}: beginning of range ({lo}) beyond end of range ({hi}): {part}")
        out.update(range(lo, hi + 1, step))
    return frozenset(out)


def _number(text: str, name: str, names: dict[str, int]) -> int:
    low = text.lower()
    if low in names:
        return names[low]
    if not text.isdigit():
        raise CronError(f"{name}: failed to parse int from {text!r}")
    return int(text)
