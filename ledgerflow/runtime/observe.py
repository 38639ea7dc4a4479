"""`Observer`: what the runtime tells the process about runs and steps.

The executor calls it on the hot path, so an observer does in-memory work only
(counters, histograms, spans handed to an exporter's queue): no SQL, no I/O. The
default observes nothing; `ledgerflow.observability.metrics.Metrics` counts,
`ledgerflow.observability.tracing.Tracing` traces, `Observers` fans out to several.
`Runtime.observer` holds one.

- `execution(run_id, workflow, metadata)`: wraps one execution of a claimed run
  (the run's stored metadata holds the `traceparent` its spans descend from);
- `step(...)`: wraps one attempt of a step, in the thread running its code (a span
  it makes current there parents whatever the step's code records);
- `step_ended`, `run_ended`: a step attempt, a run ended here;
- `traceparent()`: the W3C trace context of the caller, stored with a new run;
- `open_run(run_id, workflow)`: instead of `traceparent()` when a trigger starts the
  run at once in this process (an eager trigger): an `OpenedRun` whose `traceparent`
  the run stores and whose `execution()` its first execution runs in (None: as any);
- `child_traceparent(...)`: the trace context a child run started by a step descends from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import datetime
from typing import Any

from ledgerflow.domain import events as ev

_NOTHING = nullcontext()


class OpenedRun:
    """A run's first execution, begun by the trigger that creates the run and hands it
    to a worker thread of this process (`Observer.open_run`): one observer call where a
    trigger and a claim would make two (a trace's root span, say, is the run's own).

    `traceparent`: what the run stores; `execution()`: what its first execution runs
    in, once; `close()`: the trigger could not hand the run over (executed later, maybe
    elsewhere). One neither executed nor closed (the run was not created) is dropped."""

    traceparent: str | None = None

    def execution(self) -> AbstractContextManager[None]:
        return _NOTHING

    def close(self) -> None:
        """The run was created but is not executed here now."""


class Observer:
    """Observes nothing. Subclasses override what they count."""

    def execution(self, run_id: str, workflow: str,
                  metadata: Mapping[str, Any]) -> AbstractContextManager[None]:
        """Around one execution of a claimed run, in the thread executing it."""
        return _NOTHING

    def step(self, run_id: str, workflow: str, step_id: str,
             attempt: int) -> AbstractContextManager[None]:
        """Around one attempt of step `step_id`, in the thread running its code; an
        exception it raises passes through."""
        return _NOTHING

    def traceparent(self) -> str | None:
        """The caller's W3C `traceparent`, stored in a new run's metadata (None: none)."""
        return None

    def child_traceparent(self, workflow: str, run_id: str, step_id: str) -> str | None:
        """The `traceparent` of a child run that step `step_id` of `run_id` starts."""
        return None

    def open_run(self, run_id: str, workflow: str) -> OpenedRun | None:
        """The first execution of a run a trigger creates and executes at once here
        (None: store `traceparent()` and observe it with `execution`)."""
        return None

    def step_ended(self, workflow: str, event: ev.StepCompleted | ev.StepFailed,
                   now: datetime) -> None:
        """An attempt of a step completed or failed (`event.started_at` is its start)."""

    def run_ended(self, workflow: str, status: str) -> None:
        """A run completed, failed or was canceled (`status`), in this process."""


class Observers(Observer):
    """Several observers, told in order. Each call goes only to the observers that
    override it (the step hooks run on every step attempt: a no-op member costs
    nothing there), and straight to the one when only one does."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers
        self._execution = _overriding(observers, "execution")
        self._step = _overriding(observers, "step")
        self._step_ended = _overriding(observers, "step_ended")
        self._run_ended = _overriding(observers, "run_ended")
        opening = _overriding(observers, "open_run")
        # its `OpenedRun.execution()` stands for every observer's `execution`: so only
        # when that observer is the only one observing executions
        self._opener = opening[0] if opening == self._execution and len(opening) == 1 \
            else None

    def execution(self, run_id: str, workflow: str,
                  metadata: Mapping[str, Any]) -> AbstractContextManager[None]:
        if len(self._execution) == 1:
            return self._execution[0].execution(run_id, workflow, metadata)
        return _all(o.execution(run_id, workflow, metadata) for o in self._execution)

    def step(self, run_id: str, workflow: str, step_id: str,
             attempt: int) -> AbstractContextManager[None]:
        if len(self._step) == 1:
            return self._step[0].step(run_id, workflow, step_id, attempt)
        return _all(o.step(run_id, workflow, step_id, attempt) for o in self._step)

    def step_ended(self, workflow: str, event: ev.StepCompleted | ev.StepFailed,
                   now: datetime) -> None:
        for o in self._step_ended:
            o.step_ended(workflow, event, now)

    def run_ended(self, workflow: str, status: str) -> None:
        for o in self._run_ended:
            o.run_ended(workflow, status)

    def traceparent(self) -> str | None:
        return next((t for o in self.observers if (t := o.traceparent())), None)

    def child_traceparent(self, workflow: str, run_id: str, step_id: str) -> str | None:
        return next((t for o in self.observers
                     if (t := o.child_traceparent(workflow, run_id, step_id))), None)

    def open_run(self, run_id: str, workflow: str) -> OpenedRun | None:
        return None if self._opener is None else self._opener.open_run(run_id, workflow)


def execution_of(observer: Observer, opened: OpenedRun | None, run_id: str, workflow: str,
                 metadata: Mapping[str, Any]) -> AbstractContextManager[None]:
    """What an execution of a run runs in: the first execution an eager trigger opened
    (`opened`), else `observer.execution(...)`."""
    if opened is not None:
        return opened.execution()
    return observer.execution(run_id, workflow, metadata)


def _overriding(observers: Sequence[Observer], method: str) -> tuple[Observer, ...]:
    """The observers whose class overrides `Observer.<method>`."""
    return tuple(o for o in observers
                 if getattr(type(o), method) is not getattr(Observer, method))


@contextmanager
def _all(managers: Iterable[AbstractContextManager[None]]) -> Iterator[None]:
    """Every manager entered in order (each made as the one before is entered), exited
    in reverse."""
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield


NO_OBSERVER = Observer()
