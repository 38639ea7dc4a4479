"""The replay executor: claim a due run, re-execute its function, write the journal.

Writes are merged: facts recorded by the function (a step's completion, a value)
are buffered and written by the next transaction the run needs anyway — just
before the next step runs, or together with the decision that ends this
execution (park, complete, fail). So a step's side effect is at-least-once and
at most the step in hand re-runs after a crash, while the journal holds exactly
one completion per step (every write checks the stream's expected version).

A write that meets `ConcurrencyError` re-reads the stream. Events another party
may add to a running run (signals, events, tokens, a child's result) are merged:
buffered facts are written again on top, and a decision is re-made by replaying
the function from the top. Anything else (a cancel, another worker's journal)
means the run is no longer ours: the execution is abandoned there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import (
    ConcurrencyError,
    NonDeterminismError,
    StoreUnavailable,
    UnknownWorkflow,
)
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.state import (
    Begin,
    Cancel,
    Complete,
    Fail,
    Rollback,
    Suspend,
    Wake,
    decide,
)
from ledgerflow.eventstore.records import NewEvent, StreamAppend
from ledgerflow.eventstore.store import Transaction
from ledgerflow.runtime import queue, runs
from ledgerflow.runtime.attempts import discarded
from ledgerflow.runtime.chunks import ChunkWriter
from ledgerflow.runtime.compensation import canceling, cancels, outcome_note, undo
from ledgerflow.runtime.context import Context, Park
from ledgerflow.runtime.errors import StepFailed
from ledgerflow.runtime.failures import error_info, json_roundtrip
from ledgerflow.runtime.handoff import Claimed
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.journal import INPUT_EVENTS, Journal
from ledgerflow.runtime.listen import announce
from ledgerflow.runtime.observe import OpenedRun, execution_of
from ledgerflow.runtime.steps import Late, RunWatch
from ledgerflow.runtime.streams import event_metadata

log = logging.getLogger("ledgerflow.executor")
Also = Callable[[Transaction], None]
Compensated = Literal["none", "completed", "partial"]


class Replay(BaseException):
    """Re-run the workflow function from the top against the refreshed journal."""


class Abandon(BaseException):
    """The run is no longer this execution's (canceled, or another worker took it)."""


class StopRequested(BaseException):
    """The worker is stopping: write what is buffered and give the run back."""


class CancelRequested(BaseException):
    """The run is being canceled with compensation: start nothing new, undo what is done."""


