"""Cron expressions and their fire times in a time zone, daylight-saving correct. Pure.

Five fields, `minute hour day-of-month month day-of-week`, each `*`, a number, a
range `a-b`, a step `*/n` or `a-b/n`, or a comma list of those; months and weekdays
also by name (`jan`, `mon`); weekday 0 and 7 are Sunday. Day-of-month and
day-of-week both restricted: a day matching either fires (classic cron). Macros:
`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.

An expression names wall-clock times in its time zone. Where daylight saving moves
the clock, the fire times are decided as cron does it:

- clocks go forward (a wall time that does not exist that day): an expression with a
  fixed hour fires once, at the instant the clocks jump (`30 2 * * *` in Europe/Paris
  on the last Sunday of March fires at 03:00 CEST, 01:00 UTC); an expression firing
  every hour (`*` hour field) just has no fire in the missing hour;
- clocks go back (a wall time that happens twice): a fixed hour fires once, at the
  first occurrence; every hour (`*` hour field) fires at both, an hour apart.

Every instant returned is an aware UTC `datetime`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31),
           ("month", 1, 12), ("day of week", 0, 7))
_MONTHS = {name: i + 1 for i, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_WEEKDAYS = {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
_SEARCH_YEARS = 8  # a day that exists at all (29 February) comes within 8 years
_SHIFT = timedelta(hours=3)  # more than any daylight-saving shift of the clock


class CronError(ValueError):
    """An expression or time zone that cannot be used; the message says why."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (`Europe/Paris`), or `CronError` saying it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r} (an IANA name such as "
                        "'Europe/Paris' or 'UTC')") from None


def _value(text: str, names: dict[str, int], field: str) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise CronError(f"{field} field: {text!r} is not a number")
    return int(text)


def _field(text: str, index: int) -> frozenset[int]:
    field, low, high = _FIELDS[index]
    names = _MONTHS if index == 3 else _WEEKDAYS if index == 4 else {}
    found: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{field} field: step {step_text!r} is not a positive number")
            step = int(step_text)
        if span == "*":
            first, last = low, high if index != 4 else 6
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _value(a, names, field), _value(b, names, field)
        else:
            first = last = _value(span, names, field)
            if step_text:
                last = high
        for number in (first, last):
            if not low <= number <= high:
                raise CronError(f"{field} field: {number} is out of range {low}-{high}")
        if first > last:
            raise CronError(f"{field} field: range {span!r} runs backwards")
        found.update(range(first, last + 1, step))
    if index == 4 and 7 in found:
        found = (found - {7}) | {0}
    return frozenset(found)


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression (`Cron.parse`); `next_after` gives its fire times."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool
    every_hour: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        """The expression, or `CronError` saying what is wrong with it."""
        if not isinstance(text, str) or not text.strip():
            raise CronError("a cron expression needs five fields: "
                            "minute hour day-of-month month day-of-week")
        expanded = _MACROS.get(text.strip().lower(), text)
        fields = expanded.split()
        if len(fields) != 5:
            raise CronError(f"cron expression {text!r} has {len(fields)} field(s), not five "
                            "(minute hour day-of-month month day-of-week)")
        sets = [_field(f, i) for i, f in enumerate(fields)]
        cron = cls(text.strip(), tuple(sorted(sets[0])), tuple(sorted(sets[1])), sets[2],
                   sets[3], sets[4], fields[2] == "*", fields[4] == "*", fields[1] == "*")
        if not any(cron._day_matches(date(2000, 1, 1) + timedelta(days=d))
                   for d in range(366 * _SEARCH_YEARS)):
            raise CronError(f"cron expression {text!r} never fires (no such day)")
        return cron

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month, in_week = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first fire time strictly after `after` (aware), in UTC."""
        best: datetime | None = None
        horizon: datetime | None = None
        start = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
        if _shifts(tz, after - _SHIFT, after):  # wall order may differ from time order
            start -= _SHIFT
        day = start.date()
        for _ in range(366 * _SEARCH_YEARS + 2):
            if self._day_matches(day):
                for hour, minute in self._times(day, start):
                    wall = datetime(day.year, day.month, day.day, hour, minute)
                    if best is not None and horizon is not None and wall > horizon:
                        return best
                    for instant in self._instants(wall, tz):
                        if instant > after and (best is None or instant < best):
                            best = instant
                            horizon = wall + _SHIFT if _shifts(tz, after, instant) else wall
            day += timedelta(days=1)
        if best is None:
            raise CronError(f"cron expression {self.text!r} does not fire after {after}")
        return best

    def _times(self, day: date, start: datetime) -> Iterator[tuple[int, int]]:
        """(hour, minute) of the day's fire times, from `start` on if it is that day."""
        first_day = day == start.date()
        for hour in self.hours[bisect_left(self.hours, start.hour) if first_day else 0:]:
            skip = first_day and hour == start.hour
            for minute in self.minutes[bisect_left(self.minutes, start.minute) if skip else 0:]:
                yield hour, minute

    def _instants(self, wall: datetime, tz: ZoneInfo) -> list[datetime]:
        """The instants at which wall time `wall` fires (see the module)."""
        first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first.astimezone(tz).replace(tzinfo=None) == wall:  # happens twice
            return [first, second] if self.every_hour else [first]
        return [] if self.every_hour else [_jump(second, first, tz)]  # does not exist


def _shifts(tz: ZoneInfo, a: datetime, b: datetime) -> bool:
    """Whether the UTC offset of `tz` changes between `a` and a while after `b`."""
    return a.astimezone(tz).utcoffset() != (b + _SHIFT).astimezone(tz).utcoffset()


def _jump(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The instant in (low, high] at which the offset of `tz` changes (to the second)."""
    before = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)
