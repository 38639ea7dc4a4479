"""The API's routes as `Call`s: what to send and how to read the answer, declared once
for `Client` (blocking) and `AsyncClient`, which only send them.

Results are the records the API declares (`RunRecord`, `HistoryEntry`, `JournalEntry`,
`DeadLetter`, `WorkflowInfo`, `StreamEntry`, `QueueInfo`, `ScheduleRecord`, `AuditReport`,
`Page`), read back with `from_wire`;
error responses become the engine's exceptions (`_errors.error_from`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import orjson

from ledgerflow._authoring import WorkflowInfo
from ledgerflow.domain.wire import Page
from ledgerflow.history.audit import AuditReport
from ledgerflow.outbox import DeadLetter
from ledgerflow.projections.queries import HistoryEntry, JournalEntry, RunRecord, StreamEntry
from ledgerflow.runtime.queues import QueueInfo
from ledgerflow.runtime.schedules import ScheduleRecord

T = TypeVar("T")
SAME: Any = object()
"""`rerun(input=...)` left out: the new run takes the old run's input."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reading of its (2xx) response's JSON (or text)."""

    method: str
    path: str
    read: Callable[[Any], T]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: bool = False
    """The answer is text (`/metrics`), not JSON."""
    any_status: bool = False
    """Read the body whatever the status (`/api/health/details` answers 503 with its report)."""


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A response read: its `value`, HTTP `status`, and whether it `replayed` the first
    response to the same Idempotency-Key."""

    value: T
    status: int
    replayed: bool = False

    @property
    def created(self) -> bool:
        """A trigger (rerun, resume) that made a new run now."""
        return self.status == 201 and not self.replayed


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


def _run(run_id: str, *rest: str) -> str:
    return "/api/runs/" + _path(run_id, *rest)


def _key(idempotency_key: str | None) -> dict[str, str]:
    return {} if idempotency_key is None else {"Idempotency-Key": idempotency_key}