class RunSession:
    """One execution of one claimed run by one thread."""

    def __init__(self, rt: Runtime, journal: Journal, held: bool = False,
                 opened: OpenedRun | None = None) -> None:
        self.rt, self.journal = rt, journal
        self.held = held  # the lease holds queue / key slots: given back when it ends
        self.opened = opened  # begun by the eager trigger that handed the run over
        self.run_id = journal.run_id
        self.committed = journal.version
        self.pending: list[ev.Event] = []
        self.clock = rt.clock
        self.watch = RunWatch(self.run_id, self.committed, self._late,
                              journal.state.workflow_id)
        self.watch.chunks = self.chunks = ChunkWriter(rt, journal, lambda: self.committed)
        self._now_canceling = False

    @property
    def canceling(self) -> bool:
        """Canceled with compensation: replay only to undo completed steps."""
        return canceling(self.journal.state)

    # ---------------------------------------------------------- used by Context

    def record(self, event: ev.Event) -> bool:
        """Buffer a fact; True if it added an op to the journal's order. A step's outcome the
        store would refuse (`InvalidEvent`) raises here, before it is buffered: the step fails."""
        if isinstance(event, ev.StepCompleted | ev.StepSuspended):
            self.check(event)
        self.pending.append(event)
        if isinstance(event, ev.StepCompleted | ev.StepFailed):
            self.rt.observer.step_ended(self.journal.state.workflow_id, event, self.clock())
        return self.journal.add(event)

    def check(self, event: ev.Event) -> None:
        """Raise what the store would raise for `event` on this run (`InvalidEvent`)."""
        if self.rt.store.max_event_bytes is not None:
            meta = event_metadata(self.journal.base_metadata, self.journal.last_event_id)
            self.rt.store.check_event(self.run_id, NewEvent(event, metadata=meta))

    def before_step(self) -> None:
        """A step is about to run: stop if asked, make earlier facts durable."""
        if self.rt.stopping:
            raise StopRequested()
        if self.canceling:
            raise CancelRequested()
        if self.pending:
            self.flush()

    def decide_now(self, decision: Sequence[ev.Event]) -> bool:
        """Write a decision at once (e.g. a timeout); True if it added an op."""
        before = len(self.journal.order)
        self.flush(decision)
        return len(self.journal.order) > before

    def check_workflow(self, name: str) -> None:
        self.rt.queue_of(self.rt.registry.get(name).queue)

    # ------------------------------------------------------------------ writing

    def flush(self, decision: Sequence[ev.Event] = (), also: Also | None = None) -> None:
        """Write buffered facts + `decision` (+ `also` in the same transaction)."""
        decision, replay = list(decision), False
        for _ in range(50):
            events = [*self.pending, *decision]
            meta = event_metadata(self.journal.base_metadata, self.journal.last_event_id)
            try:
                with self.rt.store.transaction() as tx:
                    pending = tx.append_deferred(StreamAppend(
                        self.run_id, [NewEvent(e, metadata=meta) for e in events],
                        self.committed))
                    if also is not None:
                        also(tx)
            except ConcurrencyError as error:
                if error.stream == self.run_id and self._reconcile() \
                        and (decision or also is not None):
                        decision, also, replay = [], None, True
                continue
            break
        else:
            raise Abandon()
        recorded = pending.recorded
        had_step = any(isinstance(e, ev.StepCompleted | ev.StepSuspended) for e in self.pending)
        cut = len(self.pending)
        self.pending = []
        if recorded:
            for rec in recorded[cut:]:
                self.journal.add_recorded(rec)
            self.journal.last_event_id = recorded[-1].event_id
        self.committed = self.watch.version = self.journal.version
        if had_step:
            self.rt.faults("step_committed")
        if replay or self._now_canceling:
            self._now_canceling = False
            raise Replay()

    def _reconcile(self) -> bool:
        """Merge what others appended; True if it may change a decision (anything but
        stream chunks, which change none: the write is retried as it was)."""
        # Through a transaction: on the connection this thread holds while it executes
        # the run, so a run never needs a second pooled connection (a pool full of
        # held connections, each waiting for another, would deadlock).
        with self.rt.store.transaction() as tx:
            recs = tx.read_stream(self.run_id)
        decisive = any(rec.version > self.committed and not isinstance(rec.event, ev.StreamChunk)
                       for rec in recs)
        for rec in recs:
            if rec.version > self.committed and not isinstance(rec.event, INPUT_EVENTS):
                if not cancels(rec.event):
                    raise Abandon()
                self._now_canceling = True  # canceled with compensation: this session undoes
        journal = Journal.build(self.run_id, recs)
        for event in self.pending:
            journal.add(event)
        self.journal = journal
        self.committed = recs[-1].version if recs else 0
        return decisive

    # ----------------------------------------------------------------- outcomes

    def run(self) -> str:
        """Execute until the run completes, fails, parks or is given back."""
        self.rt.inflight.add(self.watch)
        try:
            with execution_of(self.rt.observer, self.opened, self.run_id,
                              self.journal.state.workflow_id, self.journal.base_metadata):
                while True:
                    try:
                        return self._run_once()
                    except Replay:
                        continue
                    except Abandon:
                        return "abandoned"
        finally:
            self.rt.inflight.remove(self.watch)

    def _run_once(self) -> str:
        state = self.journal.state
        try:
            definition = self.rt.registry.get(state.workflow_id, state.workflow_version)
        except UnknownWorkflow as error:
            return self.fail(error_info(error), "none")
        ctx = Context(self, self.rt.faults, self.watch, self.rt.observer)
        try:
            result = definition.call(ctx, ctx.input)
            ctx.finish()
            result = json_roundtrip(result, "the workflow's result")
            self.check(ev.RunCompleted(result=result))  # too large: rolls back, fails
        except Park as park:
            return self.cancel(ctx) if self.canceling else self.park(park)
        except CancelRequested:
            return self.cancel(ctx)
        except StopRequested:
            self.flush(also=self._give_back)
            return "released"
        except NonDeterminismError as error:
            return self.fail(error_info(error), "none")
        except StoreUnavailable:  # the store's failure, not the workflow's: not failed,
            raise  # the run is given back and continues from what was committed
        except Exception as error:
            if ctx.diverged is not None:
                return self.fail(error_info(ctx.diverged), "none")
            return self.rollback(ctx, error)
        if ctx.diverged is not None:
            return self.fail(error_info(ctx.diverged), "none")
        return self.cancel(ctx) if self.canceling else self.complete(result)

    def _give_back(self, tx: Transaction) -> None:
        """The worker stops: the run is due again at once, for any worker."""
        queue.park(tx, self.run_id, self.clock(), self.held)
        announce(tx, self.rt.worker_id)

    def park(self, park: Park) -> str:
        decision = [*park.facts, *decide(self.journal.state, Suspend(waitpoint=park.waitpoint))]
        child = park.child

        def also(tx: Transaction) -> None:
            queue.park(tx, self.run_id, park.due_at, self.held)
            if child is not None:
                runs.create_child(self.rt, tx, self.journal, child)

        self.flush(decision, also)
        if child is not None:
            self.rt.wakeup.notify()
        return "parked"

    def complete(self, result: Any) -> str:
        if self.journal.state.status is RunStatus.COMPENSATING:
            error = NonDeterminismError(
                f"run {self.run_id!r} was rolling back, but its workflow now returns normally")
            return self.fail(error_info(error), "none")
        decision = decide(self.journal.state, Complete(result=result))
        self.rt.faults("run_finishing")
        self.flush(decision, self._ending("completed", result, None))
        self._nudge_parent()
        return "completed"

    def fail(self, error: ev.ErrorInfo, compensation: Compensated) -> str:
        decision = decide(self.journal.state, Fail(error=error, compensation=compensation))
        self.rt.faults("run_finishing")
        self.flush(decision, self._ending("failed", None, error))
        self._nudge_parent()
        return "failed"

    def _nudge_parent(self) -> None:
        self.rt.finished.mark(self.run_id, self.journal.state)
        self.rt.observer.run_ended(self.journal.state.workflow_id, self.journal.state.status)
        created = self.journal.created
        if created is not None and created.parent_run_id is not None:
            self.rt.wakeup.notify()

    def _ending(self, status: str, result: Any, error: ev.ErrorInfo | None) -> Also:
        def also(tx: Transaction) -> None:
            queue.remove(tx, self.run_id, self.held)
            runs.notify_parent(self.rt, tx, self.journal, status, result, error)

        return also

    def rollback(self, ctx: Context, error: Exception) -> str:
        """Run the compensators of completed steps in reverse order, then fail."""
        if self.canceling:
            return self.cancel(ctx)
        info = failure_info(error)
        comps = ctx.compensations
        if not comps:
            return self.fail(info, "none")
        if self.journal.state.status is not RunStatus.COMPENSATING:
            self.flush(decide(self.journal.state, Rollback(error=info)))
        failed = undo(self, comps, self.journal.compensated)
        outcome: Compensated = "partial" if failed else "completed"
        final = info.model_copy(update={
            "message": f"{info.message}; {outcome_note(len(comps), failed)}",
            "details": {**info.details, "compensation": outcome, "compensationFailed": failed}})
        return self.fail(final, outcome)

    def cancel(self, ctx: Context | None) -> str:
        """Canceled with compensation: undo ctx's completed steps, then RunCanceled."""
        undo(self, ctx.compensations if ctx else [], self.journal.compensated)
        state = self.journal.state
        reason = state.error.message if state.error is not None else None
        error = ev.ErrorInfo(type="Canceled", message=reason or "canceled")
        self.flush(decide(state, Cancel(reason=reason)),
                   self._ending("canceled", None, error))
        self._nudge_parent()
        return "canceled"

    def _late(self, step_id: str, attempt: int, late: Late) -> None:
        """A timed-out attempt returned after its grace period: journal it as discarded
        (in a transaction of its own, from the attempt's thread), unless the run ended."""
        append_late(self.rt, self.run_id, discarded(step_id, attempt, late))


