"""Wire models of the HTTP API: camelCase on the wire, snake_case in Python.

Request models validate what a client sends (422 otherwise). The records the API
returns are declared once, by the read side (`projections.queries`' run record,
history and journal entries; `outbox.DeadLetter`; `domain.wire.Page` for lists):
the routes serialise them (`wire_values()` on GET, `to_wire()` on POST) and name
the same classes as their response models, so the OpenAPI document describes
exactly what is sent.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
)
from pydantic.alias_generators import to_camel

from ledgerflow.domain.schedules import DEFAULT_CATCHUP_SECONDS, MAX_SCHEDULE_ID
from ledgerflow.domain.wire import Page
from ledgerflow.outbox import DeadLetter
from ledgerflow.projections.queries import HistoryEntry, JournalEntry, RunRecord

MAX_ID = 200
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=_PRINTABLE)]
"""An identifier: workflow id, run id, step id, signal name, tag (no control characters)."""

Text = Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")]

Status = Literal["pending", "running", "suspended", "compensating", "completed", "failed",
                 "canceled"]

_INT64 = 2**63

Priority = Annotated[int, Field(ge=-(2**31), lt=2**31)]
"""A run's priority: higher is claimed first (the run queue keeps it as a 32-bit integer)."""


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


class DebounceBody(Wire):
    """Triggers with the same `key` less than `seconds` apart collapse into one run."""

    key: Name
    seconds: Annotated[float, Field(gt=0, le=86400 * 366)]


class TriggerRequest(JsonChecked):
    """`POST /api/runs`: start a run of a registered workflow (in `queue`, default the
    workflow's; under `concurrencyKey`; not before `startAt`; `debounce`d)."""

    workflow_id: Name
    workflow_version: Name | None = None
    input: JsonValue = None
    tenant_meta: dict[str, JsonValue] | None = None
    run_id: Name | None = None
    tags: list[Name] | None = Field(default=None, max_length=100)
    priority: Priority = 0
    queue: Name | None = None
    concurrency_key: Name | None = None
    start_at: AwareDatetime | None = None
    debounce: DebounceBody | None = None


class RateLimitBody(Wire):
    """At most `limit` run starts per `periodSeconds`."""

    limit: Annotated[int, Field(gt=0, lt=2**31)]
    period_seconds: Annotated[float, Field(gt=0, le=86400 * 366)] = 1.0


class QueueRequest(Wire):
    """`PUT /api/queues/{name}`: create the queue or change the limits given (null: no
    limit)."""

    concurrency: Annotated[int, Field(gt=0, lt=2**31)] | None = None
    per_key_concurrency: Annotated[int, Field(gt=0, lt=2**31)] | None = None
    rate_limit: RateLimitBody | None = None
    paused: bool | None = None


class ScheduleChange(JsonChecked):
    """`PUT /api/schedules/{id}`: the schedule's whole new spec: exactly one of `cron`
    (read in `timezone`) and `everySeconds`; `overlap` when the previous run still
    goes; fires missed for longer than `catchupWindowSeconds` are skipped."""

    workflow_id: Name
    input: JsonValue = None
    cron: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    every_seconds: Annotated[int, Field(ge=1, le=10 * 366 * 86400)] | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=100)] = "UTC"
    overlap: Literal["skip", "buffer_one", "allow"] = "skip"
    catchup_window_seconds: Annotated[int, Field(ge=0, le=10 * 366 * 86400)] = \
        DEFAULT_CATCHUP_SECONDS


class ScheduleRequest(ScheduleChange):
    """`POST /api/schedules`: a new schedule's id and spec (see `ScheduleChange`);
    `paused` creates it paused."""

    schedule_id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SCHEDULE_ID,
                                                  pattern=_PRINTABLE)]
    paused: bool = False


class ScheduleTriggered(Wire):
    """`POST /api/schedules/{id}/trigger`: the run it started."""

    schedule_id: str
    run_id: str


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
    confirm: bool = False
    """Required (true) to rerun a workflow declared `rerun_safety="unsafe"`."""


class ResumeRequest(JsonChecked):
    """`POST /api/runs/{id}/resume`: a new run linked to a failed one (one stored
    elsewhere too, when `workflowId`, `resumeFromStep` and `seedResults` are given)."""

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


# The response models the routes name: the read side's records, not copies of them.
RunOut = RunRecord
RunPage = Page[RunRecord]
HistoryPage = Page[HistoryEntry]
JournalPage = Page[JournalEntry]
DeadLetterPage = Page[DeadLetter]


class ReplayOut(Wire):
    replayed: list[int]


class Health(Wire):
    status: Literal["ok"]


class DiscardRequest(Wire):
    """`POST /api/outbox/dead-letters/discard`: the dead rows to give up, by id."""

    ids: list[Annotated[int, Field(ge=1, lt=_INT64)]] = Field(min_length=1, max_length=10_000)


class DiscardOut(Wire):
    discarded: list[int]
