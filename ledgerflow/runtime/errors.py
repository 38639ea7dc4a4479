"""The exceptions workflow code sees (raised by `Context`, catchable in the workflow)."""

from __future__ import annotations

from datetime import datetime

from ledgerflow.domain.events import ErrorInfo


class StepFailed(Exception):
    """A step failed after its last attempt (raised in workflow code; catchable)."""

    def __init__(self, step_id: str, error: ErrorInfo, attempts: int) -> None:
        self.step_id, self.error, self.attempts = step_id, error, attempts
        super().__init__(
            f"step {step_id!r} failed after {attempts} attempt(s): "
            f"{error.type}: {error.message}")


class WaitTimeout(Exception):
    """A wait (signal, event, token) reached its timeout first (catchable)."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f"wait for {kind} {name!r} timed out")


class ChildFailed(Exception):
    """A child run failed or was canceled."""

    def __init__(self, step_id: str, child_run_id: str, status: str,
                 error: ErrorInfo | None) -> None:
        self.step_id, self.child_run_id, self.status, self.error = (
            step_id, child_run_id, status, error)
        why = f": {error.type}: {error.message}" if error else ""
        super().__init__(f"child run {child_run_id!r} (step {step_id!r}) {status}{why}")


class StepCanceled(Exception):
    """An async step's attempt was cancelled because its run was canceled (not retried)."""

    def __init__(self, step_id: str, attempt: int) -> None:
        self.step_id, self.attempt = step_id, attempt
        super().__init__(f"step {step_id!r} attempt {attempt} was cancelled: its run was "
                         "canceled")


class AsyncMisuse(TypeError):
    """Workflow code mixed sync and async wrongly: an async workflow called a ctx method
    without `await`, or a sync workflow (or its step) produced a coroutine to await.
    Fails the run (not retried)."""


class AttemptLost(Exception):
    """A step attempt whose outcome never reached the run: the request to the workflow
    handler running it failed (a remote run, see `ledgerflow.remote`). Journaled as the
    attempt's failure and retried by the step's policy, whatever its `retry_on` (the
    step did not raise it)."""

    def __init__(self, message: str, started_at: datetime) -> None:
        self.started_at = started_at
        super().__init__(message)
