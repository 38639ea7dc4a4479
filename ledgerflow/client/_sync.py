"""`Client`: the HTTP API of a `ledgerflow serve`, from Python, blocking (httpx)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar, Unpack

import httpx

from ledgerflow._authoring import WorkflowInfo
from ledgerflow.client import _calls as calls
from ledgerflow.client._calls import (
    SAME,
    Answer,
    Call,
    QueueLimits,
    ScheduleOptions,
    SseReader,
    StreamEnd,
    TriggerOptions,
    sse_item,
)
from ledgerflow.client._errors import error_from
from ledgerflow.domain.wire import Page
from ledgerflow.history.audit import AuditReport
from ledgerflow.outbox import DeadLetter
from ledgerflow.projections.queries import HistoryEntry, JournalEntry, RunRecord, StreamEntry
from ledgerflow.runtime.queues import QueueInfo
from ledgerflow.runtime.schedules import ScheduleRecord

T = TypeVar("T")
TERMINAL = frozenset({"completed", "failed", "canceled"})
STREAM_READ_TIMEOUT = 60.0
"""Seconds a stream may stay silent (the server sends a keep-alive every 15) before the
client takes the connection for lost and reconnects."""


def headers_for(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def read(call: Call[T], status: int, content: bytes) -> T:
    """`call`'s result from a response, or the engine's exception for an error."""
    if call.text and status < 400:
        return call.read(content.decode())
    try:
        data: Any = httpx.Response(status, content=content).json() if content else None
    except ValueError:
        data = content.decode(errors="replace")
    if status >= 400 and not call.any_status:
        raise error_from(status, data)
    return call.read(data)


def request_args(call: Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.params or None, "headers": call.headers}
    if call.method != "GET" and call.body is not None:
        args["json"] = call.body
    return args


class Client:
    """The HTTP API of a `ledgerflow serve` at `base_url`, with the engine's records
    and exceptions: `client.trigger("checkout", {...})` returns a `RunRecord`, a
    command on a finished run raises `IllegalTransition`, an unknown run `UnknownRun`.
    `token`: the bearer token when the server has `LEDGERFLOW_API_TOKENS`.
    `transport`: an httpx transport (tests, or an ASGI app in the same process)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, headers=headers_for(token),
                                  timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _do(self, call: Call[T]) -> T:
        return self.request(call).value

    def request(self, call: Call[T]) -> Answer[T]:
        """Send `call` (see `ledgerflow.client._calls`): what `call` reads from the
        response, with its status (a trigger answers 201 for a new run, 200 for an
        existing one) and whether it replays an earlier response (Idempotency-Key)."""
        response = self._http.request(call.method, call.path, **request_args(call))
        return Answer(read(call, response.status_code, response.content),
                      response.status_code,
                      response.headers.get("idempotent-replayed") == "true")

    # ------------------------------------------------------------------- runs

    def trigger(self, workflow_id: str, input: Any = None,
                **options: Unpack[TriggerOptions]) -> RunRecord:
        """Start a run (the same `idempotency_key` or `run_id` returns the same run);
        `options`: see `TriggerOptions` (queue, concurrency_key, priority, start_at,
        debounce, tags, ...)."""
        return self._do(calls.trigger(workflow_id, input, **options))

    def get(self, run_id: str) -> RunRecord:
        """The run record (`run_id` may be a unique prefix of at least 6 characters)."""
        return self._do(calls.get(run_id))

    def list_page(self, *, limit: int = 50, cursor: str | None = None,
                  **filters: str | None) -> Page[RunRecord]:
        """One page of runs, newest first; `filters`: status, workflow_id, tenant_id,
        tag, parent_run_id, resumed_from, rerun_of, compensation."""
        return self._do(calls.list_page(limit=limit, cursor=cursor, **filters))

    def list_runs(self, *, page_size: int = 50, **filters: str | None) -> Iterator[RunRecord]:
        """Every run matching `filters` (see `list_page`), newest first, page by page."""
        cursor: str | None = None
        while True:
            page = self.list_page(limit=page_size, cursor=cursor, **filters)
            yield from page.data
            cursor = page.next_cursor
            if cursor is None:
                return

    def history(self, run_id: str) -> list[HistoryEntry]:
        """The run's events, in order."""
        return self._do(calls.history(run_id))

    def journal(self, run_id: str) -> list[JournalEntry]:
        """The run's step journal."""
        return self._do(calls.journal(run_id))

    def audit(self, run_id: str) -> AuditReport:
        """The check of the run's hash chain (`verified`, else the first bad version)."""
        return self._do(calls.audit(run_id))

    def signal(self, run_id: str, name: str, payload: Any = None, *,
               idempotency_key: str | None = None) -> RunRecord:
        return self._do(calls.signal(run_id, name, payload, idempotency_key=idempotency_key))

    def event(self, run_id: str, event_type: str, payload: Any = None, *,
              idempotency_key: str | None = None) -> RunRecord:
        return self._do(calls.event(run_id, event_type, payload,
                                    idempotency_key=idempotency_key))

    def token(self, run_id: str, token_id: str, payload: Any = None, *,
              idempotency_key: str | None = None) -> RunRecord:
        return self._do(calls.token(run_id, token_id, payload,
                                    idempotency_key=idempotency_key))

    def cancel(self, run_id: str, reason: str | None = None, *, compensate: bool = False,
               idempotency_key: str | None = None) -> RunRecord:
        return self._do(calls.cancel(run_id, reason, compensate=compensate,
                                     idempotency_key=idempotency_key))

    def rerun(self, run_id: str, *, input: Any = SAME, tags: list[str] | None = None,
              confirm: bool = False, idempotency_key: str | None = None) -> RunRecord:
        """A new run, same workflow (and input, unless given); `confirm=True` for a
        workflow declared `rerun_safety="unsafe"`."""
        return self._do(calls.rerun(run_id, input=input, tags=tags, confirm=confirm,
                                    idempotency_key=idempotency_key))

    def resume(self, run_id: str, *, input: Any = None, workflow_id: str | None = None,
               resume_from_step: str | None = None,
               seed_results: dict[str, Any] | None = None, new_run_id: str | None = None,
               tags: list[str] | None = None, actor: str | None = None,
               idempotency_key: str | None = None) -> RunRecord:
        """A new run linked to a failed one (or to one stored elsewhere: give
        `workflow_id`, `resume_from_step` and `seed_results`)."""
        return self._do(calls.resume(
            run_id, input=input, workflow_id=workflow_id, resume_from_step=resume_from_step,
            seed_results=seed_results, new_run_id=new_run_id, tags=tags, actor=actor,
            idempotency_key=idempotency_key))

    def wait(self, run_id: str, timeout: float = 60.0, poll: float = 0.5) -> RunRecord:
        """The run once it is completed, failed or canceled (`TimeoutError` after
        `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(run_id)
            if record.status.value in TERMINAL:
                return record
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {record.run_id!r} is still {record.status.value}")
            time.sleep(poll)

    def stream(self, run_id: str, *, after: int = 0,
               reconnects: int = 5) -> Iterator[StreamEntry]:
        """The run's stream chunks after position `after`, as they come, until the run
        ends; a dropped connection is resumed from the last chunk (up to `reconnects`
        times in a row)."""
        failures = 0
        while True:
            call = calls.stream_request(run_id, after)
            timeout = httpx.Timeout(self._timeout, read=STREAM_READ_TIMEOUT)
            try:
                with self._http.stream("GET", call.path, headers=call.headers,
                                       timeout=timeout) as response:
                    if response.status_code >= 400:
                        read(call, response.status_code, response.read())
                    reader = SseReader()
                    for line in response.iter_lines():
                        found = reader.feed(line)
                        item = None if found is None else sse_item(found[0], found[1])
                        if item is not None:
                            after, failures = item.version, 0
                            yield item
            except StreamEnd:
                return
            except httpx.TransportError:
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(min(0.2 * 2 ** failures, 5.0))

    # ---------------------------------------------------------------- the rest

    # ----------------------------------------------------------------- queues

    def queues(self) -> list[QueueInfo]:
        """Every queue: limits, paused, depth, executing, oldest waiting age."""
        return self._do(calls.queues())

    def set_queue(self, name: str, **limits: Unpack[QueueLimits]) -> QueueInfo:
        """Create the queue or change the limits given (None removes one)."""
        return self._do(calls.set_queue(name, **limits))

    def pause_queue(self, name: str) -> QueueInfo:
        return self._do(calls.pause_queue(name))

    def resume_queue(self, name: str) -> QueueInfo:
        return self._do(calls.resume_queue(name))

    # -------------------------------------------------------------- schedules

    def create_schedule(self, schedule_id: str, workflow_id: str, input: Any = None,
                        **spec: Unpack[ScheduleOptions]) -> ScheduleRecord:
        """Create a schedule (`cron=` or `every_seconds=`); the same again is a no-op."""
        return self._do(calls.create_schedule(schedule_id, workflow_id, input, **spec))

    def update_schedule(self, schedule_id: str, workflow_id: str, input: Any = None,
                        **spec: Unpack[ScheduleOptions]) -> ScheduleRecord:
        """Give the schedule a whole new spec (paused stays paused)."""
        return self._do(calls.update_schedule(schedule_id, workflow_id, input, **spec))

    def schedules(self, workflow_id: str | None = None) -> list[ScheduleRecord]:
        """Every schedule (of a workflow) with its next fire times."""
        return self._do(calls.schedules(workflow_id))

    def schedule(self, schedule_id: str) -> ScheduleRecord:
        """The schedule with its latest events (`history`)."""
        return self._do(calls.schedule(schedule_id))

    def delete_schedule(self, schedule_id: str) -> None:
        self._do(calls.delete_schedule(schedule_id))

    def pause_schedule(self, schedule_id: str) -> ScheduleRecord:
        return self._do(calls.pause_schedule(schedule_id))

    def resume_schedule(self, schedule_id: str) -> ScheduleRecord:
        return self._do(calls.resume_schedule(schedule_id))

    def trigger_schedule(self, schedule_id: str) -> str:
        """Start a run of the schedule now; its run id."""
        return self._do(calls.trigger_schedule(schedule_id))

    # ----------------------------------------------------------------- outbox

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return self._do(calls.dead_letters(limit))

    def replay_dead_letters(self, ids: list[int] | None = None, limit: int | None = None, *,
                            idempotency_key: str | None = None) -> list[int]:
        """Put dead rows (`ids`, or the oldest `limit`, or all) back to pending."""
        return self._do(calls.replay_dead_letters(ids, limit, idempotency_key=idempotency_key))

    def discard_dead_letters(self, ids: list[int], *,
                             idempotency_key: str | None = None) -> list[int]:
        return self._do(calls.discard_dead_letters(ids, idempotency_key=idempotency_key))

    def workflows(self) -> list[WorkflowInfo]:
        return self._do(calls.workflows())

    def graph(self, name: str, version: str | None = None) -> dict[str, Any]:
        return self._do(calls.graph(name, version))

    def health(self) -> dict[str, Any]:
        return self._do(calls.health())

    def health_details(self) -> dict[str, Any]:
        return self._do(calls.health_details())

    def metrics(self) -> str:
        return self._do(calls.metrics())
