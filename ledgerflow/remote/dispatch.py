"""The worker's side of remote runs: `RemoteRuns` (built from `LEDGERFLOW_DISPATCH`,
put on the `Runtime`) says which workflows execute over HTTP, and `RemoteSession`
executes a claimed run of one of them.

`RemoteSession` is a `RunSession` whose function runs elsewhere. Each execution posts
the run's stored journal to the handler; the events it answers are buffered as the
run's own facts would be, and its next action goes through the inline run's code:
`park` (waitpoint, due time, a child created in the same transaction), `complete`,
`fail`, the end of a compensating cancel, or `continue` (write, post again). Every
write is the inline one, with its expected-version check: a conflict merges input
events (a signal, a child's result) and posts again, a cancel or another worker's
journal abandons the execution. So the history is the one an inline run writes.

Which side does what: the handler replays the function, runs step attempts (their
timeouts and immediate retries), parallel branches, compensators, and decides
back-off due times, sleeps, wait timeouts and children; the worker claims, wakes
(timers, timeouts, retries due), appends, parks, creates children, tells parents,
cancels (relaying a cancel to the handler while it executes the run: `RemoteWatch`),
resumes, and gives the run back when the handler cannot be reached (due
again after a back-off: 1s, 2s, 4s ... up to a minute; no event is written, so the
run continues from its journal when the handler is back).

A request that reached the handler but got no answer (a timeout, a connection lost
mid-request, a 5xx: `DispatchUnavailable.lost`) may have run a step whose outcome is
lost. Which step is known only if the request ran one step at most: from then on, the
run's requests from this worker ask for one step each (budget 0, as `0` configures for
all runs). The failure of such a request is remembered, and the run's next requests
carry it (`transportFailures`) until one is answered: the handler records each as a
failed attempt of the step its replay is about to run (the one that request ran), so
the step's retry policy sees it (back-off, then failing the run). The failure of a
request that could have run several steps is not counted (the steps run again). All
this is in memory, per `RemoteRuns`: a worker restart forgets it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from ledgerflow._authoring import WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import InvalidInput, LedgerflowError, UnknownWorkflow
from ledgerflow.eventstore.records import RecordedEvent, new_id
from ledgerflow.eventstore.store import Transaction
from ledgerflow.remote.endpoint import (
    INLINE,
    DispatchUnavailable,
    Endpoint,
    ProtocolMismatch,
    RemoteUnknownWorkflow,
    parse_table,
)
from ledgerflow.remote.protocol import (
    PROTOCOL,
    DispatchRequest,
    DispatchResponse,
    Next,
    Record,
    TransportFailure,
)
from ledgerflow.runtime import queue
from ledgerflow.runtime.compensation import cancels
from ledgerflow.runtime.context import ChildSpec, Park
from ledgerflow.runtime.executor import Abandon, Replay, RunSession
from ledgerflow.runtime.failures import error_info
from ledgerflow.runtime.handoff import Claimed
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.journal import INPUT_EVENTS, Journal
from ledgerflow.runtime.steps import RunWatch

log = logging.getLogger("ledgerflow.remote")

WRITTEN_BY_HANDLER = (ev.StepCompleted, ev.StepFailed, ev.RetryScheduled,
                      ev.StepResultDiscarded, ev.StepSuspended, ev.ValueRecorded,
                      ev.TimerFired, ev.WaitTimedOut, ev.ChildStarted, ev.StreamChunk,
                      ev.CompensationCompleted, ev.CompensationFailed, ev.RunCompensating)
"""What a handler's answer may hold: the facts an execution records, and a rollback."""


