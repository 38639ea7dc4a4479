"""Schedules at run time: create, pause, resume, trigger, delete, read (`Schedules`).

A schedule is its stream `schedule:{id}` (events in `ledgerflow.domain.schedules`).
Beside it, in the same transaction as every append to it, the `schedules` table keeps
one row per live schedule: the folded state as JSON (a snapshot at the stream's
version, so nothing refolds a long stream), when it fires next and whether a fire is
buffered, which is what the scheduler (`runtime.scheduler`) looks up. Deleting a
schedule removes its row; its stream stays (the audit).

Every write reads the row locked (`lock_rows`), decides, appends with the version
the row holds (`expected_version`) and writes the row back: two writers of one
schedule wait for each other, and one that bypassed the lock would conflict
(`ConcurrencyError`) instead of writing twice. A fire's run (`{id}@{fire time}`,
tag `schedule:{id}`) is created in that same transaction with expected version 0,
so a run is never started twice for one fire time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text
from sqlalchemy.engine import Connection

from ledgerflow._authoring import WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain import schedules as sch
from ledgerflow.domain.errors import ConcurrencyError, InvalidRequest, UnknownSchedule
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.domain.wire import Timestamp, WireRecord, wire_record
from ledgerflow.eventstore.backend import Backend
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.migrations import POSTGRESQL, SQLITE, Migration
from ledgerflow.eventstore.records import NewEvent, RecordedEvent, StreamAppend, new_id
from ledgerflow.eventstore.schema import UTCDateTime, metadata
from ledgerflow.eventstore.store import Clock, EventStore, Transaction
from ledgerflow.projections.queries import HistoryEntry
from ledgerflow.runtime import _schedules_ddl, queue
from ledgerflow.runtime.listen import announce

log = logging.getLogger("ledgerflow.schedules")

schedule_index = Table(
    "schedules",
    metadata,
    Column("schedule_id", String(200), primary_key=True),
    Column("workflow_id", String(200), nullable=False),
    Column("paused", Boolean, nullable=False),
    Column("next_fire_at", UTCDateTime(), nullable=True),
    Column("buffered_at", UTCDateTime(), nullable=True),
    Column("last_run_id", String(200), nullable=True),
    Column("state", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("schedules_next_fire", "next_fire_at"),
)

MIGRATIONS: list[Migration] = [
    Migration("schedules", 1, "the schedules' index",
              {POSTGRESQL: _schedules_ddl.V1_POSTGRESQL, SQLITE: _schedules_ddl.V1_SQLITE}),
]
"""The schedules' migrations (component "schedules")."""

_s = schedule_index.c
_ID = re.compile(r"^[^\x00-\x1f\x7f]+$")
UPCOMING = 5
"""Fire times a schedule record lists."""
RETRIES = 5


@wire_record
@dataclass(frozen=True, slots=True)
class ScheduleRecord(WireRecord):
    """A schedule as `GET /api/schedules` shows it: its spec, whether it is paused,
    its next fire times (the first may be due now), the last fire and its run, a fire
    kept for when the running run ends (`bufferedFireTime`), how many fires started a
    run and how many were skipped, its stream version; `history` (the detail only):
    the schedule's events, the latest last."""

    schedule_id: str
    workflow_id: str
    input: Any
    cron: str | None
    every_seconds: int | None
    timezone: str
    overlap: str
    catchup_window_seconds: int
    paused: bool
    next_fire_times: list[Timestamp]
    last_fire_time: Timestamp | None
    last_run_id: str | None
    buffered_fire_time: Timestamp | None
    fired: int
    skipped: int
    version: int
    created_at: Timestamp
    updated_at: Timestamp
    history: list[HistoryEntry] | None = None

    @classmethod
    def of(cls, state: sch.ScheduleState, created: datetime, updated: datetime,
           now: datetime, history: list[HistoryEntry] | None = None) -> ScheduleRecord:
        spec = state.spec
        assert spec is not None
        return cls(state.schedule_id, spec.workflow_id, spec.input, spec.cron,
                   spec.every_seconds, spec.timezone, spec.overlap,
                   spec.catchup_window_seconds, state.paused, state.upcoming(now, UPCOMING),
                   state.last_fire_time, state.last_run_id, state.buffered, state.fired,
                   state.skipped, state.version, created, updated, history)


