"""`Engine`: creating runs (trigger, rerun, resume, children) and state and history
queries; it composes the commands on an existing run (signal, event, token, cancel:
`RunCommands`) and the running of leased runs (`run_due` / `tick` for hosts without a
worker, heartbeat: `Runner`). The executor, the commands and the runner are given
the engine's `Runtime`, never the engine.

Every command folds the run's stream, decides with `domain.state.decide` (so the
lifecycle machine validates it), and appends with the version it folded; a
concurrent change makes it re-read and decide again. Queue rows change in the
same transaction as the events. A trigger reads nothing first: RunCreated is
appended with expected version 0, and a conflict means the run exists. With a
worker in this process, a trigger can start the run eagerly (see `trigger`).

Idempotency keys (`eventstore.idempotency`) are honoured in the command's own
transaction (`run_once`): a trigger's key is claimed and its result written in the
transaction that appends RunCreated. The fault point `command_committed` fires right
after a command's transaction commits (crash tests: the key is kept already).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ledgerflow._authoring import WorkflowDef, WorkflowRegistry, default_registry
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import (
    ConcurrencyError,
    IllegalTransition,
    InvalidRequest,
    RerunNotConfirmed,
    RunConflict,
    UnknownRun,
)
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.domain.state import RunState, fold
from ledgerflow.eventstore.idempotency import IdempotencyKey, run_once
from ledgerflow.eventstore.records import NewEvent, RecordedEvent, StreamAppend, new_id
from ledgerflow.eventstore.store import Clock, EventStore, PendingAppend, Transaction, utcnow
from ledgerflow.runtime import queue, runs
from ledgerflow.runtime.commands import RunCommands, json_value
from ledgerflow.runtime.debounce import Debounce, trigger_debounced
from ledgerflow.runtime.faults import FaultPoints
from ledgerflow.runtime.handoff import Claimed
from ledgerflow.runtime.host import Dispatch, Runtime
from ledgerflow.runtime.journal import Journal
from ledgerflow.runtime.listen import announce
from ledgerflow.runtime.observe import NO_OBSERVER, Observer
from ledgerflow.runtime.queues import QueueBook
from ledgerflow.runtime.runner import Runner

_SAME: Any = object()
log = logging.getLogger("ledgerflow.engine")


@dataclass(frozen=True)
class TriggerResult:
    """The run a trigger names; `created` is False when it already existed (and for
    a trigger replayed by its idempotency key)."""

    run_id: str
    created: bool
    pending: PendingAppend | None = field(default=None, repr=False, compare=False)

    @property
    def recorded(self) -> tuple[RecordedEvent, ...]:
        """The events this trigger appended (empty when it created nothing), so a
        caller can show the new run as of the trigger's commit without reading it
        back; known once they are written (in the key's `remember`, or after)."""
        return () if self.pending is None else tuple(self.pending.recorded)


class Engine:
    """The workflow engine over one event store: composes a `Runtime` (given to the
    executor and the commands) and the `RunCommands` over it."""

    def __init__(self, store: EventStore, registry: WorkflowRegistry | None = None, *,
                 clock: Clock = utcnow, lease: timedelta = timedelta(seconds=30),
                 worker_id: str | None = None, faults: FaultPoints | None = None,
                 observer: Observer = NO_OBSERVER, dispatch: Dispatch | None = None) -> None:
        registry = registry if registry is not None else default_registry
        self.queues = QueueBook(store, clock, registry.queues)
        """The store's queues: their limits, changed at run time (`runtime.queues`)."""
        self.runtime = Runtime(
            store, registry, clock,
            worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            lease, faults=faults if faults is not None else FaultPoints(), observer=observer,
            queues=self.queues, dispatch=dispatch)
        self.store, self.registry, self.clock = store, self.runtime.registry, clock
        self.lease, self.worker_id = lease, self.runtime.worker_id
        self.wakeup = self.runtime.wakeup
        self.commands = RunCommands(self.runtime)
        self.signal = self.commands.signal
        self.send_event = self.commands.send_event
        self.resolve_token = self.commands.resolve_token
        self.cancel = self.commands.cancel
        self.runner = Runner(self.runtime)
        """Claims, executes and keeps leases; also reachable as `engine.run_due(...)`, ..."""
        self.execute, self.run_due, self.tick, self.handle = (
            self.runner.execute, self.runner.run_due, self.runner.tick, self.runner.handle)
        self.reap, self.heartbeat, self.release_leases = (
            self.runner.reap, self.runner.heartbeat, self.runner.release_leases)

    @property
    def stopping(self) -> bool:
        """True once a graceful stop was asked for: no new step starts."""
        return self.runtime.stopping

    def request_stop(self, stop: bool = True) -> None:
        if stop:
            self.runtime.stop.set()
        else:
            self.runtime.stop.clear()

    # ------------------------------------------------------------------ queries

    def wait(self, run_id: str, timeout: float = 60.0, poll: float = 0.5) -> RunState:
        """Block until the run is terminal (woken in-process, else by polling); its state.

        Only this run finishing wakes the caller (not every run's); the stream is read
        every `poll` seconds for runs finishing elsewhere. Raises `TimeoutError` if it
        is not terminal within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            _, known = self.runtime.finished.wait(
                run_id, min(poll, deadline - time.monotonic()))
            if known is not None:
                return known
            state = self.state(run_id)
            if state.is_terminal:
                return state
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id!r} is still {state.status.value}")

    def history(self, run_id: str) -> list[RecordedEvent]:
        """The run's events in order (`UnknownRun` if it has none)."""
        return self.runtime.history(run_id)

    def state(self, run_id: str) -> RunState:
        """The run's state, folded from its stream."""
        return fold(run_id, [r.event for r in self.history(run_id)])

    # ----------------------------------------------------------------- creating

    def trigger(self, workflow_id: str, input: Any = None, *, workflow_version: str | None = None,
                tenant_meta: dict[str, Any] | None = None, tags: list[str] | None = None,
                run_id: str | None = None,
                idempotency_key: str | IdempotencyKey[TriggerResult] | None = None,
                priority: int = 0, delay: timedelta | None = None,
                actor: str | None = None, eager: bool | None = None,
                queue: str | None = None, concurrency_key: str | None = None,
                start_at: datetime | None = None,
                debounce: Debounce | None = None) -> TriggerResult:
        """Create a run; the same idempotency key or run id returns the same run.

        Flow control: the run goes to `queue` (default: the workflow's; `UnknownQueue`
        if it does not exist) under `concurrency_key` (its queue's per-key limit counts
        it), due at `start_at` (or after `delay`). `debounce`: triggers with the same
        key collapse into one run that starts `seconds` after the last, with its input
        (`runtime.debounce`; not with a run id or an idempotency key).

        A key given as a string names the run forever: the same key with the same
        content returns its run (`created=False`), with other content raises
        `RunConflict` naming it; so does a given `run_id` of an existing run created
        with another workflow, input, tenant or tags (or version, when one is given).
        An `IdempotencyKey` (the HTTP API's) remembers what its `remember` makes of the
        result, and a replay returns its `recall`.

        Eager start: when this engine has a running `Worker` in this process and
        `eager` is True (or None and one of its threads is idle), the trigger
        transaction also writes RunStarted and leases the run to this worker, and
        the run is handed to a worker thread in memory (no claim, no poll). If the
        process dies first, the lease expires and any worker takes the run.
        `eager=False` always leaves the run in the queue for any worker, as does a
        `delay` (the run is not due yet) or a worker that is stopping."""
        definition = self.registry.get(workflow_id, workflow_version)
        queue_name = self.runtime.queue_of(_name(queue, "queue") or definition.queue)
        delay = _delay(delay, start_at, self.clock)
        created = ev.RunCreated(
            workflow_id=definition.name, workflow_version=definition.version,
            input=json_value(definition.check_input(input), "input"),
            tenant_meta=json_value(dict(tenant_meta or {}), "tenant_meta"),
            tags=_tags(tags), priority=_priority(priority), queue=queue_name,
            concurrency_key=_name(concurrency_key, "concurrency key"))
        if debounce is not None:
            return self._debounced(created, debounce, run_id, idempotency_key, actor)
        leased = not delay and eager is not False and not self.stopping \
            and self.wakeup.can_take(force=eager is True) and self.queues.unlimited(queue_name)
        key = _trigger_key(idempotency_key, created) if isinstance(idempotency_key, str) \
            else idempotency_key
        return self._create(created, run_id=run_id, key=key, delay=delay, actor=actor,
                            leased=leased, any_version=workflow_version is None)

    def _create(self, created: ev.RunCreated, *, run_id: str | None = None,
                key: IdempotencyKey[TriggerResult] | None = None,
                delay: timedelta | None = None, actor: str | None = None,
                leased: bool = False, any_version: bool = False) -> TriggerResult:
        run_id = run_id or new_id()
        now = self.clock()
        due = now + delay if delay else now
        if delay:
            created = created.model_copy(update={"not_before": due})
        observer = self.runtime.observer
        # executed at once here: its first execution begins now (see `Observer.open_run`)
        opened = observer.open_run(run_id, created.workflow_id) if leased else None
        meta = run_metadata(created.workflow_id, created.workflow_version,
                            created.tenant_meta.get("tenantId"), correlation_id=run_id,
                            actor=actor, idempotency_key=None if key is None else key.key,
                            traceparent=observer.traceparent() if opened is None
                            else opened.traceparent)
        new = [NewEvent(created, new_id(), meta)]
        if leased:
            new += runs.start_events(self.runtime, run_id, created, new[0])

        def write(tx: Transaction) -> TriggerResult:
            # expected version 0 is the existence check: no read before the write
            pending = tx.append_deferred(StreamAppend(run_id, new, 0))
            queue.enqueue(tx, run_id, created.workflow_id, created.priority, due, now,
                          owner=self.worker_id if leased else None,
                          until=now + self.lease if leased else None,
                          queue=created.queue or "default", key=created.concurrency_key)
            if not leased and not delay:
                announce(tx, self.worker_id)
            return TriggerResult(run_id, True, pending)

        try:
            result = run_once(self.store, key, write)
        except ConcurrencyError:  # the run exists: it (under a key, remembered) or a conflict
            return run_once(self.store, key, lambda tx: _existing(tx, run_id, created, any_version))
        self.runtime.faults("command_committed")
        if not result.created:  # replayed by its key
            return result
        if not leased:
            self.wakeup.notify()
        elif not self.wakeup.hand(Claimed(run_id, Journal.build(run_id, result.recorded),
                                          opened=opened)):
            if opened is not None:
                opened.close()
            with self.store.transaction() as tx:  # the worker stopped meanwhile
                queue.park(tx, run_id, now)
                announce(tx, self.worker_id)
        return result

    def _debounced(self, created: ev.RunCreated, debounce: Debounce, run_id: str | None,
                   key: object, actor: str | None) -> TriggerResult:
        if run_id is not None or key is not None:
            raise InvalidRequest("a debounced trigger takes neither a run id nor an "
                                 "idempotency key: the debounce key names its run")
        meta = run_metadata(created.workflow_id, created.workflow_version,
                            created.tenant_meta.get("tenantId"), actor=actor,
                            traceparent=self.runtime.observer.traceparent())
        found, made = trigger_debounced(self.runtime, created, NewEvent(created, new_id(), meta),
                                        debounce, actor)
        self.runtime.faults("command_committed")
        return TriggerResult(found, made)

    def rerun(self, run_id: str, *, input: Any = _SAME, tags: list[str] | None = None,
              actor: str | None = None, confirm: bool = False,
              idempotency_key: IdempotencyKey[TriggerResult] | None = None) -> str:
        """A new run of the same workflow with the same (or the given) input (with a
        key: once; a replay returns the run id its `recall` names). A workflow declared
        `rerun_safety="unsafe"` needs `confirm=True` (`RerunNotConfirmed` otherwise)."""
        journal = self.runtime.journal(run_id)
        old = journal.created
        assert old is not None
        definition = self.registry.get(old.workflow_id, old.workflow_version)
        if definition.rerun_safety == "unsafe" and not confirm:
            raise RerunNotConfirmed(run_id, old.workflow_id)
        if input is not _SAME:
            input = definition.check_input(input)
        created = ev.RunCreated(
            workflow_id=old.workflow_id, workflow_version=old.workflow_version,
            input=old.input if input is _SAME else json_value(input, "input"),
            tenant_meta=dict(old.tenant_meta), tags=_tags(tags) if tags is not None else
            list(old.tags), rerun_of=run_id, priority=old.priority, queue=old.queue,
            concurrency_key=old.concurrency_key)
        return self._create(created, actor=actor, key=idempotency_key).run_id

    def resume(self, run_id: str, *, input: Any = None, workflow_id: str | None = None,
               resume_from_step: str | None = None, seed_results: dict[str, Any] | None = None,
               new_run_id: str | None = None, tags: list[str] | None = None,
               actor: str | None = None, tenant_meta: dict[str, Any] | None = None,
               idempotency_key: IdempotencyKey[TriggerResult] | None = None) -> str:
        """A new run linked to a failed run, seeded as `_seeds` says (a key: once).

        A parent that is not in this store (it ran in another deployment) is resumed
        when `workflow_id`, `resume_from_step` and `seed_results` say all the new run
        needs: its `resumed_from` names that id (`UnknownRun` when one is missing), its
        tenant is `tenant_meta`'s (ignored for a parent in this store)."""
        try:
            journal = self.runtime.journal(run_id)
        except UnknownRun:
            if workflow_id is None or resume_from_step is None or seed_results is None:
                raise
            journal = _elsewhere(run_id, self.registry.get(workflow_id), input,
                                 resume_from_step, seed_results, tenant_meta)
        state, old = journal.state, journal.created
        assert old is not None
        if state.status is not RunStatus.FAILED:
            raise IllegalTransition(run_id, state.status.value, "resume")
        resume_from_step, seeds = _seeds(journal, resume_from_step, seed_results)
        if workflow_id is None:
            definition = self.registry.get(old.workflow_id, old.workflow_version)
        else:
            definition = self.registry.get(workflow_id)
        created = ev.RunCreated(
            workflow_id=definition.name, workflow_version=definition.version,
            input=old.input if input is None else json_value(definition.check_input(input),
                                                             "input"),
            tenant_meta=dict(old.tenant_meta),
            tags=_tags(tags) if tags is not None else list(old.tags), resumed_from=run_id,
            resume_from_step=resume_from_step, seed_results=seeds, priority=old.priority,
            queue=old.queue or definition.queue, concurrency_key=old.concurrency_key)
        return self._create(created, run_id=new_run_id, actor=actor,
                            key=idempotency_key).run_id


def _elsewhere(run_id: str, definition: WorkflowDef, input: Any, resume_from_step: str,
               seed_results: dict[str, Any], tenant_meta: dict[str, Any] | None) -> Journal:
    """The journal a parent stored elsewhere is taken to have: failed at
    `resume_from_step` after the seeded steps completed (so `_seeds` finds them), with the
    given input and tenant. Nothing of it is stored: only the new run's RunCreated."""
    journal = Journal.build(run_id, ())
    journal.add(ev.RunCreated(workflow_id=definition.name, workflow_version=definition.version,
                              input=json_value(definition.check_input(input), "input"),
                              tenant_meta=json_value(dict(tenant_meta or {}), "tenant_meta")))
    journal.add(ev.RunStarted())
    error = ev.ErrorInfo(type="Elsewhere", message=f"run {run_id!r} ran elsewhere")
    if isinstance(seed_results, dict):
        for step_id, result in seed_results.items():
            if step_id != resume_from_step:
                journal.add(ev.StepCompleted(step_id=str(step_id), result=result))
    journal.add(ev.StepFailed(step_id=resume_from_step, attempt=1, error=error, final=True))
    journal.add(ev.RunFailed(error=error))
    return journal


def _existing(tx: Transaction, run_id: str, created: ev.RunCreated,
              any_version: bool) -> TriggerResult:
    """A trigger whose run id names an existing run: that run, when it was created with
    the same workflow and input (and tenant, tags, lineage); else `RunConflict`."""
    first = tx.read_first(run_id)
    existing = None if first is None else first.event
    if not isinstance(existing, ev.RunCreated):
        raise RunConflict(run_id)
    differs = runs.differences(existing, created, any_version=any_version)
    if differs:
        raise RunConflict(run_id, differs=differs)
    return TriggerResult(run_id, False)


def _trigger_key(key: str, created: ev.RunCreated) -> IdempotencyKey[TriggerResult]:
    """A trigger's own key: scope "trigger", bound to the run's content, kept forever,
    remembering the run it names (and naming it in a conflict)."""
    return IdempotencyKey(
        "trigger", key, runs.fingerprint(created),
        remember=lambda _conn, result: {"runId": result.run_id},
        recall=lambda kept: TriggerResult(str(kept["runId"]), False), ttl=None,
        conflict=lambda kept: RunConflict(str(kept["runId"]), key=key) if kept else None)


def _priority(priority: int) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) \
            or not -(2**31) <= priority < 2**31:
        raise InvalidRequest(f"priority must be a 32-bit integer, got {priority!r}")
    return priority