class RemoteRuns:
    """Which workflows run over HTTP, and the endpoints they run at."""

    def __init__(self, table: dict[str, str], secret: str | None, timeout: float = 300.0,
                 budget: float = 1.0) -> None:
        remote = {url for url in table.values() if url != INLINE}
        if remote and not secret:
            raise ValueError("LEDGERFLOW_DISPATCH sends runs over HTTP: set "
                             "LEDGERFLOW_DISPATCH_SECRET, the secret the handlers check")
        self.table, self.budget = table, budget
        self.endpoints = {url: Endpoint(url, secret or "", timeout) for url in sorted(remote)}
        self._failures: dict[str, int] = {}
        self._lost: dict[str, list[TransportFailure]] = {}
        self._one_step: set[str] = set()  # runs whose requests ask for one step each
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @classmethod
    def parse(cls, text: str | None, secret: str | None, timeout: float = 300.0,
              budget: float = 1.0) -> RemoteRuns:
        return cls(parse_table(text), secret, timeout, budget)

    def endpoint_for(self, workflow_id: str) -> Endpoint | None:
        target = self.table.get(workflow_id, self.table.get("*", INLINE))
        return None if target == INLINE else self.endpoints[target]

    def session(self, rt: Runtime, claimed: Claimed) -> RemoteSession | None:
        """The session executing `claimed` over HTTP; None: it runs inline."""
        endpoint = self.endpoint_for(claimed.journal.state.workflow_id)
        return None if endpoint is None else RemoteSession(rt, claimed, self, endpoint)

    def register(self, registry: WorkflowRegistry, retry: float = 5.0) -> list[str]:
        """Register the workflows the handlers serve (`GET {url}/workflows`) that this
        process has not imported, so triggers and children know them; their names. A
        handler that does not answer is asked again every `retry` seconds, in a thread,
        until it does (or `close`)."""
        added: list[str] = []
        for endpoint in self.endpoints.values():
            try:
                added += self._register(registry, endpoint)
            except DispatchUnavailable as error:
                log.warning("could not list the workflows of %s (asking again every %ss): "
                            "%s", endpoint.url, retry, error)
                threading.Thread(target=self._register_later, args=(registry, endpoint, retry),
                                 name="ledgerflow-dispatch-register", daemon=True).start()
        return added

    def _register_later(self, registry: WorkflowRegistry, endpoint: Endpoint,
                        retry: float) -> None:
        while not self._closed.wait(retry):
            try:
                names = self._register(registry, endpoint)
            except DispatchUnavailable:
                continue
            log.info("workflows served by %s: %s", endpoint.url, ", ".join(names) or "none")
            return

    def _register(self, registry: WorkflowRegistry, endpoint: Endpoint) -> list[str]:
        added: list[str] = []
        for info in endpoint.workflows():
            name = info["name"]
            if self.endpoint_for(name) is endpoint and name not in registry.names():
                typed = info.get("inputSchema") is not None
                for version in info["versions"]:
                    registry.register(name, _served_at(name, endpoint.url), version,
                                      queue=info.get("queue") or None,
                                      rerun_safety=info.get("rerunSafety", "safe"),
                                      input_check=_checked_at(endpoint, name, version)
                                      if typed else None)
                added.append(name)
        return added

    def budget_for(self, run_id: str) -> float:
        """The budget of `run_id`'s next request: 0 (one step) once one was lost."""
        with self._lock:
            return 0.0 if run_id in self._one_step else self.budget

    def failed(self, run_id: str, lost: TransportFailure | None = None) -> timedelta:
        """One more failed dispatch of `run_id`; how long until it is tried again.
        `lost`: its answer was lost, so the run's requests ask for one step each from
        now on; if that request did already, the next ones tell the handler."""
        with self._lock:
            count = self._failures[run_id] = self._failures.get(run_id, 0) + 1
            if lost is not None:
                if run_id in self._one_step or self.budget == 0:
                    self._lost.setdefault(run_id, []).append(lost)
                self._one_step.add(run_id)
        return timedelta(seconds=min(2 ** (count - 1), 60))

    def transport_failures(self, run_id: str) -> list[TransportFailure]:
        """The requests of `run_id` that got no answer since its last answered one."""
        with self._lock:
            return list(self._lost.get(run_id, ()))

    def attempt(self, run_id: str) -> int:
        with self._lock:
            return self._failures.get(run_id, 0) + 1

    def answered(self, run_id: str, ended: bool = False) -> None:
        """`run_id`'s request was answered (`ended`: the run ends with it)."""
        with self._lock:
            self._failures.pop(run_id, None)
            self._lost.pop(run_id, None)
            if ended:
                self._one_step.discard(run_id)

    def close(self) -> None:
        self._closed.set()
        for endpoint in self.endpoints.values():
            endpoint.close()