@dataclass(frozen=True)
class Row:
    """A `schedules` row: the snapshot and when the schedule was created."""

    state: sch.ScheduleState
    created_at: datetime
    updated_at: datetime


def read_row(conn: Connection, schedule_id: str, lock: bool = False) -> Row | None:
    query = sa.select(_s.state, _s.created_at, _s.updated_at).where(
        _s.schedule_id == schedule_id)
    if lock:
        query = backend_for(conn).lock_rows(query)
    row = conn.execute(query).first()
    if row is None:
        return None
    return Row(sch.ScheduleState.model_validate_json(row[0]), row[1], row[2])


def write(tx: Transaction, state: sch.ScheduleState, events: list[ev.Event],
          created: datetime | None, now: datetime, registry: WorkflowRegistry,
          actor: str | None = None, skip_runs: Collection[str] = (),
          appends: list[StreamAppend] | None = None) -> sch.ScheduleState:
    """Append `events` to the schedule's stream (expected: `state.version`), start the
    runs its ScheduleFired events name (of the workflow's latest version in
    `registry`; not those of `skip_runs`, which exist), and write the row; the state
    after them. With `appends`, the appends are added to it instead, for the caller to
    append together (one statement for a scheduler's batch)."""
    collected: list[StreamAppend] = [] if appends is None else appends
    new = state
    for event in events:
        new = sch.evolve(new, event)
    meta = {"actor": actor} if actor else {}
    collected.append(StreamAppend(sch.stream_id(state.schedule_id),
                                  [NewEvent(e, new_id(), dict(meta)) for e in events],
                                  state.version))
    fired = [e for e in events if isinstance(e, sch.ScheduleFired) and e.run_id not in skip_runs]
    if fired:
        assert new.spec is not None
        definition = registry.get(new.spec.workflow_id)
        collected += _start_runs(tx, new, fired, now, definition.version, definition.queue)
    if new.deleted:
        tx.defer(schedule_index.delete().where(_s.schedule_id == sa.bindparam("sid")),
                 [{"sid": state.schedule_id}])
    else:
        _upsert_row(tx, new, created or now, now)
    if appends is None:
        tx.append_deferred(*collected)
    return new


def _upsert_row(tx: Transaction, state: sch.ScheduleState, created: datetime,
                now: datetime) -> None:
    spec = state.spec
    assert spec is not None
    row = {"schedule_id": state.schedule_id, "workflow_id": spec.workflow_id,
           "paused": state.paused, "next_fire_at": state.next_fire(),
           "buffered_at": state.buffered, "last_run_id": state.last_run_id,
           "state": state.model_dump_json(), "version": state.version,
           "created_at": created, "updated_at": now}
    tx.defer(_upsert_statement(tx.store.backend), [row])


_UPSERTS: dict[Backend, sa.Insert] = {}


def _upsert_statement(backend: Backend) -> sa.Insert:
    """The row's upsert, built once per backend (so compiled once)."""
    found = _UPSERTS.get(backend)
    if found is None:
        columns = [c.name for c in schedule_index.columns if c.name != "schedule_id"]
        found = _UPSERTS[backend] = backend.upsert(schedule_index, [_s.schedule_id], columns)
    return found


def _start_runs(tx: Transaction, state: sch.ScheduleState, fired: list[sch.ScheduleFired],
                now: datetime, version: str, queue_name: str) -> list[StreamAppend]:
    """Each fire's run (expected version 0: a run id is started once) and its queue row,
    in the workflow's queue."""
    spec = state.spec
    assert spec is not None
    tag = f"schedule:{state.schedule_id}"
    runs = []
    for fire in fired:
        created = ev.RunCreated(workflow_id=spec.workflow_id, workflow_version=version,
                                input=spec.input, tags=[tag], queue=queue_name)
        meta = run_metadata(spec.workflow_id, version, correlation_id=fire.run_id, actor=tag)
        runs.append(StreamAppend(fire.run_id, [NewEvent(created, new_id(), meta)], 0))
        queue.enqueue(tx, fire.run_id, spec.workflow_id, 0, now, now, queue=queue_name)
    announce(tx, tag)
    return runs


