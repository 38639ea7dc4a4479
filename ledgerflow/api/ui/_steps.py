"""The step journal's bars: each attempt of each step laid on one time axis that runs
from the run's creation to its last known moment (`bars`). Attempts come from the
history (`StepCompleted`, `StepFailed` and their compensation events); a step with
none drawn yet shows its journal entry (running: an open bar)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledgerflow.projections import COMPENSATE_SUFFIX, queries

ATTEMPT_EVENTS = {"StepCompleted": "ok", "StepFailed": "failed",
                  "CompensationCompleted": "undone", "CompensationFailed": "undo-failed"}
UNDO_SUFFIX = COMPENSATE_SUFFIX
"""The journal keeps a step's compensation as its own entry, `{step}:compensate`."""


@dataclass
class Segment:
    """One attempt of a step on the time axis (percent of the axis)."""

    attempt: int
    outcome: str  # ok | failed | open | undone | undo-failed
    start: datetime
    end: datetime
    left: float = 0.0
    width: float = 0.0

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass
class StepRow:
    """A journal entry with its attempts."""

    entry: queries.JournalEntry
    segments: list[Segment] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        e = self.entry
        if e.started_at is None or e.completed_at is None:
            return None
        return (e.completed_at - e.started_at).total_seconds()


def bars(run: queries.RunRecord, journal: list[queries.JournalEntry],
         history: list[queries.HistoryEntry]) -> tuple[list[StepRow], tuple[datetime, datetime]]:
    """The journal's rows with their attempts placed on the axis, and the axis."""
    steps = _steps(journal, history)
    axis = _axis(run, history, steps)
    for step in steps:
        for segment in step.segments:
            _place(segment, axis)
    return steps, axis


def _steps(journal: list[queries.JournalEntry],
           history: list[queries.HistoryEntry]) -> list[StepRow]:
    rows = {entry.step_id: StepRow(entry) for entry in journal}
    for event in history:
        outcome = ATTEMPT_EVENTS.get(event.type)
        step_id = str(event.data.get("step_id"))
        undo = f"{step_id}{UNDO_SUFFIX}"
        if event.type.startswith("Compensation") and undo in rows:
            step_id = undo
        row = rows.get(step_id)
        if outcome is None or row is None:
            continue
        start = _moment(event.data.get("started_at")) or event.recorded_at
        row.segments.append(Segment(int(event.data.get("attempt", 1)), outcome, start,
                                    event.recorded_at))
    for row in rows.values():
        e = row.entry
        if not row.segments and e.started_at is not None:
            end = e.completed_at
            row.segments.append(Segment(e.attempt, "ok" if end else "open", e.started_at,
                                        end or e.started_at))
    return list(rows.values())


def _axis(run: queries.RunRecord, history: list[queries.HistoryEntry],
          steps: list[StepRow]) -> tuple[datetime, datetime]:
    start = run.created_at
    ends = [run.updated_at, *(h.recorded_at for h in history[-1:])]
    ends += [s.end for row in steps for s in row.segments]
    starts = [s.start for row in steps for s in row.segments]
    return min([start, *starts]), max(ends)


def _place(segment: Segment, axis: tuple[datetime, datetime]) -> None:
    span = max((axis[1] - axis[0]).total_seconds(), 1e-6)
    left = (segment.start - axis[0]).total_seconds() / span * 100
    segment.left = round(min(max(left, 0.0), 100.0), 2)
    width = segment.seconds / span * 100
    segment.width = round(min(max(width, 0.6), 100.0 - segment.left), 2)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