def _name(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidRequest(f"a {what} must be 1 to 200 characters, got {value!r}")
    return value


def _delay(delay: timedelta | None, start_at: datetime | None,
           clock: Any) -> timedelta | None:
    """How long until the run is due: `delay`, or until `start_at` (never negative)."""
    if start_at is None:
        return delay
    if delay:
        raise InvalidRequest("give either a delay or a start time, not both")
    if not isinstance(start_at, datetime) or start_at.tzinfo is None:
        raise InvalidRequest(f"start_at must be a datetime with a time zone, got {start_at!r}")
    ahead = start_at - clock()
    return ahead if ahead > timedelta(0) else None


def _tags(tags: list[str] | None) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise InvalidRequest(f"tags must be a list of strings, got {tags!r}")
    return list(tags)


def _seeds(journal: Journal, resume_from_step: str | None,
           seed_results: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """Where a resume of the failed run `journal` starts, and the results it seeds.

    `resume_from_step`: the results of the steps before it are seeded; it and what
    follows run again. `seed_results`: exactly those results are seeded. With neither,
    the run continues where the failed one stopped: from the first step that did not
    complete, every completed step before it seeded (its side effect does not happen
    again); if every step completed, all their results are seeded."""
    if resume_from_step is None and seed_results is None:
        resume_from_step = next((op for op in journal.order if op in journal.attempts
                                 and op not in journal.results), None)
        if resume_from_step is None:
            seed_results = {op: journal.results[op] for op in journal.order
                            if op in journal.results}
    seeds: dict[str, Any] = {}
    if resume_from_step is not None:
        if resume_from_step not in journal.order:
            raise InvalidRequest(
                f"run {journal.run_id!r} has no step {resume_from_step!r} to resume from; "
                f"its steps are: {', '.join(journal.order) or 'none'}")
        for op in journal.order:
            if op == resume_from_step:
                break
            if op in journal.results:
                seeds[op] = journal.results[op]
    if seed_results is not None:
        if not isinstance(seed_results, dict) or not all(
                isinstance(k, str) and k for k in seed_results):
            raise InvalidRequest("seed_results must map step ids (non-empty strings) to results")
        not_steps = [k for k in seed_results if k in journal.order
                     and k not in journal.results and k not in journal.attempts]
        if not_steps:
            raise InvalidRequest(
                f"seed_results names {', '.join(not_steps)}, which in run {journal.run_id!r} "
                "are not steps (sleeps, waits, children or values cannot be seeded)")
        seeds.update(json_value(seed_results, "seed_results"))
    return resume_from_step, seeds
