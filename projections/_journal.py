"""The `step_journal` projection: one row per (run, step).

- StepCompleted: status `completed`, its attempt, result and start time; the
  error of an earlier failed attempt is cleared; `completed_at` = recorded time.
- StepFailed: status `failed`, attempt, error; `completed_at` only when `final`.
- RetryScheduled: status `retrying` and the attempt that is due (error kept).
- StepSuspended: status `suspended` (an agent step waits for its tool results) and
  the attempt that suspended; its next round's completion overwrites it.
- CompensationCompleted / CompensationFailed: a row of its own, step id
  `"<step>:compensate"`, status `completed` / `failed`, so the step's own row
  keeps its result and the journal shows the compensation as a step of its own.

Writing: events are folded per (run, step) into column -> last value, then one
INSERT ... ON CONFLICT DO UPDATE per set of columns (usually one per append).
`first_position` (the position of the step's first event, the journal's order)
is written by the INSERT only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from ledgerflow.domain import events as ev
from ledgerflow.eventstore.backend import Backend, Batch, Position
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.projections._base import BatchProjection, Tables
from ledgerflow.projections._schema import step_journal

COMPENSATE_SUFFIX = ":compensate"
"""Step id suffix of a compensation's journal row."""

Row = dict[str, Any]
Key = tuple[str, str]


def _completed(e: ev.StepCompleted, r: RecordedEvent) -> tuple[str, Row]:
    return e.step_id, {"status": "completed", "attempt": e.attempt, "result": e.result,
                       "error": None, "started_at": e.started_at,
                       "completed_at": r.recorded_at}


def _failed(e: ev.StepFailed, r: RecordedEvent) -> tuple[str, Row]:
    return e.step_id, {"status": "failed", "attempt": e.attempt, "result": None,
                       "error": e.error.model_dump(mode="json"), "started_at": e.started_at,
                       "completed_at": r.recorded_at if e.final else None}


def _suspended(e: ev.StepSuspended, r: RecordedEvent) -> tuple[str, Row]:
    return e.step_id, {"status": "suspended", "attempt": e.attempt, "result": None,
                       "error": None, "started_at": e.started_at, "completed_at": None}


def _retry(e: ev.RetryScheduled, r: RecordedEvent) -> tuple[str, Row]:
    return e.step_id, {"status": "retrying", "attempt": e.attempt}


def _compensated(e: ev.CompensationCompleted, r: RecordedEvent) -> tuple[str, Row]:
    return e.step_id + COMPENSATE_SUFFIX, {
        "status": "completed", "attempt": e.attempt, "result": e.result, "error": None,
        "completed_at": r.recorded_at}


def _compensation_failed(e: ev.CompensationFailed, r: RecordedEvent) -> tuple[str, Row]:
    return e.step_id + COMPENSATE_SUFFIX, {
        "status": "failed", "attempt": e.attempt, "result": None,
        "error": e.error.model_dump(mode="json"), "completed_at": r.recorded_at}


_HANDLERS: dict[type[ev.Event], Callable[[Any, RecordedEvent], tuple[str, Row]]] = {
    ev.StepCompleted: _completed,
    ev.StepFailed: _failed,
    ev.StepSuspended: _suspended,
    ev.RetryScheduled: _retry,
    ev.CompensationCompleted: _compensated,
    ev.CompensationFailed: _compensation_failed,
}


def fold(events: Sequence[RecordedEvent], staged: bool = False) -> dict[Key, Row]:
    """Fold step events per (run, step) into column -> last value; `staged`: the
    events' positions are not known yet (`first_position` is a `Position`)."""
    rows: dict[Key, Row] = {}
    handlers = _HANDLERS
    for recorded in events:
        handler = handlers.get(type(recorded.event))
        if handler is None:
            continue
        step_id, values = handler(recorded.event, recorded)
        key = (recorded.stream_id, step_id)
        row = rows.get(key)
        if row is None:
            values["first_position"] = (Position(recorded.event_id) if staged
                                        else recorded.position)
            rows[key] = values
        else:
            row.update(values)
    return rows


class StepJournal(BatchProjection):
    """The step journal projection (table `step_journal`)."""

    name = "step_journal"
    version = 1
    tables = (step_journal,)

    def batches(self, conn: Connection, events: Sequence[RecordedEvent],
                tables: Tables, staged: bool = False) -> list[Batch]:
        """What `apply` executes, in order: (statement, rows) pairs."""
        rows = fold(events, staged)
        if not rows:
            return []
        table = tables["step_journal"]
        groups: dict[tuple[str, ...], list[Row]] = {}
        for (run_id, step_id), values in rows.items():
            columns = tuple(sorted(values))
            groups.setdefault(columns, []).append(
                {**values, "run_id": run_id, "step_id": step_id})
        backend = backend_for(conn)
        return [(self._statements.get((backend, table.name, columns),
                                      partial(_upsert, table, backend, columns)), params)
                for columns, params in groups.items()]

    def staged_batches(self, conn: Connection, events: Sequence[RecordedEvent],
                       tables: Tables) -> list[Batch]:
        """`batches` for events whose positions are not known yet."""
        return self.batches(conn, events, tables, staged=True)


def _upsert(table: Table, backend: Backend, columns: tuple[str, ...]) -> Any:
    return backend.upsert(table, [table.c.run_id, table.c.step_id],
                          [name for name in columns if name != "first_position"])
