"""The handler's side of a remote run: replay the workflow function against the journal
the worker sent, execute the steps that are due, and collect what the run wrote.

`BufferedSession` is a `RunSession` whose store writes go to a buffer
(`BufferedAsyncSession` the `AsyncRunSession` of an `async def` workflow): the same
`Context`, step attempts (retries, timeouts, parallel branches), waits, children,
rollback and compensating cancel as an inline run, with the outcome methods (park,
complete, fail, cancel) noting the next action instead of writing the final decision.
Nothing here touches a database: its `Runtime` has no store (`NoStore` refuses any
use). A step's stream chunks are buffered as journal records and, when the worker
asks for its answer in lines, told to `live` as they are streamed (the handler sends
each at once, see `protocol`). What a timed-out attempt returns
after its grace period is kept (`LateResults`) and answered with the run's next
request to this handler. The worker's requests that got no answer
(`transportFailures`) are recorded, when the replay reaches the first step attempt it
would run, as failed attempts of that step (`AttemptLost`, see `runtime.attempts`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from ledgerflow._authoring import WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore.store import EventStore
from ledgerflow.remote.protocol import (
    PROTOCOL,
    Child,
    DispatchRequest,
    DispatchResponse,
    NewRecord,
    Next,
)
from ledgerflow.runtime.aio_context import AsyncContext
from ledgerflow.runtime.aio_loop import AsyncLoop
from ledgerflow.runtime.aio_session import AsyncRunSession
from ledgerflow.runtime.attempts import discarded
from ledgerflow.runtime.compensation import undo
from ledgerflow.runtime.context import Context, Park
from ledgerflow.runtime.errors import AttemptLost
from ledgerflow.runtime.executor import Also, Compensated, RunSession
from ledgerflow.runtime.failures import json_roundtrip
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.journal import Journal
from ledgerflow.runtime.steps import Late

log = logging.getLogger("ledgerflow.remote")


class NoStore:
    """The handler's stand-in for an event store: it never touches a database."""

    max_event_bytes = None

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a workflow handler has no event store (asked for {name!r})")


def request_clock(now: datetime) -> Any:
    """The worker's time as sent, advancing with this process's monotonic clock."""
    started = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - started)


def journal_of(request: DispatchRequest) -> Journal:
    """The run's journal as the request sends it; `ValueError` if it is not the journal
    of a running run of the request's workflow (or holds an event this code cannot
    read: `LedgerflowError`)."""
    journal = Journal.build(request.run_id, (r.recorded(request.run_id, request.now)
                                             for r in request.journal))
    state = journal.state
    if journal.created is None or (state.workflow_id, state.workflow_version) != (
            request.workflow_id, request.workflow_version):
        raise ValueError(f"the journal sent is not that of a run of {request.workflow_id}@"
                         f"{request.workflow_version} (it starts with no RunCreated, or "
                         "another workflow's)")
    if state.status not in (RunStatus.RUNNING, RunStatus.COMPENSATING):
        raise ValueError(f"run {request.run_id!r} is {state.status.value}: nothing to execute")
    return journal


class LateResults:
    """What timed-out attempts returned after their grace period, by run, until the
    run's next request to this handler takes them (journaled as StepResultDiscarded
    then, as an inline run journals them). At most `limit` runs are kept (the oldest
    are dropped: their runs did not come back)."""

    def __init__(self, limit: int = 1000) -> None:
        self._runs: OrderedDict[str, list[ev.Event]] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def put(self, run_id: str, event: ev.Event) -> None:
        with self._lock:
            self._runs.setdefault(run_id, []).append(event)
            while len(self._runs) > self._limit:
                self._runs.popitem(last=False)

    def take(self, run_id: str) -> list[ev.Event]:
        with self._lock:
            return self._runs.pop(run_id, [])


