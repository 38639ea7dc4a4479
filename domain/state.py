"""Run state as a pure fold of the run's events, and lifecycle decisions against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import singledispatch
from typing import Any, Literal

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import IllegalTransition
from ledgerflow.domain.lifecycle import RunStatus, Trigger, next_status


@dataclass(frozen=True)
class RunState:
    """What the events of one run say about it, lifecycle-wise."""

    run_id: str
    status: RunStatus = RunStatus.PENDING
    version: int = 0
    workflow_id: str = ""
    workflow_version: str = ""
    input: Any = None
    result: Any = None
    error: ev.ErrorInfo | None = None
    waitpoint: ev.Waitpoint | None = None
    parent_run_id: str | None = None
    children: tuple[str, ...] = ()
    tenant_meta: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    completed_steps: frozenset[str] = frozenset()

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


def initial(run_id: str) -> RunState:
    """The state of a run before any event."""
    return RunState(run_id=run_id)


Changes = dict[str, Any]


@singledispatch
def _apply(event: ev.Event, state: RunState) -> Changes:
    """What `event` changes in `state` (field -> new value); most events change nothing."""
    return {}


@_apply.register
def _(event: ev.RunCreated, state: RunState) -> Changes:
    return {"workflow_id": event.workflow_id, "workflow_version": event.workflow_version,
            "input": event.input, "tenant_meta": dict(event.tenant_meta),
            "tags": tuple(event.tags), "parent_run_id": event.parent_run_id}


@_apply.register
def _(event: ev.RunInputReplaced, state: RunState) -> Changes:
    return {"input": event.input}


@_apply.register
def _(event: ev.RunStarted, state: RunState) -> Changes:
    return {"status": RunStatus.RUNNING}


@_apply.register
def _(event: ev.RunSuspended, state: RunState) -> Changes:
    return {"status": RunStatus.SUSPENDED, "waitpoint": event.waitpoint}


@_apply.register
def _(event: ev.RunWoken, state: RunState) -> Changes:
    return {"status": RunStatus.RUNNING, "waitpoint": None}


@_apply.register
def _(event: ev.RunCompleted, state: RunState) -> Changes:
    return {"status": RunStatus.COMPLETED, "result": event.result, "waitpoint": None}


@_apply.register
def _(event: ev.RunCompensating, state: RunState) -> Changes:
    return {"status": RunStatus.COMPENSATING, "error": event.error, "waitpoint": None}


@_apply.register
def _(event: ev.RunFailed, state: RunState) -> Changes:
    return {"status": RunStatus.FAILED, "error": event.error, "waitpoint": None}


@_apply.register
def _(event: ev.RunCanceled, state: RunState) -> Changes:
    return {"status": RunStatus.CANCELED, "waitpoint": None}


@_apply.register
def _(event: ev.StepCompleted, state: RunState) -> Changes:
    return {"completed_steps": state.completed_steps | {event.step_id}}


@_apply.register
def _(event: ev.ChildStarted, state: RunState) -> Changes:
    return {"children": (*state.children, event.child_run_id)}


def evolve(state: RunState, event: ev.Event) -> RunState:
    """Return the state after `event`; the version counts every event of the stream.

    A new RunState with the changed fields (as `dataclasses.replace`, which costs
    five times as much: it re-runs `__init__` with every field; replay evolves once
    per event)."""
    new = object.__new__(RunState)
    values = new.__dict__
    values.update(state.__dict__)
    values.update(_apply(event, state))
    values["version"] = state.version + 1
    return new


def fold(run_id: str, events: list[ev.Event]) -> RunState:
    """The state of `run_id` after all of `events`, in order."""
    state = initial(run_id)
    for event in events:
        state = evolve(state, event)
    return state


# -------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """A lifecycle command; `trigger` names the machine trigger it fires."""

    trigger: Trigger


@dataclass(frozen=True)
class Begin(Command):
    trigger: Trigger = Trigger.BEGIN
    worker: str | None = None


@dataclass(frozen=True)
class Suspend(Command):
    waitpoint: ev.Waitpoint = field(default_factory=lambda: ev.Waitpoint(kind="sleep", name=""))
    trigger: Trigger = Trigger.SUSPEND


@dataclass(frozen=True)
class Wake(Command):
    reason: str = "timer"
    name: str | None = None
    trigger: Trigger = Trigger.WAKE


@dataclass(frozen=True)
class Complete(Command):
    result: Any = None
    trigger: Trigger = Trigger.COMPLETE


@dataclass(frozen=True)
class Rollback(Command):
    error: ev.ErrorInfo = field(default_factory=lambda: ev.ErrorInfo(type="Error", message=""))
    trigger: Trigger = Trigger.ROLLBACK


@dataclass(frozen=True)
class Fail(Command):
    error: ev.ErrorInfo = field(default_factory=lambda: ev.ErrorInfo(type="Error", message=""))
    compensation: Literal["none", "completed", "partial"] = "none"
    trigger: Trigger = Trigger.FAIL


@dataclass(frozen=True)
class Cancel(Command):
    reason: str | None = None
    trigger: Trigger = Trigger.CANCEL


def _event_for(command: Command) -> ev.Event:
    match command:
        case Begin(worker=worker):
            return ev.RunStarted(worker=worker)
        case Suspend(waitpoint=waitpoint):
            return ev.RunSuspended(waitpoint=waitpoint)
        case Wake(reason=reason, name=name):
            return ev.RunWoken(reason=reason, name=name)
        case Complete(result=result):
            return ev.RunCompleted(result=result)
        case Rollback(error=error):
            return ev.RunCompensating(error=error)
        case Fail(error=error, compensation=compensation):
            return ev.RunFailed(error=error, compensation=compensation)
        case Cancel(reason=reason):
            return ev.RunCanceled(reason=reason)
    raise TypeError(f"not a lifecycle command: {command!r}")


def decide(state: RunState, command: Command) -> list[ev.Event]:
    """The events `command` appends to a run in `state`, or `IllegalTransition`.

    Pure: validates the trigger against the lifecycle machine, appends nothing.
    """
    next_status(state.run_id, state.status, command.trigger)
    return [_event_for(command)]


def check(state: RunState, trigger: Trigger) -> RunStatus:
    """Raise `IllegalTransition` unless `trigger` is allowed; return the status it leads to."""
    return next_status(state.run_id, state.status, trigger)


__all__ = [
    "Begin",
    "Cancel",
    "Command",
    "Complete",
    "Fail",
    "IllegalTransition",
    "Rollback",
    "RunState",
    "Suspend",
    "Wake",
    "check",
    "decide",
    "evolve",
    "fold",
    "initial",
]