def _body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields given (None: left out, the server's default)."""
    return {name: value for name, value in fields.items() if value is not None}


def run(data: Any) -> RunRecord:
    return RunRecord.from_wire(data)


def _page(data: Any) -> Page[RunRecord]:
    return Page([RunRecord.from_wire(r) for r in data["data"]], data.get("nextCursor"))


class TriggerOptions(TypedDict, total=False):
    """What a trigger may say besides the workflow and its input (all optional)."""

    workflow_version: str
    run_id: str
    tags: list[str]
    tenant_meta: dict[str, Any]
    priority: int
    queue: str
    concurrency_key: str
    start_at: datetime
    """An aware time: the run is not claimed before it."""
    debounce: tuple[str, float]
    """`(key, seconds)`: triggers with `key` in the window become one run."""
    idempotency_key: str


def trigger(workflow_id: str, input: Any = None,
            **options: Unpack[TriggerOptions]) -> Call[RunRecord]:
    o = options
    start_at, debounce = o.get("start_at"), o.get("debounce")
    body = _body(workflowId=workflow_id, workflowVersion=o.get("workflow_version"),
                 runId=o.get("run_id"), tags=o.get("tags"), tenantMeta=o.get("tenant_meta"),
                 priority=o.get("priority"), queue=o.get("queue"),
                 concurrencyKey=o.get("concurrency_key"),
                 startAt=None if start_at is None else start_at.isoformat(),
                 debounce=None if debounce is None else {"key": debounce[0],
                                                         "seconds": debounce[1]})
    body["input"] = input
    return Call("POST", "/api/runs", run, body=body, headers=_key(o.get("idempotency_key")))


def get(run_id: str) -> Call[RunRecord]:
    return Call("GET", _run(run_id), run)


def list_page(*, status: str | None = None, workflow_id: str | None = None,
              tenant_id: str | None = None, tag: str | None = None,
              parent_run_id: str | None = None, resumed_from: str | None = None,
              rerun_of: str | None = None, compensation: str | None = None, limit: int = 50,
              cursor: str | None = None) -> Call[Page[RunRecord]]:
    params = _body(status=status, workflowId=workflow_id, tenantId=tenant_id, tag=tag,
                   parentRunId=parent_run_id, resumedFrom=resumed_from, rerunOf=rerun_of,
                   compensation=compensation, limit=limit, cursor=cursor)
    return Call("GET", "/api/runs", _page, params=params)


def history(run_id: str) -> Call[list[HistoryEntry]]:
    return Call("GET", _run(run_id, "history"),
                lambda data: [HistoryEntry.from_wire(e) for e in data["data"]])


def journal(run_id: str) -> Call[list[JournalEntry]]:
    return Call("GET", _run(run_id, "journal"),
                lambda data: [JournalEntry.from_wire(e) for e in data["data"]])


def signal(run_id: str, name: str, payload: Any = None, *,
           idempotency_key: str | None = None) -> Call[RunRecord]:
    return Call("POST", _run(run_id, "signals"), run, body={"name": name, "payload": payload},
                headers=_key(idempotency_key))


def event(run_id: str, event_type: str, payload: Any = None, *,
          idempotency_key: str | None = None) -> Call[RunRecord]:
    return Call("POST", _run(run_id, "events"), run,
                body={"eventType": event_type, "payload": payload},
                headers=_key(idempotency_key))


def token(run_id: str, token_id: str, payload: Any = None, *,
          idempotency_key: str | None = None) -> Call[RunRecord]:
    return Call("POST", _run(run_id, "tokens", token_id), run, body={"payload": payload},
                headers=_key(idempotency_key))


def cancel(run_id: str, reason: str | None = None, *, compensate: bool = False,
           idempotency_key: str | None = None) -> Call[RunRecord]:
    return Call("POST", _run(run_id, "cancel"), run,
                body=_body(reason=reason, compensate=compensate or None),
                headers=_key(idempotency_key))


def rerun(run_id: str, *, input: Any = SAME, tags: list[str] | None = None,
          confirm: bool = False, idempotency_key: str | None = None) -> Call[RunRecord]:
    body = _body(tags=tags, confirm=confirm or None)
    if input is not SAME:
        body["input"] = input
    return Call("POST", _run(run_id, "rerun"), run, body=body, headers=_key(idempotency_key))


def resume(run_id: str, *, input: Any = None, workflow_id: str | None = None,
           resume_from_step: str | None = None, seed_results: dict[str, Any] | None = None,
           new_run_id: str | None = None, tags: list[str] | None = None,
           actor: str | None = None, idempotency_key: str | None = None) -> Call[RunRecord]:
    body = _body(input=input, workflowId=workflow_id, resumeFromStep=resume_from_step,
                 seedResults=seed_results, runId=new_run_id, tags=tags,
                 triggeredByUserId=actor)
    return Call("POST", _run(run_id, "resume"), run, body=body, headers=_key(idempotency_key))


def audit(run_id: str) -> Call[AuditReport]:
    return Call("GET", _run(run_id, "audit"), AuditReport.from_wire)


# ------------------------------------------------------------------ queues


def _queue(data: Any) -> QueueInfo:
    return QueueInfo.from_wire(data)


def queues() -> Call[list[QueueInfo]]:
    return Call("GET", "/api/queues", lambda data: [_queue(q) for q in data["data"]])


class QueueLimits(TypedDict, total=False):
    """The limits `set_queue` changes: a limit left out stays as it is, None removes it;
    `rate_limit` is `(starts, per seconds)`."""

    concurrency: int | None
    per_key_concurrency: int | None
    rate_limit: tuple[int, float] | None
    paused: bool


def set_queue(name: str, **limits: Unpack[QueueLimits]) -> Call[QueueInfo]:
    """`PUT /api/queues/{name}`: create the queue or change the limits given."""
    body: dict[str, Any] = {}
    if "concurrency" in limits:
        body["concurrency"] = limits["concurrency"]
    if "per_key_concurrency" in limits:
        body["perKeyConcurrency"] = limits["per_key_concurrency"]
    if "rate_limit" in limits:
        rate = limits["rate_limit"]
        body["rateLimit"] = None if rate is None else {"limit": rate[0], "periodSeconds": rate[1]}
    if "paused" in limits:
        body["paused"] = limits["paused"]
    return Call("PUT", "/api/queues/" + _path(name), _queue, body=body)


def pause_queue(name: str) -> Call[QueueInfo]:
    return Call("POST", f"/api/queues/{_path(name)}/pause", _queue)


def resume_queue(name: str) -> Call[QueueInfo]:
    return Call("POST", f"/api/queues/{_path(name)}/resume", _queue)


# ------------------------------------------------------------------ schedules


def _schedule(data: Any) -> ScheduleRecord:
    return ScheduleRecord.from_wire(data)


def _sched(schedule_id: str, *rest: str) -> str:
    return "/api/schedules/" + _path(schedule_id, *rest)


class ScheduleOptions(TypedDict, total=False):
    """A schedule's spec besides its workflow and input: exactly one of `cron` and
    `every_seconds`."""

    cron: str
    every_seconds: int
    timezone: str
    overlap: str
    """skip (default), buffer_one or allow."""
    catchup_window_seconds: int
    paused: bool


def create_schedule(schedule_id: str, workflow_id: str, input: Any = None,
                    **spec: Unpack[ScheduleOptions]) -> Call[ScheduleRecord]:
    """`POST /api/schedules` (the same schedule again answers with it unchanged)."""
    body = _body(scheduleId=schedule_id, workflowId=workflow_id, cron=spec.get("cron"),
                 everySeconds=spec.get("every_seconds"), timezone=spec.get("timezone"),
                 overlap=spec.get("overlap"),
                 catchupWindowSeconds=spec.get("catchup_window_seconds"),
                 paused=spec.get("paused"))
    body["input"] = input
    return Call("POST", "/api/schedules", _schedule, body=body)


def update_schedule(schedule_id: str, workflow_id: str, input: Any = None,
                    **spec: Unpack[ScheduleOptions]) -> Call[ScheduleRecord]:
    """`PUT /api/schedules/{id}`: the schedule's whole new spec (`paused` is not part
    of it: pause or resume for that)."""
    body = _body(workflowId=workflow_id, cron=spec.get("cron"),
                 everySeconds=spec.get("every_seconds"), timezone=spec.get("timezone"),
                 overlap=spec.get("overlap"),
                 catchupWindowSeconds=spec.get("catchup_window_seconds"))
    body["input"] = input
    return Call("PUT", _sched(schedule_id), _schedule, body=body)


def schedules(workflow_id: str | None = None) -> Call[list[ScheduleRecord]]:
    return Call("GET", "/api/schedules", lambda data: [_schedule(s) for s in data["data"]],
                params=_body(workflowId=workflow_id))


def schedule(schedule_id: str) -> Call[ScheduleRecord]:
    return Call("GET", _sched(schedule_id), _schedule)


def delete_schedule(schedule_id: str) -> Call[None]:
    return Call("DELETE", _sched(schedule_id), lambda _: None, text=True)


def pause_schedule(schedule_id: str) -> Call[ScheduleRecord]:
    return Call("POST", _sched(schedule_id, "pause"), _schedule)


def resume_schedule(schedule_id: str) -> Call[ScheduleRecord]:
    return Call("POST", _sched(schedule_id, "resume"), _schedule)


def trigger_schedule(schedule_id: str) -> Call[str]:
    """`POST /api/schedules/{id}/trigger`: the id of the run it started."""
    return Call("POST", _sched(schedule_id, "trigger"), lambda data: str(data["runId"]))


# ------------------------------------------------------------------ outbox


def dead_letters(limit: int = 100) -> Call[list[DeadLetter]]:
    return Call("GET", "/api/outbox/dead-letters",
                lambda data: [DeadLetter.from_wire(d) for d in data["data"]],
                params={"limit": limit})


def replay_dead_letters(ids: list[int] | None = None, limit: int | None = None,
                        *, idempotency_key: str | None = None) -> Call[list[int]]:
    return Call("POST", "/api/outbox/dead-letters/replay",
                lambda data: [int(i) for i in data["replayed"]],
                body=_body(ids=ids or None, limit=limit), headers=_key(idempotency_key))


def discard_dead_letters(ids: list[int], *,
                         idempotency_key: str | None = None) -> Call[list[int]]:
    return Call("POST", "/api/outbox/dead-letters/discard",
                lambda data: [int(i) for i in data["discarded"]], body={"ids": ids},
                headers=_key(idempotency_key))


def workflows() -> Call[list[WorkflowInfo]]:
    return Call("GET", "/api/workflows",
                lambda data: [WorkflowInfo.from_wire(w) for w in data["data"]])


def graph(name: str, version: str | None = None) -> Call[dict[str, Any]]:
    return Call("GET", f"/api/workflows/{_path(name)}/graph", dict,
                params=_body(version=version))


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/healthz", dict)


def health_details() -> Call[dict[str, Any]]:
    return Call("GET", "/api/health/details", dict, any_status=True)


def metrics() -> Call[str]:
    return Call("GET", "/metrics", str, text=True)


# ------------------------------------------------------------------ streams


def stream_request(run_id: str, after: int) -> Call[None]:
    """`GET /api/runs/{id}/stream` from position `after` (the reader's last id)."""
    return Call("GET", _run(run_id, "stream"), lambda _: None,
                headers={"Accept": "text/event-stream", "Last-Event-ID": str(after)})


@dataclass
class SseReader:
    """Server-sent events from lines: `feed(line)` gives an event at each blank line."""

    event: str = "message"
    data: list[str] = field(default_factory=list)
    event_id: str | None = None

    def feed(self, line: str) -> tuple[str, str, str | None] | None:
        if not line:
            if not self.data:
                return None
            found = (self.event, "\n".join(self.data), self.event_id)
            self.event, self.data, self.event_id = "message", [], None
            return found
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.event_id = value
        return None


class StreamEnd(Exception):
    """The server's `end` message: the run ended with `status`."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def sse_item(kind: str, data: str) -> StreamEntry | None:
    """The chunk an SSE message carries (None for another kind); `StreamEnd` at `end`."""
    if kind == "end":
        raise StreamEnd(str(orjson.loads(data).get("status")))
    if kind == "chunk":
        return StreamEntry.from_wire(orjson.loads(data))
    return None
