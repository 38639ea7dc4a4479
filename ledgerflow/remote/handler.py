"""`asgi_handler(workflows)`: the ASGI app a user mounts in their own service to serve
workflows to ledgerflow workers (`app.mount("/ledgerflow", asgi_handler(registry))`).

Routes (relative to where it is mounted):

- `POST /run` (also `POST /`): a signed `DispatchRequest` (see `protocol`); answers a
  `DispatchResponse` (200), in lines with each step chunk first as the step streams it
  when the worker accepts `application/x-ndjson`. Refusals: 401 (unsigned, wrong
  signature, stale, replayed), 400 (another protocol version, or a body that is not a
  request of a running run), 404 (a workflow or version it does not serve).
- `POST /cancel`: a signed `CancelRequest`: the run was canceled; the steps it runs
  here have their `current_step().cancelled` set (`{protocol, running}`).
- `GET /workflows`: `{protocol, workflows}`, what it serves (as `GET /api/workflows`
  lists workflows), so a worker need not import their modules. Not signed: it tells
  names and schemas, nothing of any run.

A plain workflow function executes in a thread (`execution.BufferedSession`), an
`async def` one on the handler's own event loop thread (`BufferedAsyncSession`); the
handler never touches a database.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ledgerflow._authoring import WorkflowRegistry, default_registry
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import LedgerflowError, UnknownWorkflow
from ledgerflow.remote.execution import (
    Buffered,
    BufferedAsyncSession,
    BufferedSession,
    LateResults,
    journal_of,
)
from ledgerflow.remote.protocol import (
    PROTOCOL,
    SIGNATURE_HEADER,
    STREAM_TYPE,
    CancelRequest,
    DispatchRequest,
    NewRecord,
    Refusal,
)
from ledgerflow.remote.signing import BadSignature, ReplayGuard, verify
from ledgerflow.runtime.aio_loop import AsyncLoop
from ledgerflow.settings import Settings

log = logging.getLogger("ledgerflow.remote")
M = TypeVar("M", bound=BaseModel)


def _line(key: str, value: BaseModel) -> bytes:
    return b'{"%s":%s}\n' % (key.encode(), value.model_dump_json(by_alias=True).encode())


def _refuse(status: int, error: str, message: str) -> Response:
    return JSONResponse(Refusal(error=error, message=message).model_dump(mode="json"),
                        status_code=status)


class _Handler:
    def __init__(self, registry: WorkflowRegistry, secret: str) -> None:
        self.registry, self.secret = registry, secret
        self.seen = ReplayGuard()
        self.running: dict[str, list[Buffered]] = {}
        self.aio = AsyncLoop()  # where `async def` workflows execute
        self.late = LateResults()

    async def _read(self, request: Request, model: type[M]) -> M | Response:
        """The signed, fresh, first-seen request of `model` in the body, or a refusal."""
        body = await request.body()
        try:
            verify(self.secret, request.headers.get(SIGNATURE_HEADER), body)
        except BadSignature as error:
            return _refuse(401, "unauthorized", str(error))
        try:
            raw = json.loads(body)
        except ValueError:
            return _refuse(400, "invalid_request", "the body is not JSON")
        spoken = raw.get("protocol") if isinstance(raw, dict) else None
        if spoken != PROTOCOL:
            return _refuse(400, "protocol", f"this handler speaks dispatch protocol "
                           f"{PROTOCOL}; the request is protocol {spoken!r}")
        try:
            asked = model.model_validate(raw)
        except ValidationError as error:
            return _refuse(400, "invalid_request", f"not a {model.__name__}: {error}")
        try:
            self.seen.accept(str(raw.get("requestId")))
        except BadSignature as error:
            return _refuse(401, "unauthorized", str(error))
        return asked

    async def cancel(self, request: Request) -> Response:
        asked = await self._read(request, CancelRequest)
        if isinstance(asked, Response):
            return asked
        sessions = list(self.running.get(asked.run_id, ()))
        for session in sessions:
            session.watch.cancel()
        return JSONResponse({"protocol": PROTOCOL, "running": bool(sessions)})

    async def run(self, request: Request) -> Response:
        asked = await self._read(request, DispatchRequest)
        if isinstance(asked, Response):
            return asked
        try:
            found = self.registry.get(asked.workflow_id, asked.workflow_version)
        except UnknownWorkflow as error:
            return _refuse(404, "unknown_workflow", str(error))
        try:
            journal = journal_of(asked)
        except (ValueError, LedgerflowError) as error:
            return _refuse(400, "invalid_request", str(error))
        kind = BufferedAsyncSession if found.is_async else BufferedSession
        session = kind(self.registry, asked, journal, self.aio, self.late)
        if STREAM_TYPE in request.headers.get("accept", ""):
            return StreamingResponse(self._lines(session), media_type=STREAM_TYPE)
        with self._running(session):
            answer = await run_in_threadpool(session.answer)
        return Response(answer.model_dump_json(by_alias=True), media_type="application/json")

    async def _lines(self, session: Buffered) -> AsyncIterator[bytes]:
        """The answer in lines: each step chunk as it is streamed, then the answer."""
        loop = asyncio.get_running_loop()
        told: asyncio.Queue[ev.StreamChunk | None] = asyncio.Queue()

        def live(chunk: ev.StreamChunk) -> None:  # from the step's thread
            loop.call_soon_threadsafe(told.put_nowait, chunk)

        session.live = live
        with self._running(session):
            answering = asyncio.ensure_future(run_in_threadpool(session.answer))
            answering.add_done_callback(lambda _: told.put_nowait(None))  # after every chunk
            while (chunk := await told.get()) is not None:
                yield _line("chunk", NewRecord.of(chunk))
            try:
                answer = answering.result()
            except Exception as error:  # as a 500 would: the worker counts the request lost
                log.exception("run %s: the execution broke off", session.run_id,
                              extra={"run_id": session.run_id})
                yield _line("error", Refusal(error="internal", message=f"the execution broke "
                                             f"off: {type(error).__name__}: {error}"))
                return
        yield _line("answer", answer)

    @contextmanager
    def _running(self, session: Buffered) -> Iterator[None]:
        """`session` executes here meanwhile (so a cancel reaches its steps)."""
        self.running.setdefault(session.run_id, []).append(session)
        try:
            yield
        finally:
            self.running[session.run_id].remove(session)
            if not self.running[session.run_id]:
                del self.running[session.run_id]

    async def workflows(self, request: Request) -> Response:
        listed = [info.to_wire() for info in self.registry.describe()]
        return JSONResponse({"protocol": PROTOCOL, "workflows": listed})


def asgi_handler(workflows: WorkflowRegistry | None = None, *,
                 secret: str | None = None) -> Any:
    """The ASGI app serving `workflows` (default: those registered with `@workflow`) to
    ledgerflow workers that dispatch them over HTTP (`LEDGERFLOW_DISPATCH`).

    `secret`: the shared signing secret (default: `LEDGERFLOW_DISPATCH_SECRET`); a
    handler without one refuses to start (`ValueError`)."""
    key = secret if secret is not None else Settings().dispatch_secret
    if not key:
        raise ValueError("a workflow handler needs the shared secret its workers sign "
                         "with: set LEDGERFLOW_DISPATCH_SECRET or pass secret=")
    handler = _Handler(workflows if workflows is not None else default_registry, key)
    return Starlette(routes=[Route("/", handler.run, methods=["POST"]),
                             Route("/run", handler.run, methods=["POST"]),
                             Route("/cancel", handler.cancel, methods=["POST"]),
                             Route("/workflows", handler.workflows, methods=["GET"])])
