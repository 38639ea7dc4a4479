"""Event classes, their registry, and schema upcasting.

Each event type is one frozen pydantic model with a `schema_version`. The
registry maps the stored type name (the class name) to the class; stored data
of an older schema version is upcast step by step (N -> N+1) before validation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ledgerflow.domain.errors import InvalidEvent, UnknownEventType

JSON = Any
"""A value that survives `json.dumps` / `json.loads` unchanged."""


class Event(BaseModel):
    """Base of every event. Subclasses are registered with `@register`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


class ErrorInfo(BaseModel):
    """A failure, as journaled: the exception's class, its message and where it happened.

    `traceback` (optional; histories written before it existed have none) is the
    formatted traceback of the user's code, the engine's own frames left out."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: str
    message: str
    step_id: str | None = None
    details: dict[str, JSON] = Field(default_factory=dict)
    traceback: str | None = None


WaitKind = Literal["sleep", "signal", "event", "token", "child", "retry", "agent"]


class Waitpoint(BaseModel):
    """What a suspended run waits for. `pending` (kind `agent` only): the tool calls the
    agent step waits on, as its suspension journaled them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: WaitKind
    name: str
    token_id: str | None = None
    wake_at: datetime | None = None
    timeout_at: datetime | None = None
    pending: list[JSON] | None = None


# --------------------------------------------------------------------- registry