def append_late(rt: Runtime, run_id: str, event: ev.Event) -> None:
    """Append `event` (merged by an executing session as input) unless the run ended."""
    for _ in range(20):
        try:
            with rt.store.transaction() as tx:
                journal = Journal.build(run_id, tx.read_stream(run_id))
                if journal.state.is_terminal:
                    log.warning("run %s is %s: not journaling %s", run_id,
                                journal.state.status.value, event.type_name(),
                                extra={"run_id": run_id})
                    return
                meta = event_metadata(journal.base_metadata, journal.last_event_id)
                tx.append(StreamAppend(run_id, [NewEvent(event, metadata=meta)],
                                       journal.version))
            return
        except ConcurrencyError:
            continue


def failure_info(error: Exception) -> ev.ErrorInfo:
    """A run's error: a step's last failure (its traceback: the step's), or the
    workflow code's own exception."""
    if isinstance(error, StepFailed):
        return ev.ErrorInfo(type="StepFailed", message=str(error), step_id=error.step_id,
                            details={"cause": error.error.model_dump(mode="json"),
                                     "attempts": error.attempts},
                            traceback=error.error.traceback)
    return error_info(error)


# ------------------------------------------------------------------------ claiming


def wake_events(journal: Journal, now: Any, worker: str) -> list[ev.Event] | None:
    """What the claim transaction appends before executing; None: nothing to do yet."""
    state = journal.state
    if state.status is RunStatus.PENDING:
        return decide(state, Begin(worker=worker))
    if state.status is not RunStatus.SUSPENDED:
        return []
    wp = state.waitpoint
    if wp is None:
        return decide(state, Wake(reason="resume"))
    if wp.kind in ("sleep", "retry") and wp.wake_at is not None and wp.wake_at <= now:
        fired: list[ev.Event] = [ev.TimerFired(name=wp.name)] if wp.kind == "sleep" else []
        reason = "timer" if wp.kind == "sleep" else "retry"
        return [*fired, *decide(state, Wake(reason=reason, name=wp.name))]
    if wp.timeout_at is not None and wp.timeout_at <= now:
        return [ev.WaitTimedOut(kind=wp.kind, name=wp.name),
                *decide(state, Wake(reason="timeout", name=wp.name))]
    return None


