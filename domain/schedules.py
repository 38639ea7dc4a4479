"""Schedules, pure: what a schedule is, its events, its state (a fold) and what is due.

A schedule's stream is `schedule:{id}`; its events are the schedule's whole life:
ScheduleCreated (the spec, and `since`: fire times after it are due),
ScheduleUpdated (a new spec, as a `@workflow(schedule=...)` declaration changed),
SchedulePaused, ScheduleResumed (`since`: fires while paused are not caught up),
ScheduleFired (a fire time and the run it started; `manual` for a trigger),
ScheduleBuffered (a fire time kept to start once the previous run ends: `buffer_one`),
ScheduleSkipped (a range of fire times that started nothing: `missed` beyond the
catch-up window, or `overlap` while the previous run was still going) and
ScheduleDeleted. `decide_due` says which of these a scheduler appends at a moment;
the runtime (`ledgerflow.runtime.schedules`) appends them with the version it folded,
so two servers deciding the same fire conflict and only one run starts.

Fire times: a cron expression in the schedule's time zone (`domain.cron`), or every
`every_seconds` seconds counted from the Unix epoch (so `every_seconds=5` fires at
:00, :05, ... whoever created the schedule and when).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import singledispatch
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ledgerflow.domain.cron import Cron, CronError, zone
from ledgerflow.domain.errors import InvalidRequest
from ledgerflow.domain.events import JSON, Event, register

Overlap = Literal["skip", "buffer_one", "allow"]
OVERLAPS: tuple[str, ...] = ("skip", "buffer_one", "allow")
DEFAULT_CATCHUP_SECONDS = 60
MAX_SCHEDULE_ID = 150  # a run id is `{id}@{fire time}`, at most 200 characters
MAX_FIRES = 100
"""At most this many runs start per decision (a long catch-up window with `allow`
continues at the next one)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stream_id(schedule_id: str) -> str:
    """The stream holding the schedule's events."""
    return f"schedule:{schedule_id}"


def run_id(schedule_id: str, fire_time: datetime) -> str:
    """The run a fire time starts: `{schedule id}@{fire time, RFC 3339 UTC}`."""
    moment = fire_time.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return f"{schedule_id}@{text}Z"


