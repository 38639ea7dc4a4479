"""What the run detail page shows, gathered through the API's own reads: the run
record (`queries.find_run` with the caller's tenant, as `visible_run`), its history
and journal (`projections.queries`), its lineage
(`queries.list_runs` by `resumed_from` / `rerun_of`) and where each of its events
stands in the outbox (`outbox.delivery`). The step bars are laid on one time axis
that runs from the run's creation to its last known moment."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledgerflow import outbox
from ledgerflow._app import Ledgerflow
from ledgerflow.api._gate import Principal
from ledgerflow.projections import COMPENSATE_SUFFIX, queries

ATTEMPT_EVENTS = {"StepCompleted": "ok", "StepFailed": "failed",
                  "CompensationCompleted": "undone", "CompensationFailed": "undo-failed"}
LINEAGE_SHOWN = 20
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


@dataclass
class RunDetail:
    """Everything the detail page renders."""

    run: queries.RunRecord
    history: list[queries.HistoryEntry]
    steps: list[StepRow]
    delivery: dict[str, str]
    delivery_counts: dict[str, int]
    resumed_by: list[queries.RunRecord]
    reruns: list[queries.RunRecord]
    axis: tuple[datetime, datetime]


def gather(lf: Ledgerflow, who: Principal, run_id: str) -> RunDetail:
    """The detail of the run `run_id` names (its id or a unique prefix), if the caller
    may see it (`UnknownRun` otherwise, as the API)."""
    with lf.db.connect() as conn:
        run = queries.find_run(conn, run_id, tenant_id=who.tenant)  # as `visible_run`
        history = queries.history(lf.store, run.run_id)
        journal = queries.get_journal(conn, run.run_id)
        delivery = outbox.delivery(conn, lf.settings.topic, [h.event_id for h in history])
        resumed_by, _ = queries.list_runs(conn, resumed_from=run.run_id, tenant_id=who.tenant,
                                          limit=LINEAGE_SHOWN)
        reruns, _ = queries.list_runs(conn, rerun_of=run.run_id, tenant_id=who.tenant,
                                      limit=LINEAGE_SHOWN)
    steps = _steps(journal, history)
    axis = _axis(run, history, steps)
    for step in steps:
        for segment in step.segments:
            _place(segment, axis)
    counts = Counter(delivery.values())
    counts["none"] = len(history) - len(delivery)
    return RunDetail(run, history, steps, delivery, dict(counts), resumed_by, reruns, axis)


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