def _checked_at(endpoint: Endpoint, name: str, version: str) -> Callable[[Any], None]:
    """The input check of a workflow the handler at `endpoint` serves with an input
    model: asked there (`POST /check`); when the handler cannot answer, the trigger goes
    on and the run's execution checks the input (as before the check existed)."""
    def check(value: Any) -> None:
        try:
            errors = endpoint.check_input(name, version, value)
        except DispatchUnavailable as error:
            log.warning("the input of a run of %s@%s is not checked at trigger (its handler "
                        "checks it when the run executes): %s", name, version, error,
                        extra={"workflow": name})
            return
        if errors:
            raise InvalidInput(f"{name}@{version}", errors)

    return check


def _served_at(name: str, url: str) -> Any:
    def remote(ctx: Any, input: Any) -> Any:
        raise UnknownWorkflow(name, None, [f"{name} (served by the handler at {url})"])

    remote.__doc__ = f"Served by the workflow handler at {url}."
    return remote


class RemoteWatch(RunWatch):
    """The watch of a remote run: while a request is out (`busy`), a cancel of the run
    (made here, or seen by the heartbeat in `InFlight.poll`) is relayed to the handler,
    which sets its steps' `cancelled`."""

    def __init__(self, session: RunSession, endpoint: Endpoint) -> None:
        super().__init__(session.run_id, session.committed, None,
                         session.journal.state.workflow_id)
        self._endpoint = endpoint

    def cancel(self) -> None:
        super().cancel()
        if self.busy:
            try:
                self._endpoint.cancel(self.run_id)
            except Exception as error:  # the run ends anyway: its next write meets the cancel
                log.warning("run %s: could not tell %s it was canceled: %s", self.run_id,
                            self._endpoint.url, error, extra={"run_id": self.run_id})