def claim_next(rt: Runtime, only: str | None = None) -> Claimed | Literal[False] | None:
    """Lease the next due run (`only`: that run, if it is due and not leased) and write
    what waking it means, in one transaction.

    Returns the claimed run, None when nothing is due, False when the claimed
    row needed no execution (re-parked or stale)."""
    for _ in range(20):
        try:
            with rt.store.transaction() as tx:
                now = rt.clock()
                if only is None:
                    claimed = queue.claim(tx.conn, rt.worker_id, now, now + rt.lease)
                else:
                    claimed = queue.claim_run(tx.conn, only, rt.worker_id, now,
                                              now + rt.lease)
                if claimed is None:
                    return None
                run_id, held = claimed[0], claimed[1] > 0
                journal = Journal.build(run_id, tx.read_stream(run_id))
                if journal.state.is_terminal or journal.created is None:
                    queue.remove(tx, run_id, held)
                    return False
                wake = wake_events(journal, now, rt.worker_id)
                if wake is None:
                    wp = journal.state.waitpoint
                    due = (wp.wake_at or wp.timeout_at) if wp is not None else None
                    queue.park(tx, run_id, due, held)
                    return False
                if wake:
                    meta = event_metadata(journal.base_metadata, journal.last_event_id)
                    for rec in tx.append(StreamAppend(
                            run_id, [NewEvent(e, metadata=meta) for e in wake], journal.version)):
                        journal.add_recorded(rec)
        except (ConcurrencyError, queue.SlotTaken):
            continue
        rt.faults("run_claimed")
        return Claimed(run_id, journal, held)
    return False
