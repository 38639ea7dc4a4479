"""The dispatch protocol (version 1): what a worker posts to a workflow handler and
what the handler answers. JSON, camelCase keys.

Request (`DispatchRequest`): the run (`runId`, `workflowId`, `workflowVersion`,
`input`), its whole `journal` (every stored event, in stream order, with version,
event id and metadata), the dispatch `attempt` (1, 2, ... for this worker's tries of
this run), the worker's clock (`now`: the handler's decisions use the worker's time),
a `requestId` (the handler refuses one it has answered), `budgetSeconds` (once a
step ends past it, the handler answers `continue` so the worker writes what is done)
and `transportFailures` (optional, default none: `[{at, error}]`, this worker's
requests of the run that failed since its last answered one, oldest first: sent at
`at`, broken off by a timeout, a lost connection or a 5xx, so whatever they executed
was lost; the worker sends only those of requests that asked for one step, budget 0;
the handler records each as a failed attempt of the first step attempt its replay is
about to run, then applies that step's retry policy). Without failures the worker
leaves the key out, so a handler that predates it reads the request.

Answer (`DispatchResponse`): `events`, the journal records the run wrote, in order
(step outcomes, values, timers, timeouts, a child's start, chunks, a rollback and its
compensators), and `next`, what the run does now: `complete` (with `result`), `fail`
(`error`, `compensation`), `park` (`waitpoint`, `dueAt`, `child` to start), `cancel`
(a compensating cancel has undone what it could) or `continue` (write the events,
post again). The final decision event (RunCompleted, RunFailed, RunSuspended,
RunCanceled) is not among `events`: the worker makes it, as for an inline run.

Live chunks: a worker that sends `Accept: application/x-ndjson` (`STREAM_TYPE`) is
answered, once a step streams a chunk before the answer is ready (else as any
worker), in lines of JSON instead: `{"chunk": NewRecord}` for each `StreamChunk` a
step streams, as the step streams it (the worker appends it at once, so a reader of
the run's stream sees it while the step still runs), then `{"answer":
DispatchResponse}`, whose `events` hold those chunks too (the worker skips the ones
it has written), or `{"error": Refusal}` if the execution broke off there. A handler
that predates it answers plain JSON, which the worker reads as before.

`POST {url}/cancel` (`CancelRequest`, signed too) tells the handler a run it executes
was canceled: its step attempts' `current_step().cancelled` is set.

`POST {url}/check` (`CheckRequest`, signed): would the workflow's input model take an
input (`CheckAnswer`: 200, or 422 with pydantic's errors)? A worker asks it when a run
of a workflow with an input schema is triggered, so a bad input is refused before
anything is appended; a handler that cannot answer leaves the check to the run.

`GET {url}/workflows` answers `{protocol, workflows: [WorkflowInfo wire form]}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ledgerflow.domain import events as ev
from ledgerflow.eventstore.records import RecordedEvent

PROTOCOL = 1
SIGNATURE_HEADER = "X-Ledgerflow-Signature"
STREAM_TYPE = "application/x-ndjson"
"""The media type of an answer in lines, with live chunks (see the module)."""


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True,
                              serialize_by_alias=True, extra="forbid", frozen=True)


class Record(_Wire):
    """One stored event of the run, as the handler needs it to replay."""

    version: int
    event_id: str
    type: str
    schema_version: int = 1
    data: dict[str, Any]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, rec: RecordedEvent) -> Record:
        return cls(version=rec.version, event_id=rec.event_id, type=rec.type,
                   schema_version=rec.schema_version, data=rec.data, metadata=rec.metadata)

    def recorded(self, run_id: str, at: datetime) -> RecordedEvent:
        event = ev.decode(self.type, self.schema_version, self.data)
        return RecordedEvent(0, run_id, self.version, self.event_id, self.type,
                             self.schema_version, event, self.metadata, at)


class NewRecord(_Wire):
    """An event the handler's execution wrote (the worker appends it)."""

    type: str
    schema_version: int = 1
    data: dict[str, Any]

    @classmethod
    def of(cls, event: ev.Event) -> NewRecord:
        name, version, data = ev.encode(event)
        return cls(type=name, schema_version=version, data=data)

    def event(self) -> ev.Event:
        return ev.decode(self.type, self.schema_version, self.data)


class TransportFailure(_Wire):
    """A request of the run that reached the handler (or may have) but got no answer."""

    at: datetime
    """When the worker sent it."""
    error: str
    """Why it got no answer, as the worker saw it."""


class DispatchRequest(_Wire):
    protocol: int
    request_id: str
    run_id: str
    workflow_id: str
    workflow_version: str
    input: Any = None
    journal: list[Record]
    attempt: int = 1
    now: datetime
    budget_seconds: float = 1.0
    transport_failures: list[TransportFailure] = Field(default_factory=list)


class CancelRequest(_Wire):
    """`POST {url}/cancel`: the run was canceled; set `cancelled` of its steps running
    at the handler (as a cancel reaches an inline run's steps)."""

    protocol: int
    request_id: str
    run_id: str


class CheckRequest(_Wire):
    """`POST {url}/check`: would the workflow's input model take `input`? (a trigger
    asks before it appends anything). Answer: `CheckAnswer`, 200 when it would, 422
    with pydantic's errors when it would not."""

    protocol: int
    request_id: str
    workflow_id: str
    workflow_version: str
    input: Any = None


class CheckAnswer(_Wire):
    protocol: int = PROTOCOL
    ok: bool
    errors: list[dict[str, Any]] = Field(default_factory=list)
    """pydantic's, each `{loc, msg, type}`, `loc` starting at "input"."""


class Child(_Wire):
    run_id: str
    step_id: str
    workflow_id: str
    input: Any = None


class Next(_Wire):
    action: Literal["complete", "fail", "park", "cancel", "continue"]
    result: Any = None
    error: ev.ErrorInfo | None = None
    compensation: Literal["none", "completed", "partial"] = "none"
    waitpoint: ev.Waitpoint | None = None
    due_at: datetime | None = None
    child: Child | None = None


class DispatchResponse(_Wire):
    protocol: int
    run_id: str
    events: list[NewRecord]
    next: Next


class Refusal(_Wire):
    """What the handler answers when it executes nothing (4xx)."""

    protocol: int = PROTOCOL
    error: str
    message: str
