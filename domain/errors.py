"""Errors of the ledgerflow model. Every layer raises these, never driver errors."""

from __future__ import annotations

from typing import Any


class LedgerflowError(Exception):
    """Base of every error ledgerflow raises on purpose."""

    code = "ledgerflow_error"
    http_status = 400

    def details(self) -> dict[str, Any]:
        """Structured facts about the error, for the API's `details` field."""
        return {}


class IllegalTransition(LedgerflowError):
    """A lifecycle trigger that the run's current status does not allow."""

    code = "illegal_transition"
    http_status = 409

    def __init__(self, run_id: str, status: str, trigger: str) -> None:
        self.run_id, self.status, self.trigger = run_id, status, trigger
        super().__init__(
            f"run {run_id!r} is {status!r}: trigger {trigger!r} is not allowed from that status"
        )

    def details(self) -> dict[str, Any]:
        return {"runId": self.run_id, "status": self.status, "trigger": self.trigger}


class ConcurrencyError(LedgerflowError):
    """An append whose expected stream version was not the stream's actual version."""

    code = "concurrency_conflict"
    http_status = 409

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(
            f"wrong expected version {expected} for stream {stream!r} "
            f"(stream version is {actual}); nothing was appended"
        )

    def details(self) -> dict[str, Any]:
        return {"stream": self.stream, "expected": self.expected, "actual": self.actual}


class DuplicateEventId(LedgerflowError):
    """An append that reused an event id already in the store."""

    code = "duplicate_event_id"

    def __init__(self, event_ids: list[str]) -> None:
        self.event_ids = event_ids
        ids = ", ".join(event_ids)
        super().__init__(f"event id(s) already stored: {ids}; nothing was appended")


class UnknownEventType(LedgerflowError):
    """A stored event whose type name no registered event class carries."""

    code = "unknown_event_type"

    def __init__(self, type_name: str, known: list[str]) -> None:
        self.type_name = type_name
        names = ", ".join(sorted(known))
        super().__init__(f"unknown event type {type_name!r}; registered: {names}")


class InvalidEvent(LedgerflowError):
    """Event data that does not validate against its event class."""

    code = "invalid_event"


class EventTooLarge(InvalidEvent):
    """An event larger than the store's `max_event_bytes` (an event that could never
    be published): refused at the append, nothing written."""

    code = "event_too_large"
    http_status = 413

    def __init__(self, type_name: str, stream: str, size: int, limit: int) -> None:
        self.type_name, self.stream, self.size, self.limit = type_name, stream, size, limit
        super().__init__(
            f"{type_name} for stream {stream!r} is {size} bytes, over the event size limit "
            f"of {limit} bytes (LEDGERFLOW_MAX_EVENT_BYTES); nothing was appended")

    def details(self) -> dict[str, Any]:
        return {"eventType": self.type_name, "stream": self.stream, "bytes": self.size,
                "maxBytes": self.limit}


class StoreUnavailable(LedgerflowError):
    """The database could not be reached or refused the operation for a non-domain reason."""

    code = "store_unavailable"
    http_status = 503


class IdempotencyConflict(LedgerflowError):
    """An idempotency key reused with a different request fingerprint."""

    code = "conflict"
    http_status = 409

    def __init__(self, key: str | None, kept: Any = None) -> None:
        self.key, self.kept = key, kept
        super().__init__(
            f"idempotency key {key!r} was already used with a different request; "
            "use a new key for a different request"
        )

    def details(self) -> dict[str, Any]:
        return {"key": self.key}


class RunConflict(IdempotencyConflict):
    """A trigger that names an existing run (by its run id, or by an idempotency key)
    with another workflow or input: refused, the existing run is left as it is."""

    def __init__(self, run_id: str, *, key: str | None = None,
                 differs: list[str] | None = None) -> None:
        LedgerflowError.__init__(self, _run_conflict(run_id, key, differs))
        self.run_id, self.key, self.kept, self.differs = run_id, key, None, differs

    def details(self) -> dict[str, Any]:
        found: dict[str, Any] = {"runId": self.run_id}
        if self.key is not None:
            found["key"] = self.key
        if self.differs:
            found["differs"] = self.differs
        return found


def _run_conflict(run_id: str, key: str | None, differs: list[str] | None) -> str:
    named = f"idempotency key {key!r} names run {run_id!r}" if key is not None else \
        f"run {run_id!r} exists already"
    what = f"another {', '.join(differs)}" if differs else "another workflow or input"
    return (f"{named}, triggered with {what}: nothing was appended (the same workflow "
            "and input return the existing run; use a new id or key for another run)")


