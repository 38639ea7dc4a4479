"""Undoing a run: the compensators of its completed steps (saga rollback), for a
failure or for a compensating cancel.

A failure that escapes the workflow rolls the run back: RunCompensating (carrying the
failure), the compensators, then RunFailed. A compensating cancel
(`RunCommands.cancel(..., compensate=True)`) appends RunCompensating carrying
`cancel_error(reason)` and makes the run due. The worker that executes it next (or the
one executing it now, when its next write meets that event) sees `canceling(state)`. It
replays the workflow only to collect the compensators of completed steps (no new step
or wait starts), runs them, and appends RunCanceled instead of RunFailed. Each
compensator is journaled as CompensationCompleted or CompensationFailed. One that is
journaled already is not run again after a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.state import RunState
from ledgerflow.runtime.attempts import sync_value
from ledgerflow.runtime.context import Compensation
from ledgerflow.runtime.failures import error_info, json_roundtrip


def cancel_error(reason: str | None) -> ev.ErrorInfo:
    """What RunCompensating carries when a cancel (not a failure) rolls the run back."""
    return ev.ErrorInfo(type="Canceled", message=reason or "canceled",
                        details={"cancel": True})


def canceling(state: RunState) -> bool:
    """Whether the run is rolling back because it was canceled with compensation."""
    return (state.status is RunStatus.COMPENSATING and state.error is not None
            and _for_cancel(state.error))


def cancels(event: ev.Event) -> bool:
    """Whether `event` is the rollback of a compensating cancel."""
    return isinstance(event, ev.RunCompensating) and _for_cancel(event.error)


def _for_cancel(error: ev.ErrorInfo) -> bool:
    return error.type == "Canceled" and error.details.get("cancel") is True


class Host(Protocol):
    """What running compensators needs from the session executing the run."""

    pending: list[ev.Event]

    def flush(self, decision: Sequence[ev.Event] = ()) -> None: ...
    def record(self, event: ev.Event) -> bool: ...


def undo(host: Host, compensations: Sequence[Compensation],
         done: dict[str, bool]) -> list[str]:
    """Run the compensators not journaled yet (`done`: step id -> succeeded), last
    completed step first; returns the step ids whose compensator failed."""
    failed: list[str] = []
    for comp in reversed(compensations):
        ok = done.get(comp.step_id)
        if ok is None:
            ok = _compensate(host, comp)
        if not ok:
            failed.append(comp.step_id)
    return failed


def _compensate(host: Host, comp: Compensation) -> bool:
    attempts = max(3, comp.policy.max_attempts)
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        if host.pending:
            host.flush()
        try:
            out = json_roundtrip(sync_value(comp.fn(comp.result), f"compensator of {comp.step_id}"),
                                 f"compensator of {comp.step_id!r}")
        except Exception as exc:
            last = exc
            continue
        host.record(ev.CompensationCompleted(step_id=comp.step_id, attempt=attempt,
                                             result=out))
        return True
    assert last is not None
    host.record(ev.CompensationFailed(step_id=comp.step_id, attempt=attempts,
                                      error=error_info(last, comp.step_id)))
    return False


def outcome_note(count: int, failed: list[str]) -> str:
    """How the compensation went, in words for the run's error message."""
    if not failed:
        return f"compensation completed ({count} step(s) undone)"
    return f"compensation partial: compensator(s) of {', '.join(failed)} failed"
