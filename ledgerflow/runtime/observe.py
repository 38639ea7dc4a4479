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
- `child_traceparent(...)`: the trace context a child run started by a step descends from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from datetime import datetime
from typing import Any

from ledgerflow.domain import events as ev

_NOTHING = nullcontext()


class Observer:
    """Observes nothing. Subclasses override what they count."""

    @contextmanager
    def execution(self, run_id: str, workflow: str,
                  metadata: Mapping[str, Any]) -> Iterator[None]:
        """Around one execution of a claimed run, in the thread executing it."""
        yield

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

    def step_ended(self, workflow: str, event: ev.StepCompleted | ev.StepFailed,
                   now: datetime) -> None:
        """An attempt of a step completed or failed (`event.started_at` is its start)."""

    def run_ended(self, workflow: str, status: str) -> None:
        """A run completed, failed or was canceled (`status`), in this process."""


class Observers(Observer):
    """Several observers, told in order."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    @contextmanager
    def execution(self, run_id: str, workflow: str,
                  metadata: Mapping[str, Any]) -> Iterator[None]:
        with ExitStack() as stack:
            for o in self.observers:
                stack.enter_context(o.execution(run_id, workflow, metadata))
            yield

    @contextmanager
    def step(self, run_id: str, workflow: str, step_id: str,
             attempt: int) -> Iterator[None]:
        with ExitStack() as stack:
            for o in self.observers:
                stack.enter_context(o.step(run_id, workflow, step_id, attempt))
            yield

    def step_ended(self, workflow: str, event: ev.StepCompleted | ev.StepFailed,
                   now: datetime) -> None:
        for o in self.observers:
            o.step_ended(workflow, event, now)

    def run_ended(self, workflow: str, status: str) -> None:
        for o in self.observers:
            o.run_ended(workflow, status)

    def traceparent(self) -> str | None:
        return next((t for o in self.observers if (t := o.traceparent())), None)

    def child_traceparent(self, workflow: str, run_id: str, step_id: str) -> str | None:
        return next((t for o in self.observers
                     if (t := o.child_traceparent(workflow, run_id, step_id))), None)


NO_OBSERVER = Observer()