E = TypeVar("E", bound=type[Event])
EVENT_TYPES: dict[str, type[Event]] = {}
Upcaster = Callable[[dict[str, JSON]], dict[str, JSON]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register(cls: E) -> E:
    """Class decorator: make `cls` decodable from its stored type name."""
    name = cls.type_name()
    if name in EVENT_TYPES and EVENT_TYPES[name] is not cls:
        raise ValueError(f"event type {name!r} is registered twice")
    EVENT_TYPES[name] = cls
    return cls


def upcaster(type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register the function that turns `from_version` data into the next version."""

    def deco(fn: Upcaster) -> Upcaster:
        UPCASTERS[(type_name, from_version)] = fn
        return fn

    return deco


_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def nul_in_json(text: str) -> bool:
    """Whether JSON text holds a NUL character (the escape `\\u0000`, not an escaped
    backslash before `u0000`). PostgreSQL's jsonb cannot store one, so no backend
    takes it: the same input must not pass on SQLite and fail on PostgreSQL."""
    return "\\u0000" in text and _NUL.search(text) is not None


def unstorable_json(text: str) -> str | None:
    """What in JSON text (dumped with `ensure_ascii=False`) no backend can store, as
    words for an error message; None when there is nothing."""
    if nul_in_json(text):
        return "a NUL character (\\u0000)"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "text that is not valid Unicode (an unpaired surrogate)"
    return None


def encode(event: Event) -> tuple[str, int, dict[str, JSON]]:
    """Return (type name, schema version, JSON-ready data) for storage."""
    return event.type_name(), event.schema_version, event.model_dump(mode="json")


def decode(type_name: str, schema_version: int, data: dict[str, JSON] | str | bytes) -> Event:
    """Rebuild an event from stored form, upcasting old schema versions first.

    `data` may be the JSON text itself: an event of the current schema version is then
    parsed and validated in one pass (the fast path of catch-up reads and rebuilds).
    """
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEventType(type_name, list(EVENT_TYPES))
    if not isinstance(data, dict):
        if schema_version == cls.schema_version:
            try:
                return cls.model_validate_json(data)
            except ValidationError as exc:
                raise InvalidEvent(f"stored {type_name} v{schema_version} does not validate: "
                                   f"{exc}") from exc
        data = json.loads(data)
    assert isinstance(data, dict)
    version = schema_version
    while version < cls.schema_version:
        step = UPCASTERS.get((type_name, version))
        if step is None:
            raise InvalidEvent(
                f"no upcaster for {type_name} from schema version {version} "
                f"to {cls.schema_version}"
            )
        data = step(data)
        version += 1
    if version > cls.schema_version:
        raise InvalidEvent(
            f"{type_name} has schema version {version}, newer than this code's "
            f"{cls.schema_version}; upgrade ledgerflow to read it"
        )
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(f"stored {type_name} v{version} does not validate: {exc}") from exc


# --------------------------------------------------------------- lifecycle events


@register
class RunCreated(Event):
    """A run exists, pending. Schema v2 replaced v1's flat `tenant` with `tenant_meta`."""

    schema_version: ClassVar[int] = 2
    workflow_id: str
    workflow_version: str
    input: JSON = None
    tenant_meta: dict[str, JSON] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    rerun_of: str | None = None
    resumed_from: str | None = None
    resume_from_step: str | None = None
    seed_results: dict[str, JSON] = Field(default_factory=dict)
    priority: int = 0
    not_before: datetime | None = None


@upcaster("RunCreated", 1)
def _run_created_v1_to_v2(data: dict[str, JSON]) -> dict[str, JSON]:
    data = dict(data)
    tenant = data.pop("tenant", None)
    data["tenant_meta"] = {"tenantId": tenant} if tenant is not None else {}
    return data


@register
class RunStarted(Event):
    """trigger `begin`: pending -> running."""

    worker: str | None = None


@register
class RunSuspended(Event):
    """trigger `suspend`: running -> suspended, parked at a waitpoint."""

    waitpoint: Waitpoint


@register
class RunWoken(Event):
    """trigger `wake`: suspended -> running."""

    reason: str
    name: str | None = None


@register
class RunCompleted(Event):
    """trigger `complete`: running -> completed."""

    result: JSON = None


@register
class RunCompensating(Event):
    """trigger `rollback`: running|suspended -> compensating."""

    error: ErrorInfo


@register
class RunFailed(Event):
    """trigger `fail`: running|suspended|compensating -> failed."""

    error: ErrorInfo
    compensation: Literal["none", "completed", "partial"] = "none"


@register
class RunCanceled(Event):
    """trigger `cancel`: any non-terminal status -> canceled."""

    reason: str | None = None


# ------------------------------------------------------------------ step events


@register
class StepCompleted(Event):
    """A step's result is journaled. Exactly one per (run, step_id)."""

    step_id: str
    result: JSON = None
    attempt: int = 1
    started_at: datetime | None = None


@register
class StepFailed(Event):
    """One attempt of a step failed; `final` when no attempt is left."""

    step_id: str
    attempt: int
    error: ErrorInfo
    final: bool = False
    started_at: datetime | None = None


@register
class RetryScheduled(Event):
    """The next attempt of a failed step is due at `due_at`."""

    step_id: str
    attempt: int
    due_at: datetime


@register
class StepResultDiscarded(Event):
    """An attempt that had timed out returned after all (within its grace period, or
    later): what it returned (`result`) or raised (`error`) is kept for the audit and
    never used. Another attempt, or the workflow, has gone on without it."""

    step_id: str
    attempt: int
    result: JSON = None
    error: ErrorInfo | None = None
    reason: str = "timeout"


@register
class StepSuspended(Event):
    """An attempt of an agent step returned a suspension (round `round`, 1-based): the
    run waits on token `token_id` for the results of the `pending` tool calls, and the
    step is entered again with them and with `state`, the agent's snapshot."""

    step_id: str
    attempt: int
    round: int
    token_id: str
    state: JSON = None
    pending: list[JSON] = Field(default_factory=list)
    started_at: datetime | None = None


@register
class CompensationCompleted(Event):
    """The compensator of a completed step ran."""

    step_id: str
    attempt: int = 1
    result: JSON = None


@register
class CompensationFailed(Event):
    """The compensator of a completed step failed after its attempts."""

    step_id: str
    attempt: int
    error: ErrorInfo


@register
class ChildStarted(Event):
    """A child run was created for the parent's step `step_id`."""

    step_id: str
    child_run_id: str
    workflow_id: str


@register
class ChildFinished(Event):
    """On the parent's stream: the child reached a terminal status."""

    step_id: str
    child_run_id: str
    status: str
    result: JSON = None
    error: ErrorInfo | None = None


@register
class SignalReceived(Event):
    """A named signal arrived (buffered until a matching wait takes it)."""

    name: str
    payload: JSON = None


@register
class EventReceived(Event):
    """An external event of `event_type` arrived (buffered until awaited)."""

    event_type: str
    payload: JSON = None


@register
class TokenResolved(Event):
    """A manual token was resolved with a payload."""

    token_id: str
    payload: JSON = None


@register
class TimerFired(Event):
    """A durable sleep reached its due time."""

    name: str


@register
class WaitTimedOut(Event):
    """A wait's timeout fired before what it waited for arrived."""

    kind: WaitKind
    name: str


@register
class ValueRecorded(Event):
    """A non-deterministic value (ctx.now(), ctx.uuid()) journaled for replay."""

    key: str
    value: JSON


@register
class StreamChunk(Event):
    """A chunk of output the run streamed (token-by-token text, progress), appended as
    it was emitted; it changes no state. Two emitters:

    - the workflow's code (`ctx.stream`): `op` is the call's op id, so a replay meets
      the chunk journaled and does not emit it again;
    - a step attempt's code (`current_step().stream`): `step_id`, `attempt` and `seq`
      (1-based, per attempt). An attempt that runs again after a crash (same attempt
      number) skips the chunks its predecessor wrote; a retry (the next attempt)
      streams its own, which readers tell apart by `attempt`."""

    name: str
    chunk: JSON = None
    op: str | None = None
    step_id: str | None = None
    attempt: int | None = None
    seq: int = 1


LIFECYCLE_EVENTS: dict[str, type[Event]] = {
    "begin": RunStarted,
    "suspend": RunSuspended,
    "wake": RunWoken,
    "complete": RunCompleted,
    "rollback": RunCompensating,
    "fail": RunFailed,
    "cancel": RunCanceled,
}
"""Lifecycle triggers and the event each one appends (1:1)."""

TERMINAL_EVENTS: tuple[type[Event], ...] = (RunCompleted, RunFailed, RunCanceled)
"""The events that end a run (after one, the run's stream takes no lifecycle event)."""
