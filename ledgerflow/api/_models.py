"""Wire models of the HTTP API: camelCase on the wire, snake_case in Python.

Request models validate what a client sends (422 otherwise); response models
document what the API returns (the routes serialise the projections' `to_wire()`
dicts directly, which have exactly these shapes).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

MAX_ID = 200
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=_PRINTABLE)]
"""An identifier: workflow id, run id, step id, signal name, tag (no control characters)."""

Text = Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")]

Status = Literal["pending", "running", "suspended", "compensating", "completed", "failed",
                 "canceled"]

_INT64 = 2**63


def storable(value: Any, where: str = "value") -> Any:
    """`value` if every database can store it as JSON, else ValueError saying why.

    JSON allows what PostgreSQL's jsonb and our encoders refuse: NUL characters,
    unpaired surrogates, non-finite numbers and integers beyond 64 bits.
    """
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -_INT64 <= item < _INT64:
                raise ValueError(f"{path}: integer {item} does not fit in 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{path}: {item} is not a finite number")
        elif isinstance(item, dict):
            for key, sub in item.items():
                _check_text(key, f"{path} key")
                stack.append((sub, f"{path}.{key}"))
        elif isinstance(item, list):
            stack.extend((sub, f"{path}[{i}]") for i, sub in enumerate(item))
    return value


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{path}: strings may not contain the NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{path}: string is not valid Unicode (unpaired surrogate)") from None


class Wire(BaseModel):
    """camelCase aliases; unknown fields are an error (a typo should not pass silently)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class JsonChecked(Wire):
    """A request whose free-form JSON fields must be storable."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value)


class TriggerRequest(JsonChecked):
    """`POST /api/runs`: start a run of a registered workflow."""

    workflow_id: Name
    workflow_version: Name | None = None
    input: JsonValue = None
    tenant_meta: dict[str, JsonValue] | None = None
    run_id: Name | None = None
    tags: list[Name] | None = Field(default=None, max_length=100)


class SignalRequest(JsonChecked):
    """`POST /api/runs/{id}/signals`."""

    name: Name
    payload: JsonValue = None


class EventRequest(JsonChecked):
    """`POST /api/runs/{id}/events`."""

    event_type: Name
    payload: JsonValue = None


class TokenRequest(JsonChecked):
    """`POST /api/runs/{id}/tokens/{tokenId}`."""

    payload: JsonValue = None


class CancelRequest(JsonChecked):
    """`POST /api/runs/{id}/cancel`; `compensate`: undo the completed steps first."""

    reason: Text | None = None
    compensate: bool = False


class RerunRequest(JsonChecked):
    """`POST /api/runs/{id}/rerun`: a new run, same workflow; input defaults to the old one."""

    input: JsonValue = None
    tags: list[Name] | None = Field(default=None, max_length=100)


class ResumeRequest(JsonChecked):
    """`POST /api/runs/{id}/resume`: a new run linked to a failed one."""

    input: JsonValue = None
    workflow_id: Name | None = None
    resume_from_step: Name | None = None
    seed_results: dict[str, JsonValue] | None = None
    run_id: Name | None = None
    tags: list[Name] | None = Field(default=None, max_length=100)
    triggered_by_user_id: Name | None = None


class ReplayRequest(Wire):
    """`POST /api/outbox/dead-letters/replay`: some rows by id, the oldest N, or all."""

    ids: list[Annotated[int, Field(ge=1, lt=_INT64)]] | None = Field(default=None,
                                                                     max_length=10_000)
    limit: Annotated[int, Field(ge=1, le=100_000)] | None = None


# ------------------------------------------------------------------ responses


class ErrorBody(Wire):
    """Every 4xx/5xx: a machine code, a sentence for people, and facts."""

    error: str
    message: str
    details: JsonValue = None


class WaitpointOut(Wire):
    kind: str
    name: str
    token_id: str | None = None
    wake_at: str | None = None
    timeout_at: str | None = None


class RunOut(Wire):
    """A run record."""

    id: str
    workflow_id: str
    workflow_version: str
    status: Status
    input: JsonValue
    result: JsonValue
    error: dict[str, JsonValue] | None
    waitpoint: WaitpointOut | None
    wake_at: str | None
    parent_run_id: str | None
    children: list[str]
    tags: list[str]
    tenant_meta: dict[str, JsonValue]
    created_at: str
    updated_at: str
    version: int


class RunPage(Wire):
    data: list[RunOut]
    next_cursor: str | None


class HistoryOut(Wire):
    event_id: str
    position: int
    version: int
    type: str
    data: dict[str, JsonValue]
    metadata: dict[str, JsonValue]
    recorded_at: str


class HistoryPage(Wire):
    data: list[HistoryOut]
    next_cursor: str | None


class JournalOut(Wire):
    step_id: str
    status: str
    attempt: int
    result: JsonValue
    error: dict[str, JsonValue] | None
    started_at: str | None
    completed_at: str | None


class JournalPage(Wire):
    data: list[JournalOut]
    next_cursor: str | None


class DeadLetterOut(Wire):
    id: int
    event_id: str
    topic: str
    key: str | None
    event_type: str | None
    attempts: int
    error_class: str | None
    last_error: str | None
    first_attempt_at: str | None
    last_attempt_at: str | None
    created_at: str | None


class DeadLetterPage(Wire):
    data: list[DeadLetterOut]
    next_cursor: str | None


class ReplayOut(Wire):
    replayed: list[int]


class Health(Wire):
    status: Literal["ok"]