class RemoteSession(RunSession):
    """One execution of a claimed run whose function runs at a handler (see module)."""

    def __init__(self, rt: Runtime, claimed: Claimed, remote: RemoteRuns,
                 endpoint: Endpoint) -> None:
        super().__init__(rt, claimed.journal, claimed.held, claimed.opened)
        self.remote, self.endpoint = remote, endpoint
        self.watch = RemoteWatch(self, endpoint)

    def _call(self, records: list[RecordedEvent]) -> DispatchResponse:
        """Post the run; meanwhile the watch is busy, so a cancel reaches the handler."""
        info = self.watch.begin("$dispatch", self.remote.attempt(self.run_id))
        try:
            return self.endpoint.call(self._request(records), self._chunk)
        finally:
            self.watch.end(info)

    def _chunk(self, chunk: ev.StreamChunk) -> None:
        """A step's chunk the handler streams: appended at once, as an inline step's is
        (the answer brings it again; `_take` skips it). One that cannot be written now
        is written with the answer."""
        try:
            self.chunks.put(chunk)
        except LedgerflowError as error:
            log.warning("run %s: a chunk of stream %r waits for the handler's answer: %s",
                        self.run_id, chunk.name, error, extra={"run_id": self.run_id})

    def _run_once(self) -> str:
        if self.rt.stopping:
            self.flush(also=self._give_back)
            return "released"
        records = self._refresh()
        sent = self.clock()
        try:
            answer = self._call(records)
        except RemoteUnknownWorkflow as error:
            return self.fail(error_info(error), "none")
        except DispatchUnavailable as error:
            return self._later(error, sent)
        self.remote.answered(self.run_id, answer.next.action in ("complete", "fail", "cancel"))
        try:
            self._take(answer.events)
        except (LedgerflowError, ValueError) as error:
            return self._later(ProtocolMismatch(
                f"the handler at {self.endpoint.url} answered events this run cannot take: "
                f"{error}"))
        return self._follow(answer.next)

    def _request(self, records: Iterable[RecordedEvent]) -> DispatchRequest:
        state = self.journal.state
        return DispatchRequest(
            protocol=PROTOCOL, request_id=new_id(), run_id=self.run_id,
            workflow_id=state.workflow_id, workflow_version=state.workflow_version,
            input=state.input, journal=[Record.of(r) for r in records],
            attempt=self.remote.attempt(self.run_id), now=self.clock(),
            budget_seconds=self.remote.budget_for(self.run_id),
            transport_failures=self.remote.transport_failures(self.run_id))

    def _refresh(self) -> list[RecordedEvent]:
        """The run's stored journal, merged as `_reconcile` merges it."""
        with self.rt.store.transaction() as tx:
            recs = tx.read_stream(self.run_id)
        for rec in recs:
            if rec.version > self.committed and not isinstance(rec.event, INPUT_EVENTS) \
                    and not cancels(rec.event):
                raise Abandon()
        self.journal = Journal.build(self.run_id, recs)
        self.committed = self.watch.version = self.journal.version
        return recs

    def _take(self, records: Iterable[Any]) -> None:
        for record in records:
            event = record.event()
            if not isinstance(event, WRITTEN_BY_HANDLER):
                raise ValueError(f"{event.type_name()} is the worker's to write")
            if isinstance(event, ev.StreamChunk) and event.step_id is not None \
                    and event.attempt is not None \
                    and event.seq <= self.chunks.written(event.step_id, event.attempt):
                continue  # streamed live, written then
            self.record(event)

    def _follow(self, next: Next) -> str:
        match next.action:
            case "continue":
                self.flush()
                raise Replay()
            case "complete":
                return self.complete(next.result)
            case "fail":
                error = next.error or ev.ErrorInfo(type="Error", message="failed remotely")
                return self.fail(error, next.compensation)
            case "cancel" if self.canceling:
                return self.cancel(None)  # the handler ran the compensators
            case "park" if next.waitpoint is not None:
                return self._park(next)
        return self._later(ProtocolMismatch(f"the handler at {self.endpoint.url} answered "
                                            f"{next.action!r} without what it needs"))

    def _park(self, next: Next) -> str:
        assert next.waitpoint is not None
        child = next.child
        spec = None
        if child is not None:
            try:
                self.rt.queue_of(self.rt.registry.get(child.workflow_id).queue)
            except LedgerflowError as error:
                return self.fail(error_info(error), "none")
            spec = ChildSpec(child.run_id, child.step_id, child.workflow_id, child.input)
        return self.park(Park(next.waitpoint, next.due_at, None, spec))

    def _later(self, error: DispatchUnavailable, sent: datetime | None = None) -> str:
        """The handler cannot execute the run now: give it back, due after a back-off
        (a request sent at `sent` whose answer was lost is remembered for the next)."""
        lost = None if not error.lost or sent is None else TransportFailure(at=sent,
                                                                              error=str(error))
        counted = "" if lost is None else (
            " (counted as a failed attempt of the step it ran)"
            if self.remote.budget_for(self.run_id) == 0
            else " (not counted: it could run several steps; the next requests run one each)")
        delay = self.remote.failed(self.run_id, lost)
        level = logging.ERROR if isinstance(error, ProtocolMismatch) else logging.WARNING
        log.log(level, "run %s: dispatch to %s failed, retrying in %ss%s: %s", self.run_id,
                self.endpoint.url, delay.total_seconds(), counted, error,
                extra={"run_id": self.run_id, "workflow": self.journal.state.workflow_id})
        due = self.clock() + delay

        def later(tx: Transaction) -> None:
            queue.park(tx, self.run_id, due, self.held)

        self.pending = []
        self._refresh()  # what was taken from the answer is not written
        self.flush(also=later)
        return "released"

    def _reconcile(self) -> bool:
        """As `RunSession._reconcile`; a wait's timeout the handler decided is dropped
        when something else was appended meanwhile (a signal may have come in time):
        the execution posts again."""
        decisive = super()._reconcile()
        if decisive and any(isinstance(e, ev.WaitTimedOut) for e in self.pending):
            self.pending = []
            raise Replay()
        return decisive