class Buffered(RunSession):
    """What a remote run's execution changes in a session: writes to `out`, outcomes
    to `next` (see the module). A base of `BufferedSession` (a plain `def` workflow)
    and `BufferedAsyncSession` (an `async def` one, on the handler's `AsyncLoop`)."""

    def __init__(self, registry: WorkflowRegistry, request: DispatchRequest,
                 journal: Journal, aio: AsyncLoop, late: LateResults) -> None:
        rt = Runtime(cast(EventStore, NoStore()), registry, request_clock(request.now),
                     worker_id=f"handler:{request.request_id}", aio=aio)
        super().__init__(rt, journal)
        self.out: list[ev.Event] = []
        self.next = Next(action="continue")
        self._deadline = time.monotonic() + request.budget_seconds
        self.watch.chunks = self._chunk
        self._chunks: dict[tuple[str, int], int] = {}
        self.live: Callable[[ev.StreamChunk], None] | None = None
        """Told each step chunk as it is streamed (the handler sends it at once)."""
        self._late_results = late
        self.watch.lost = [AttemptLost(f"the request to the handler failed: {failure.error}",
                                       failure.at) for failure in request.transport_failures]
        for event in late.take(self.run_id):  # returned after an earlier answer
            self.record(event)

    def answer(self) -> DispatchResponse:
        """Execute until the run parks, ends, or the budget is spent after a step."""
        self.execute()
        return DispatchResponse(protocol=PROTOCOL, run_id=self.run_id,
                                events=[NewRecord.of(e) for e in self.out], next=self.next)

    # ---------------------------------------------------------- the buffer

    def execute(self) -> str:
        return self.run()

    def record(self, event: ev.Event) -> bool:
        added = super().record(event)
        if isinstance(event, ev.StepCompleted | ev.StepFailed) \
                and time.monotonic() > self._deadline:
            self.rt.stop.set()  # next step: "released", the worker writes and posts again
        return added

    def check(self, event: ev.Event) -> None:
        """The store's size limit is checked when the worker appends."""

    def check_workflow(self, name: str) -> None:
        """A child's workflow is checked by the worker, which starts it."""

    def flush(self, decision: Sequence[ev.Event] = (), also: Also | None = None) -> None:
        for event in decision:
            self.journal.add(event)
        self.out += [*self.pending, *decision]
        self.pending = []
        self.committed = self.watch.version = self.journal.version

    def _chunk(self, step_id: str, attempt: int, name: str, chunk: Any) -> None:
        data = json_roundtrip(chunk, f"the chunk of stream {name!r}")
        key = (step_id, attempt)
        seq = self._chunks[key] = self._chunks.get(key, 0) + 1
        if seq <= self.journal.step_chunks.get(key, 0):
            return  # written by this attempt before the worker lost its answer
        chunk_event = ev.StreamChunk(name=name, chunk=data, step_id=step_id, attempt=attempt,
                                     seq=seq)
        self.pending.append(chunk_event)
        if self.live is not None:
            self.live(chunk_event)

    def _late(self, step_id: str, attempt: int, late: Late) -> None:
        log.warning("run %s: step %r attempt %d returned after its grace period; it is "
                    "journaled as discarded with the run's next answer", self.run_id,
                    step_id, attempt, extra={"run_id": self.run_id, "step": step_id})
        self._late_results.put(self.run_id, discarded(step_id, attempt, late))

    # ---------------------------------------------------------- outcomes

    def park(self, park: Park) -> str:
        self.flush(park.facts)
        spec = park.child
        child = None if spec is None else Child(run_id=spec.run_id, step_id=spec.step_id,
                                                workflow_id=spec.workflow_id, input=spec.input)
        self.next = Next(action="park", waitpoint=park.waitpoint, due_at=park.due_at,
                         child=child)
        return "parked"

    def complete(self, result: Any) -> str:
        if self.journal.state.status is RunStatus.COMPENSATING:
            return super().complete(result)  # fails it, as an inline run
        self.flush()
        self.next = Next(action="complete", result=result)
        return "completed"

    def fail(self, error: ev.ErrorInfo, compensation: Compensated) -> str:
        self.flush()
        self.next = Next(action="fail", error=error, compensation=compensation)
        return "failed"

    def cancel(self, ctx: Context | None) -> str:
        if ctx is not None:
            undo(self, ctx.compensations, self.journal.compensated)
        self.flush()
        self.next = Next(action="cancel")
        return "canceled"


class BufferedSession(Buffered):
    """The execution of a remote run of a plain `def` workflow."""


class BufferedAsyncSession(Buffered, AsyncRunSession):
    """The execution of a remote run of an `async def` workflow, on the handler's loop."""

    def execute(self) -> str:
        return self.rt.aio.run(self.run_async())

    async def cancel_async(self, ctx: AsyncContext) -> str:
        await self._undo(ctx.compensations)
        return self.cancel(None)
