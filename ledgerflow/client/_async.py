"""`AsyncClient`: the HTTP API of a `ledgerflow serve`, from asyncio code (httpx)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
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
from ledgerflow.client._sync import STREAM_READ_TIMEOUT, TERMINAL, headers_for, read, request_args
from ledgerflow.domain.wire import Page
from ledgerflow.history.audit import AuditReport
from ledgerflow.outbox import DeadLetter
from ledgerflow.projections.queries import HistoryEntry, JournalEntry, RunRecord, StreamEntry
from ledgerflow.runtime.queues import QueueInfo
from ledgerflow.runtime.schedules import ScheduleRecord

T = TypeVar("T")


class AsyncClient:
    """`Client` for asyncio code: the same methods, awaited (`stream` and `list_runs`
    are async iterators)."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers_for(token),
                                       timeout=timeout, transport=transport)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _do(self, call: Call[T]) -> T:
        return (await self.request(call)).value

    async def request(self, call: Call[T]) -> Answer[T]:
        """As `Client.request`."""
        response = await self._http.request(call.method, call.path, **request_args(call))
        return Answer(read(call, response.status_code, response.content),
                      response.status_code,
                      response.headers.get("idempotent-replayed") == "true")

    # ------------------------------------------------------------------- runs

    async def trigger(self, workflow_id: str, input: Any = None,
                **options: Unpack[TriggerOptions]) -> RunRecord:
        """Start a run (the same `idempotency_key` or `run_id` returns the same run);
        `options`: see `TriggerOptions` (queue, concurrency_key, priority, start_at,
        debounce, tags, ...)."""
        return await self._do(calls.trigger(workflow_id, input, **options))

    async def get(self, run_id: str) -> RunRecord:
        """The run record (`run_id` may be a unique prefix of at least 6 characters)."""
        return await self._do(calls.get(run_id))

    async def list_page(self, *, limit: int = 50, cursor: str | None = None,
                        **filters: str | None) -> Page[RunRecord]:
        """One page of runs, newest first; `filters`: status, workflow_id, tenant_id,
        tag, parent_run_id, resumed_from, rerun_of, compensation."""
        return await self._do(calls.list_page(limit=limit, cursor=cursor, **filters))

    async def list_runs(self, *, page_size: int = 50,
                        **filters: str | None) -> AsyncIterator[RunRecord]:
        """Every run matching `filters` (see `list_page`), newest first, page by page."""
        cursor: str | None = None
        while True:
            page = await self.list_page(limit=page_size, cursor=cursor, **filters)
            for record in page.data:
                yield record
            cursor = page.next_cursor
            if cursor is None:
                return

    async def history(self, run_id: str) -> list[HistoryEntry]:
        """The run's events, in order."""
        return await self._do(calls.history(run_id))

    async def journal(self, run_id: str) -> list[JournalEntry]:
        """The run's step journal."""
        return await self._do(calls.journal(run_id))

    async def audit(self, run_id: str) -> AuditReport:
        """The check of the run's hash chain (`verified`, else the first bad version)."""
        return await self._do(calls.audit(run_id))

    async def signal(self, run_id: str, name: str, payload: Any = None, *,
                     idempotency_key: str | None = None) -> RunRecord:
        return await self._do(calls.signal(run_id, name, payload, idempotency_key=idempotency_key))

    async def event(self, run_id: str, event_type: str, payload: Any = None, *,
                    idempotency_key: str | None = None) -> RunRecord:
        return await self._do(calls.event(run_id, event_type, payload,
                                          idempotency_key=idempotency_key))

    async def token(self, run_id: str, token_id: str, payload: Any = None, *,
                    idempotency_key: str | None = None) -> RunRecord:
        return await self._do(calls.token(run_id, token_id, payload,
                                          idempotency_key=idempotency_key))

    async def cancel(self, run_id: str, reason: str | None = None, *, compensate: bool = False,
                     idempotency_key: str | None = None) -> RunRecord:
        return await self._do(calls.cancel(run_id, reason, compensate=compensate,
                                           idempotency_key=idempotency_key))

    async def rerun(self, run_id: str, *, input: Any = SAME, tags: list[str] | None = None,
                    confirm: bool = False, idempotency_key: str | None = None) -> RunRecord:
        """A new run, same workflow (and input, unless given); `confirm=True` for a
        workflow declared `rerun_safety="unsafe"`."""
        return await self._do(calls.rerun(run_id, input=input, tags=tags, confirm=confirm,
                                          idempotency_key=idempotency_key))

    async def resume(self, run_id: str, *, input: Any = None, workflow_id: str | None = None,
                     resume_from_step: str | None = None,
                     seed_results: dict[str, Any] | None = None, new_run_id: str | None = None,
                     tags: list[str] | None = None, actor: str | None = None,
                     idempotency_key: str | None = None) -> RunRecord:
        """A new run linked to a failed one (or to one stored elsewhere: give
        `workflow_id`, `resume_from_step` and `seed_results`)."""
        return await self._do(calls.resume(
            run_id, input=input, workflow_id=workflow_id, resume_from_step=resume_from_step,
            seed_results=seed_results, new_run_id=new_run_id, tags=tags, actor=actor,
            idempotency_key=idempotency_key))

    async def wait(self, run_id: str, timeout: float = 60.0, poll: float = 0.5) -> RunRecord:
        """The run once it is completed, failed or canceled (`TimeoutError` after
        `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            record = await self.get(run_id)
            if record.status.value in TERMINAL:
                return record
            if time.monotonic() >= deadline:
                raise TimeoutError(f"run {record.run_id!r} is still {record.status.value}")
            await asyncio.sleep(poll)

    async def stream(self, run_id: str, *, after: int = 0,
                     reconnects: int = 5) -> AsyncIterator[StreamEntry]:
        """The run's stream chunks after position `after`, as they come, until the run
        ends; a dropped connection is resumed from the last chunk (up to `reconnects`
        times in a row)."""
        failures = 0
        while True:
            call = calls.stream_request(run_id, after)
            timeout = httpx.Timeout(self._timeout, read=STREAM_READ_TIMEOUT)
            try:
                async with self._http.stream("GET", call.path, headers=call.headers,
                                       timeout=timeout) as response:
                    if response.status_code >= 400:
                        read(call, response.status_code, await response.aread())
                    reader = SseReader()
                    async for line in response.aiter_lines():
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
                await asyncio.sleep(min(0.2 * 2 ** failures, 5.0))

    # ---------------------------------------------------------------- the rest

    # ----------------------------------------------------------------- queues

    async def queues(self) -> list[QueueInfo]:
        """Every queue: limits, paused, depth, executing, oldest waiting age."""
        return await self._do(calls.queues())

    async def set_queue(self, name: str, **limits: Unpack[QueueLimits]) -> QueueInfo:
        """Create the queue or change the limits given (None removes one)."""
        return await self._do(calls.set_queue(name, **limits))

    async def pause_queue(self, name: str) -> QueueInfo:
        return await self._do(calls.pause_queue(name))

    async def resume_queue(self, name: str) -> QueueInfo:
        return await self._do(calls.resume_queue(name))

    # -------------------------------------------------------------- schedules

    async def create_schedule(self, schedule_id: str, workflow_id: str, input: Any = None,
                        **spec: Unpack[ScheduleOptions]) -> ScheduleRecord:
        """Create a schedule (`cron=` or `every_seconds=`); the same again is a no-op."""
        return await self._do(calls.create_schedule(schedule_id, workflow_id, input, **spec))

    async def update_schedule(self, schedule_id: str, workflow_id: str, input: Any = None,
                        **spec: Unpack[ScheduleOptions]) -> ScheduleRecord:
        """Give the schedule a whole new spec (paused stays paused)."""
        return await self._do(calls.update_schedule(schedule_id, workflow_id, input, **spec))

    async def schedules(self, workflow_id: str | None = None) -> list[ScheduleRecord]:
        """Every schedule (of a workflow) with its next fire times."""
        return await self._do(calls.schedules(workflow_id))

    async def schedule(self, schedule_id: str) -> ScheduleRecord:
        """The schedule with its latest events (`history`)."""
        return await self._do(calls.schedule(schedule_id))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._do(calls.delete_schedule(schedule_id))

    async def pause_schedule(self, schedule_id: str) -> ScheduleRecord:
        return await self._do(calls.pause_schedule(schedule_id))

    async def resume_schedule(self, schedule_id: str) -> ScheduleRecord:
        return await self._do(calls.resume_schedule(schedule_id))

    async def trigger_schedule(self, schedule_id: str) -> str:
        """Start a run of the schedule now; its run id."""
        return await self._do(calls.trigger_schedule(schedule_id))

    # ----------------------------------------------------------------- outbox

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self._do(calls.dead_letters(limit))

    async def replay_dead_letters(self, ids: list[int] | None = None,
                                  limit: int | None = None, *,
                                  idempotency_key: str | None = None) -> list[int]:
        """Put dead rows (`ids`, or the oldest `limit`, or all) back to pending."""
        return await self._do(calls.replay_dead_letters(ids, limit,
                                                        idempotency_key=idempotency_key))

    async def discard_dead_letters(self, ids: list[int], *,
                                   idempotency_key: str | None = None) -> list[int]:
        return await self._do(calls.discard_dead_letters(ids, idempotency_key=idempotency_key))

    async def workflows(self) -> list[WorkflowInfo]:
        return await self._do(calls.workflows())

    async def graph(self, name: str, version: str | None = None) -> dict[str, Any]:
        return await self._do(calls.graph(name, version))

    async def health(self) -> dict[str, Any]:
        return await self._do(calls.health())

    async def health_details(self) -> dict[str, Any]:
        return await self._do(calls.health_details())

    async def metrics(self) -> str:
        return await self._do(calls.metrics())