class ScheduleSpec(BaseModel):
    """What a schedule starts and when: a cron expression in `timezone`, or every
    `every_seconds` seconds; `overlap` says what a fire does while the previous run
    still goes; fires missed for longer than `catchup_window_seconds` are skipped."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    workflow_id: str
    input: JSON = None
    cron: str | None = None
    every_seconds: int | None = None
    timezone: str = "UTC"
    overlap: Overlap = "skip"
    catchup_window_seconds: int = DEFAULT_CATCHUP_SECONDS

    def check(self) -> ScheduleSpec:
        """Self, or `InvalidRequest` saying what is wrong."""
        if (self.cron is None) == (self.every_seconds is None):
            raise InvalidRequest("a schedule needs exactly one of cron and everySeconds, "
                                 f"got {'both' if self.cron is not None else 'neither'}")
        if self.every_seconds is not None and self.every_seconds < 1:
            raise InvalidRequest(f"everySeconds must be at least 1, got {self.every_seconds}")
        if self.catchup_window_seconds < 0:
            raise InvalidRequest("catchupWindowSeconds must not be negative, got "
                                 f"{self.catchup_window_seconds}")
        if self.overlap not in OVERLAPS:
            raise InvalidRequest(f"overlap must be one of {', '.join(OVERLAPS)}")
        try:
            zone(self.timezone)
            if self.cron is not None:
                Cron.parse(self.cron)
        except CronError as error:
            raise InvalidRequest(str(error)) from None
        return self

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after `moment`, in UTC."""
        if self.every_seconds is not None:
            step = timedelta(seconds=self.every_seconds)
            return _EPOCH + ((moment - _EPOCH) // step + 1) * step
        assert self.cron is not None
        return _parsed(self.cron).next_after(moment, zone(self.timezone))

    def fire_times(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """The fire times in (after, until], in order."""
        moment = self.next_after(after)
        while moment <= until:
            yield moment
            moment = self.next_after(moment)

    def count_between(self, after: datetime, until: datetime) -> tuple[int, datetime | None]:
        """How many fire times fall in (after, until], and the last of them."""
        if self.every_seconds is not None:
            step = timedelta(seconds=self.every_seconds)
            count = max((until - _EPOCH) // step - (after - _EPOCH) // step, 0)
            return count, (_EPOCH + ((until - _EPOCH) // step) * step) if count else None
        count, last = 0, None
        for last in self.fire_times(after, until):  # noqa: B007 (the last one is kept)
            count += 1
        return count, last


_CRONS: dict[str, Cron] = {}


def _parsed(text: str) -> Cron:
    found = _CRONS.get(text)
    if found is None:
        found = _CRONS[text] = Cron.parse(text)
    return found


# ----------------------------------------------------------------------- events


@register
class ScheduleCreated(Event):
    schedule_id: str
    spec: ScheduleSpec
    paused: bool = False
    since: datetime


@register
class ScheduleUpdated(Event):
    spec: ScheduleSpec


@register
class SchedulePaused(Event):
    pass


@register
class ScheduleResumed(Event):
    since: datetime


@register
class ScheduleFired(Event):
    fire_time: datetime
    run_id: str
    manual: bool = False
    buffered: bool = False


@register
class ScheduleBuffered(Event):
    fire_time: datetime


@register
class ScheduleSkipped(Event):
    reason: Literal["missed", "overlap"]
    first: datetime
    last: datetime
    count: int


@register
class ScheduleDeleted(Event):
    pass


# ------------------------------------------------------------------------ state


class ScheduleState(BaseModel):
    """A schedule folded from its stream (`evolve`); kept as a snapshot beside it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schedule_id: str
    spec: ScheduleSpec | None = None
    paused: bool = False
    deleted: bool = False
    cursor: datetime | None = None
    """Fire times up to this one are decided (fired, buffered or skipped)."""
    buffered: datetime | None = None
    last_fire_time: datetime | None = None
    last_run_id: str | None = None
    fired: int = 0
    skipped: int = 0
    version: int = 0

    @property
    def exists(self) -> bool:
        return self.spec is not None and not self.deleted

    def next_fire(self) -> datetime | None:
        """The next fire time to decide (it may be past: then it is due); None when
        paused or deleted."""
        if not self.exists or self.paused or self.cursor is None:
            return None
        assert self.spec is not None
        return self.spec.next_after(self.cursor)

    def upcoming(self, now: datetime, count: int) -> list[datetime]:
        """The next `count` fire times from now (the first may be due already)."""
        first = self.next_fire()
        if first is None:
            return []
        assert self.spec is not None
        times = [first]
        while len(times) < count:
            times.append(self.spec.next_after(max(times[-1], now)))
        return times


@singledispatch
def _apply(event: Event, state: ScheduleState) -> dict[str, object]:
    raise TypeError(f"{type(event).__name__} is not a schedule event")


@_apply.register
def _(event: ScheduleCreated, state: ScheduleState) -> dict[str, object]:
    return {"spec": event.spec, "paused": event.paused, "deleted": False,
            "cursor": event.since, "buffered": None}


@_apply.register
def _(event: ScheduleUpdated, state: ScheduleState) -> dict[str, object]:
    return {"spec": event.spec}


@_apply.register
def _(event: SchedulePaused, state: ScheduleState) -> dict[str, object]:
    return {"paused": True}


@_apply.register
def _(event: ScheduleResumed, state: ScheduleState) -> dict[str, object]:
    return {"paused": False, "cursor": max(event.since, state.cursor or event.since)}


@_apply.register
def _(event: ScheduleFired, state: ScheduleState) -> dict[str, object]:
    change: dict[str, object] = {"last_run_id": event.run_id, "fired": state.fired + 1,
                                 "last_fire_time": event.fire_time}
    if event.buffered:
        change["buffered"] = None
    elif not event.manual:
        change["cursor"] = event.fire_time
    return change


@_apply.register
def _(event: ScheduleBuffered, state: ScheduleState) -> dict[str, object]:
    return {"buffered": event.fire_time, "cursor": event.fire_time}


@_apply.register
def _(event: ScheduleSkipped, state: ScheduleState) -> dict[str, object]:
    cursor = event.last if state.cursor is None else max(state.cursor, event.last)
    return {"cursor": cursor, "skipped": state.skipped + event.count}


@_apply.register
def _(event: ScheduleDeleted, state: ScheduleState) -> dict[str, object]:
    return {"deleted": True, "buffered": None}


def evolve(state: ScheduleState, event: Event) -> ScheduleState:
    """The state after `event` (one more version)."""
    change = _apply(event, state)
    change["version"] = state.version + 1
    return state.model_copy(update=change)


def fold(schedule_id: str, events: list[Event]) -> ScheduleState:
    state = ScheduleState(schedule_id=schedule_id)
    for event in events:
        state = evolve(state, event)
    return state


# ----------------------------------------------------------------------- decide


def decide_due(state: ScheduleState, now: datetime, previous_running: bool) -> list[Event]:
    """What is due at `now`: the fires since the cursor (at most `MAX_FIRES` runs).

    Fires older than the catch-up window are skipped (`missed`, one event for the
    range). The others start a run each, unless a run of the schedule is still going
    (`previous_running`, or one this decision starts): then `skip` skips the fire
    (`overlap`), `buffer_one` keeps the first (started once the previous run ends, a
    later decision) and skips the rest, `allow` starts it anyway."""
    if not state.exists or state.paused or state.cursor is None:
        return []
    spec = state.spec
    assert spec is not None
    decided: list[Event] = []
    running, buffered = previous_running, state.buffered
    if buffered is not None and not running:
        decided.append(ScheduleFired(fire_time=buffered, run_id=run_id(state.schedule_id,
                                                                        buffered),
                                     buffered=True))
        running, buffered = True, None
    window = now - timedelta(seconds=spec.catchup_window_seconds)
    cursor = state.cursor
    if cursor < window:
        count, last = spec.count_between(cursor, window - timedelta(microseconds=1))
        if count and last is not None:
            decided.append(ScheduleSkipped(reason="missed", first=spec.next_after(cursor),
                                           last=last, count=count))
            cursor = last
    overlapped: list[datetime] = []
    started = 0
    for fire_time in spec.fire_times(cursor, now):
        if not running or spec.overlap == "allow":
            if started == MAX_FIRES:
                break
            decided.append(ScheduleFired(fire_time=fire_time,
                                         run_id=run_id(state.schedule_id, fire_time)))
            running, started = True, started + 1
        elif spec.overlap == "buffer_one" and buffered is None:
            decided.append(ScheduleBuffered(fire_time=fire_time))
            buffered = fire_time
        else:
            overlapped.append(fire_time)
    if overlapped:
        decided.append(ScheduleSkipped(reason="overlap", first=overlapped[0],
                                       last=overlapped[-1], count=len(overlapped)))
    return decided
