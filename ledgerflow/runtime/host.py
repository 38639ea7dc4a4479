"""`Runtime`: the narrow object the executor and the run commands are given.

It holds what they need and nothing of the `Engine` that builds it: the store, the
workflow registry, the clock, this worker's id and lease, the in-process hand-offs
(`Wakeup`, `Finished`), the steps executing here (`InFlight`, which a cancel
reaches), the event loop of async runs (`AsyncLoop`), the stop flag, the fault points
crash tests arm, the `Observer` that metrics count with, and the store's queues
(`QueueBook`). `Engine` composes one; so
may a host that wires its own parts (tests, a serverless handler).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from ledgerflow._authoring import WorkflowRegistry
from ledgerflow.domain.errors import UnknownRun
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.eventstore.store import Clock, EventStore
from ledgerflow.runtime.aio_loop import AsyncLoop
from ledgerflow.runtime.faults import FaultPoints
from ledgerflow.runtime.handoff import Claimed, Finished, Wakeup
from ledgerflow.runtime.journal import Journal
from ledgerflow.runtime.observe import NO_OBSERVER, Observer
from ledgerflow.runtime.queues import QueueBook
from ledgerflow.runtime.steps import InFlight


class Execution(Protocol):
    def run(self) -> str: ...


class Dispatch(Protocol):
    """Where runs execute: `session` gives the execution of a claimed run whose
    workflow runs elsewhere (`ledgerflow.remote`), None for one that runs here."""

    def session(self, rt: Runtime, claimed: Claimed) -> Execution | None: ...


@dataclass(frozen=True)
class Runtime:
    """What executing and commanding runs needs from the process that hosts them."""

    store: EventStore
    registry: WorkflowRegistry
    clock: Clock
    worker_id: str
    lease: timedelta = timedelta(seconds=30)
    wakeup: Wakeup = field(default_factory=Wakeup)
    finished: Finished = field(default_factory=Finished)
    stop: threading.Event = field(default_factory=threading.Event)
    faults: FaultPoints = field(default_factory=FaultPoints)
    inflight: InFlight = field(default_factory=InFlight)
    observer: Observer = NO_OBSERVER
    aio: AsyncLoop = field(default_factory=AsyncLoop)
    """The event loop async runs execute on (started by the first one)."""
    queues: QueueBook | None = None
    """The store's queues (`Engine` gives one): triggers and children check theirs."""
    dispatch: Dispatch | None = None
    """Runs of workflows served over HTTP (`LEDGERFLOW_DISPATCH`); None: all inline."""

    @property
    def stopping(self) -> bool:
        """True once a graceful stop was asked for: no new step starts."""
        return self.stop.is_set()

    def queue_of(self, queue: str) -> str:
        """`queue`, checked to exist (`UnknownQueue` naming those that do)."""
        if self.queues is not None:
            self.queues.check(queue)
        return queue

    def history(self, run_id: str) -> list[RecordedEvent]:
        """The run's events in order (`UnknownRun` if it has none)."""
        recorded = self.store.read_stream(run_id)
        if not recorded:
            raise UnknownRun(run_id)
        return recorded

    def journal(self, run_id: str) -> Journal:
        """The run's journal, built from its stream (`UnknownRun` if it has none)."""
        return Journal.build(run_id, self.history(run_id))