class RerunNotConfirmed(LedgerflowError):
    """A rerun of a workflow declared `rerun_safety="unsafe"` (its steps have effects a
    second run would repeat) that was not confirmed: nothing was appended."""

    code = "rerun_not_confirmed"
    http_status = 409

    def __init__(self, run_id: str, workflow_id: str) -> None:
        self.run_id, self.workflow_id = run_id, workflow_id
        super().__init__(
            f"workflow {workflow_id!r} is declared rerun_safety='unsafe' (a second run "
            f"repeats its side effects): rerunning run {run_id!r} needs confirmation "
            "(HTTP body {\"confirm\": true}, CLI --yes, Python confirm=True); nothing was "
            "appended")

    def details(self) -> dict[str, Any]:
        return {"runId": self.run_id, "workflowId": self.workflow_id,
                "reason": "rerun_safety=unsafe"}


class UnknownRun(LedgerflowError):
    """A command or query named a run that does not exist (or is not visible)."""

    code = "run_not_found"
    http_status = 404

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")

    def details(self) -> dict[str, Any]:
        return {"runId": self.run_id}


class UnknownWorkflow(LedgerflowError):
    """A trigger named a workflow (or version) that is not registered."""

    code = "workflow_not_found"
    http_status = 404

    def __init__(self, workflow_id: str, version: str | None, known: list[str]) -> None:
        self.workflow_id, self.version, self.known = workflow_id, version, known
        asked = workflow_id if version is None else f"{workflow_id}@{version}"
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(f"no workflow {asked!r} is registered; registered: {listed}")

    def details(self) -> dict[str, Any]:
        return {"workflowId": self.workflow_id, "version": self.version, "known": self.known}


class NotAwaited(LedgerflowError):
    """A token (or other wait-only input) sent to a run that is not waiting for it."""

    code = "not_awaited"
    http_status = 409

    def __init__(self, run_id: str, kind: str, name: str) -> None:
        self.run_id, self.kind, self.name = run_id, kind, name
        super().__init__(f"run {run_id!r} is not waiting for {kind} {name!r}; nothing was appended")

    def details(self) -> dict[str, Any]:
        return {"runId": self.run_id, "kind": self.kind, "name": self.name}


class InvalidRequest(LedgerflowError):
    """A command whose arguments are wrong (bad seed results, non-JSON input ...)."""

    code = "invalid_request"
    http_status = 422


class InvalidInput(InvalidRequest):
    """A run's input that its workflow's input model refuses: nothing was appended.
    `errors`: pydantic's, each `{loc, msg, type}`, `loc` starting at "input"."""

    def __init__(self, workflow: str, errors: list[dict[str, Any]]) -> None:
        self.workflow, self.errors = workflow, errors
        listed = "; ".join(self.lines()[:5]) + ("; ..." if len(errors) > 5 else "")
        super().__init__(f"the input of workflow {workflow!r} does not validate "
                         f"({len(errors)} error(s)): {listed}; nothing was appended")

    def lines(self) -> list[str]:
        """One line per error: where (`input.items.0.qty`), then what is wrong."""
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in self.errors]

    def details(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "errors": self.errors}


class NonDeterminismError(LedgerflowError):
    """Replay reached a step that history does not have at that point."""

    code = "non_determinism"
    http_status = 500


class AmbiguousRunId(LedgerflowError):
    """A run id prefix that more than one run's id starts with."""

    code = "ambiguous_run_id"
    http_status = 409

    def __init__(self, prefix: str, candidates: list[str], more: bool = False) -> None:
        self.prefix, self.candidates, self.more = prefix, candidates, more
        listed = ", ".join(candidates) + (", ..." if more else "")
        super().__init__(f"run id prefix {prefix!r} is ambiguous: it starts {listed}; "
                         "give more characters")

    def details(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "candidates": self.candidates, "more": self.more}


class DatabaseNotReady(LedgerflowError):
    """The database is missing or its schema is not upgraded (`ledgerflow db upgrade`)."""

    code = "database_not_ready"
    http_status = 503


class NotArchived(LedgerflowError):
    """A restore named a run that no archive holds."""

    code = "run_not_archived"
    http_status = 404

    def __init__(self, run_id: str, where: str) -> None:
        self.run_id = run_id
        super().__init__(f"no archive in {where} holds run {run_id!r}")

    def details(self) -> dict[str, Any]:
        return {"runId": self.run_id}


class ArchiveRefused(LedgerflowError):
    """An archive or restore that would lose or damage history: nothing was changed."""

    code = "archive_refused"
    http_status = 409

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id, self.reason = run_id, reason
        super().__init__(f"run {run_id!r}: {reason}; nothing was changed")

    def details(self) -> dict[str, Any]:
        return {"runId": self.run_id, "reason": self.reason}
