"""The API's errors back as the exceptions the engine raises.

Every 4xx/5xx the API sends is `{error: code, message, details?}`. `error_from` maps
the code back to the `ledgerflow.domain.errors` class that raised it on the server
(`run_not_found` -> `UnknownRun`, `illegal_transition` -> `IllegalTransition`, ...),
with the server's message verbatim and the attributes its `details` name (so
`error.run_id`, `error.details()` read as on the server). A code no engine error has
(auth, tenancy, routing, size: `unauthorized`, `forbidden`, `payload_too_large`, ...)
becomes `RemoteError`, which carries the code and the HTTP status.
"""

from __future__ import annotations

from typing import Any

from ledgerflow.domain.errors import (
    AmbiguousRunId,
    ConcurrencyError,
    DatabaseNotReady,
    DuplicateEventId,
    EventTooLarge,
    IdempotencyConflict,
    IllegalTransition,
    InvalidEvent,
    InvalidInput,
    InvalidRequest,
    LedgerflowError,
    NonDeterminismError,
    NotAwaited,
    RerunNotConfirmed,
    RunConflict,
    StoreUnavailable,
    UnknownQueue,
    UnknownRun,
    UnknownSchedule,
    UnknownWorkflow,
)
from ledgerflow.eventstore.idempotency import IdempotencyInProgress


class RemoteError(LedgerflowError):
    """An error of the API that no engine error stands for (or a response that is not
    the API's error shape): `code`, `http_status` and `details()` as the server sent."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.http_status, self.code, self._details = status, code, details or {}

    def details(self) -> dict[str, Any]:
        return self._details


Attrs = dict[str, str]
"""attribute of the exception -> key of the error's `details`."""

_BY_CODE: dict[str, tuple[type[LedgerflowError], Attrs]] = {
    "illegal_transition": (IllegalTransition,
                           {"run_id": "runId", "status": "status", "trigger": "trigger"}),
    "concurrency_conflict": (ConcurrencyError,
                             {"stream": "stream", "expected": "expected", "actual": "actual"}),
    "run_not_found": (UnknownRun, {"run_id": "runId"}),
    "workflow_not_found": (UnknownWorkflow,
                           {"workflow_id": "workflowId", "version": "version", "known": "known"}),
    "queue_not_found": (UnknownQueue, {"queue": "queue", "known": "known"}),
    "schedule_not_found": (UnknownSchedule, {"schedule_id": "scheduleId"}),
    "not_awaited": (NotAwaited, {"run_id": "runId", "kind": "kind", "name": "name"}),
    "event_too_large": (EventTooLarge, {"type_name": "eventType", "stream": "stream",
                                        "size": "bytes", "limit": "maxBytes"}),
    "ambiguous_run_id": (AmbiguousRunId,
                         {"prefix": "prefix", "candidates": "candidates", "more": "more"}),
    "rerun_not_confirmed": (RerunNotConfirmed, {"run_id": "runId", "workflow_id": "workflowId"}),
    "idempotency_in_progress": (IdempotencyInProgress, {"key": "key"}),
    "store_unavailable": (StoreUnavailable, {}),
    "database_not_ready": (DatabaseNotReady, {}),
    "non_determinism": (NonDeterminismError, {}),
    "duplicate_event_id": (DuplicateEventId, {}),
    "invalid_event": (InvalidEvent, {}),
}


def _rebuilt(cls: type[LedgerflowError], message: str, details: dict[str, Any],
             attrs: Attrs) -> LedgerflowError:
    """An instance of `cls` with the server's message and the attributes `details`
    holds (its own `__init__` would write another message)."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for attr, key in attrs.items():
        setattr(error, attr, details.get(key))
    return error


def error_from(status: int, body: Any) -> LedgerflowError:
    """The exception an API error response stands for (see the module docstring)."""
    if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
        text = str(body)[:500] if body else f"HTTP {status}"
        return RemoteError(status, "http_error", f"the server answered {status}: {text}")
    code, message = body["error"], str(body.get("message", ""))
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    assert isinstance(details, dict)
    if code == "conflict":
        if "runId" in details:
            error = _rebuilt(RunConflict, message, details,
                             {"run_id": "runId", "key": "key", "differs": "differs"})
            error.kept = None  # type: ignore[attr-defined]
            return error
        return _rebuilt(IdempotencyConflict, message, details, {"key": "key", "kept": "kept"})
    if code == "invalid_request" and status == 422:
        if "workflow" in details and "errors" in details:
            return _rebuilt(InvalidInput, message, details,
                            {"workflow": "workflow", "errors": "errors"})
        return _rebuilt(InvalidRequest, message, details, {})
    known = _BY_CODE.get(code)
    if known is None:
        return RemoteError(status, code, message, details)
    return _rebuilt(known[0], message, details, known[1])