class Schedules:
    """The schedules of one store: the commands and queries on them."""

    def __init__(self, store: EventStore, registry: WorkflowRegistry, clock: Clock) -> None:
        self.store, self.registry, self.clock = store, registry, clock
        self.listeners: list[Callable[[], None]] = []
        """Called after a change commits (a worker and a scheduler in this process)."""

    def notify(self) -> None:
        for listener in self.listeners:
            listener()

    # ------------------------------------------------------------------- commands

    def create(self, schedule_id: str, spec: sch.ScheduleSpec, *, paused: bool = False,
               actor: str | None = None) -> tuple[ScheduleRecord, bool]:
        """Create the schedule; the same spec again returns it unchanged (False), another
        spec for a live schedule is `ScheduleExists`."""
        self._check(schedule_id, spec)

        def decide(state: sch.ScheduleState, now: datetime) -> list[ev.Event]:
            if state.exists:
                if state.spec == spec:
                    return []
                raise ScheduleExists(schedule_id)
            return [sch.ScheduleCreated(schedule_id=schedule_id, spec=spec, paused=paused,
                                        since=now)]

        changed = self._command(schedule_id, decide, actor, may_create=True)[1]
        return self.get(schedule_id), changed

    def upsert(self, schedule_id: str, spec: sch.ScheduleSpec) -> bool:
        """A declared schedule (`@workflow(schedule=...)`): created, updated to `spec`,
        or left as it is when it has that spec already; whether anything changed."""
        self._check(schedule_id, spec)

        def decide(state: sch.ScheduleState, now: datetime) -> list[ev.Event]:
            if not state.exists:
                return [sch.ScheduleCreated(schedule_id=schedule_id, spec=spec, since=now)]
            return [] if state.spec == spec else [sch.ScheduleUpdated(spec=spec)]

        return self._command(schedule_id, decide, "declaration", may_create=True)[1]

    def update(self, schedule_id: str, spec: sch.ScheduleSpec,
               actor: str | None = None) -> tuple[ScheduleRecord, bool]:
        """Change a live schedule's spec (`ScheduleUpdated`; the same spec changes
        nothing); fires follow the new spec from its last fire on. Paused stays paused."""
        self._check(schedule_id, spec)
        changed = self._command(schedule_id, lambda state, now: [] if state.spec == spec
                                else [sch.ScheduleUpdated(spec=spec)], actor)[1]
        return self.get(schedule_id), changed

    def pause(self, schedule_id: str, actor: str | None = None) -> ScheduleRecord:
        """No fires until resumed (pausing a paused schedule changes nothing)."""
        self._command(schedule_id, lambda s, now: [] if s.paused else [sch.SchedulePaused()],
                      actor)
        return self.get(schedule_id)

    def resume(self, schedule_id: str, actor: str | None = None) -> ScheduleRecord:
        """Fire again, from now on: fires while paused are not caught up."""
        self._command(schedule_id, lambda s, now: [sch.ScheduleResumed(since=now)]
                      if s.paused else [], actor)
        return self.get(schedule_id)

    def delete(self, schedule_id: str, actor: str | None = None) -> None:
        """No more fires; the stream (the schedule's history) stays."""
        self._command(schedule_id, lambda s, now: [sch.ScheduleDeleted()], actor)

    def trigger(self, schedule_id: str, actor: str | None = None) -> str:
        """Start a run now, paused or not and whatever the overlap policy; its run id."""
        fired: list[str] = []

        def decide(state: sch.ScheduleState, now: datetime) -> list[ev.Event]:
            fire = sch.ScheduleFired(fire_time=now, run_id=sch.run_id(schedule_id, now),
                                     manual=True)
            fired[:] = [fire.run_id]
            return [fire]

        self._command(schedule_id, decide, actor)
        return fired[0]

    def _check(self, schedule_id: str, spec: sch.ScheduleSpec) -> None:
        if not isinstance(schedule_id, str) or not schedule_id \
                or len(schedule_id) > sch.MAX_SCHEDULE_ID or not _ID.match(schedule_id):
            raise InvalidRequest(f"scheduleId must be 1 to {sch.MAX_SCHEDULE_ID} printable "
                                 f"characters, got {schedule_id!r}")
        spec.check()
        self.registry.get(spec.workflow_id).check_input(spec.input)

    def _command(self, schedule_id: str,
                 decide: Callable[[sch.ScheduleState, datetime], list[ev.Event]],
                 actor: str | None, may_create: bool = False) -> tuple[sch.ScheduleState, bool]:
        for attempt in range(RETRIES):
            try:
                with self.store.transaction() as tx:
                    now = self.clock()
                    row = read_row(tx.conn, schedule_id, lock=True)
                    state = row.state if row is not None else sch.ScheduleState(
                        schedule_id=schedule_id,
                        version=len(tx.read_stream(sch.stream_id(schedule_id))))
                    if not state.exists and not may_create:
                        raise UnknownSchedule(schedule_id)
                    events = decide(state, now)
                    if not events:
                        return state, False
                    new = write(tx, state, events, row.created_at if row else None, now,
                                self.registry, actor)
                self.notify()
                return new, True
            except ConcurrencyError:
                if attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def refold(self, schedule_id: str) -> sch.ScheduleState:
        """Rewrite the schedule's row from its whole stream (a row behind its stream,
        as nothing but a hand-made append leaves it, is set right)."""
        with self.store.transaction() as tx:
            row = read_row(tx.conn, schedule_id, lock=True)
            recorded = tx.read_stream(sch.stream_id(schedule_id))
            state = sch.fold(schedule_id, [r.event for r in recorded])
            now = self.clock()
            if not state.exists:
                tx.defer(schedule_index.delete().where(_s.schedule_id == sa.bindparam("sid")),
                         [{"sid": schedule_id}])
            else:
                _upsert_row(tx, state, row.created_at if row else now, now)
        return state

    # -------------------------------------------------------------------- queries

    def get(self, schedule_id: str, history: int = 0) -> ScheduleRecord:
        """The schedule's record (`UnknownSchedule` if none), with its last `history`
        events."""
        with self.store.engine.connect() as conn:
            row = read_row(conn, schedule_id)
        if row is None:
            raise UnknownSchedule(schedule_id)
        entries = None
        if history:
            start = max(row.state.version - history + 1, 1)
            entries = [HistoryEntry.from_recorded(r) for r in self.store.read_stream(
                sch.stream_id(schedule_id), start)]
        return ScheduleRecord.of(row.state, row.created_at, row.updated_at, self.clock(),
                                 entries)

    def list_schedules(self, workflow_id: str | None = None) -> list[ScheduleRecord]:
        """Every live schedule (of `workflow_id`), by id."""
        query = sa.select(_s.state, _s.created_at, _s.updated_at).order_by(_s.schedule_id)
        if workflow_id is not None:
            query = query.where(_s.workflow_id == workflow_id)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        now = self.clock()
        return [ScheduleRecord.of(sch.ScheduleState.model_validate_json(r[0]), r[1], r[2], now)
                for r in rows]

    def history(self, schedule_id: str) -> list[RecordedEvent]:
        """Every event of the schedule's stream (`UnknownSchedule` if it has none)."""
        recorded = self.store.read_stream(sch.stream_id(schedule_id))
        if not recorded:
            raise UnknownSchedule(schedule_id)
        return recorded


class ScheduleExists(InvalidRequest):
    """A create naming a live schedule with another spec: nothing was appended."""

    code = "schedule_exists"
    http_status = 409

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"schedule {schedule_id!r} exists already with another spec; delete "
                         "it first, or use another scheduleId")
