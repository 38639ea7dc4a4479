"""`Scheduler`: starts the runs schedules say are due. Every `serve` and `worker` runs
one; there is no leader: correctness comes from the store.

`fire_due()` takes the due rows of the `schedules` table (next fire time passed, or
a buffered fire waiting) in batches, each in one transaction: the rows locked with
`SKIP LOCKED` (on PostgreSQL another scheduler takes the next rows meanwhile; on
SQLite the write transaction holds the database), then per schedule
`domain.schedules.decide_due`, and `schedules.write`: its events appended with the
version its row holds, its runs created with expected version 0. Two schedulers that
decide the same fire therefore conflict and only one commits; the other's
transaction writes nothing. A run id that exists already (someone created
`{id}@{time}` by hand) is left as it is and the fire still recorded.

The loop (`start`/`stop`, a thread) declares the schedules of `@workflow(...,
schedule=...)` first (an idempotent upsert), then fires what is due and sleeps until
the next fire time (at most `poll_interval`, to see schedules other processes made;
a change in this process wakes it at once).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import sqlalchemy as sa

from ledgerflow._authoring import WorkflowRegistry
from ledgerflow.domain import schedules as sch
from ledgerflow.domain.errors import ConcurrencyError
from ledgerflow.eventstore.records import StreamAppend
from ledgerflow.runtime.queue import run_queue
from ledgerflow.runtime.schedules import Schedules, schedule_index, write

log = logging.getLogger("ledgerflow.scheduler")
_s = schedule_index.c
BUFFERED_POLL = 0.5


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Rows with a fire to decide: unpaused, and a fire time passed or a fire buffered."""
    return sa.and_(_s.paused.is_(False),
                   sa.or_(_s.next_fire_at <= now, _s.buffered_at.is_not(None)))
"""Seconds between looks at a buffered fire whose previous run still goes."""


class Scheduler:
    """Fires the due schedules of `schedules` (see the module)."""

    def __init__(self, schedules: Schedules, *, batch: int = 50,
                 poll_interval: float = 1.0) -> None:
        self.schedules, self.batch, self.poll_interval = schedules, batch, poll_interval
        self.store, self.clock = schedules.store, schedules.clock
        self._halt, self._nudged = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._unknown: set[str] = set()
        schedules.listeners.append(self._nudged.set)

    def declare(self, registry: WorkflowRegistry | None = None) -> int:
        """Upsert the schedule every registered workflow declares (its id is the
        workflow's name); how many were created or changed."""
        registry = registry if registry is not None else self.schedules.registry
        changed = 0
        for definition in registry.definitions():
            declared = definition.schedule
            if declared is not None and registry.get(definition.name) is definition:
                changed += self.schedules.upsert(definition.name,
                                                 declared.spec(definition.name))
        return changed

    def fire_due(self) -> int:
        """Decide every due schedule now; how many runs this call started."""
        started = 0
        while self._any_due(self.clock()):
            handled, runs, full = self._batch(self.clock())
            started += runs
            if not full or not handled:
                break
        return started

    def _any_due(self, now: datetime) -> bool:
        """Whether a schedule is due: read first, so an idle scheduler takes no write
        transaction (on SQLite, the database's write lock)."""
        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(_s.schedule_id).where(_due(now)).limit(1)).first() \
                is not None

    def _batch(self, now: datetime) -> tuple[int, int, bool]:
        """One transaction: (schedules that changed, runs started, whether the batch
        was full)."""
        existing: set[str] = set()
        for _ in range(self.batch + 1):
            try:
                return self._write_batch(now, existing)
            except ConcurrencyError as conflict:
                if conflict.stream.startswith("schedule:"):  # its row is behind its stream
                    log.warning("%s; refolding the schedule's row from its stream", conflict)
                    self.schedules.refold(conflict.stream.removeprefix("schedule:"))
                    return 0, 0, True
                existing.add(conflict.stream)  # that run exists: record the fire only
        return 0, 0, False

    def _write_batch(self, now: datetime, existing: set[str]) -> tuple[int, int, bool]:
        with self.store.transaction() as tx:
            conn = tx.conn
            query = (sa.select(_s.state, _s.created_at).where(_due(now))
                     .order_by(_s.next_fire_at).limit(self.batch))
            rows = conn.execute(self.store.backend.skip_locked(query, of=schedule_index)).all()
            states = [(sch.ScheduleState.model_validate_json(r[0]), r[1]) for r in rows]
            last = [s.last_run_id for s, _ in states if s.last_run_id]
            running = set(conn.execute(sa.select(run_queue.c.run_id).where(
                run_queue.c.run_id.in_(last))).scalars()) if last else set()
            handled = runs = 0
            appends: list[StreamAppend] = []
            for state, created in states:
                if not self._known(state):
                    continue
                events = sch.decide_due(state, now, state.last_run_id in running)
                if not events:
                    continue
                write(tx, state, events, created, now, self.schedules.registry,
                      skip_runs=existing, appends=appends)
                handled += 1
                runs += sum(isinstance(e, sch.ScheduleFired) for e in events)
            tx.append_deferred(*appends)  # one insert for the batch's streams
        if runs:
            self.schedules.notify()
        return handled, runs, len(rows) == self.batch

    def _known(self, state: sch.ScheduleState) -> bool:
        """Whether this process can start the schedule's workflow (another may)."""
        assert state.spec is not None
        name = state.spec.workflow_id
        if name in self.schedules.registry.names():
            return True
        if state.schedule_id not in self._unknown:
            self._unknown.add(state.schedule_id)
            log.warning("schedule %r is due but workflow %r is not registered here; a "
                        "process that has it will fire it", state.schedule_id, name)
        return False

    def seconds_to_next(self) -> float:
        """Seconds until the next fire time of any schedule (at most `poll_interval`)."""
        with self.store.engine.connect() as conn:
            soonest, buffered = conn.execute(sa.select(
                sa.func.min(_s.next_fire_at), sa.func.count(_s.buffered_at))
                .where(_s.paused.is_(False))).one()
        wait = self.poll_interval if not buffered else min(self.poll_interval, BUFFERED_POLL)
        if soonest is not None:
            if soonest.tzinfo is None:  # SQLite keeps UTC times naive
                soonest = soonest.replace(tzinfo=UTC)
            wait = min(wait, (soonest - self.clock()).total_seconds())
        return max(wait, 0.0)

    # ------------------------------------------------------------------- the loop

    def start(self) -> Scheduler:
        """Declare the registry's schedules, then fire due ones in a thread until `stop`."""
        if self._thread is not None:
            raise RuntimeError("scheduler already started")
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, name="ledgerflow-scheduler",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self._nudged.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        declared = False
        while not self._halt.is_set():
            wait = self.poll_interval
            try:
                if not declared:
                    self.declare()
                    declared = True
                self.fire_due()
                wait = self.seconds_to_next()
            except Exception:
                log.exception("scheduler pass failed; retrying")
            if wait > 0:
                self._nudged.wait(wait)
            self._nudged.clear()
