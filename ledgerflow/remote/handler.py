"""`asgi_handler(workflows)`: the ASGI app a user mounts in their own service to serve
workflows to ledgerflow workers (`app.mount("/ledgerflow", asgi_handler(registry))`).

Routes (relative to where it is mounted):

- `POST /run` (also `POST /`): a signed `DispatchRequest` (see `protocol`); answers a
  `DispatchResponse` (200); when the worker accepts `application/x-ndjson` and a step
  streams a chunk before the answer is ready, in lines, each chunk as it is streamed.
  Refusals: 401 (unsigned, wrong signature, stale, replayed), 400 (another protocol
  version, or a body that is not a request of a running run), 404 (a workflow or
  version it does not serve).
- `POST /check`: a signed `CheckRequest`: would the workflow's input model take the
  input? (`CheckAnswer`: 200, or 422 with pydantic's errors; 404 for a workflow it does
  not serve).
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
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ledgerflow._authoring import WorkflowRegistry, default_registry
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import InvalidInput, LedgerflowError, UnknownWorkflow
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
    CheckAnswer,
    CheckRequest,
    DispatchRequest,
    DispatchResponse,
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
        told: asyncio.Queue[ev.StreamChunk | None] = asyncio.Queue()
        if STREAM_TYPE in request.headers.get("accept", ""):
            loop = asyncio.get_running_loop()

            def live(chunk: ev.StreamChunk) -> None:  # from the step's thread
                loop.call_soon_threadsafe(told.put_nowait, chunk)

            session.live = live
        answering = self._execute(session, told)
        first = await told.get()
        if first is None:  # answered before any chunk: one JSON body, as to any worker
            answer = answering.result()
            return Response(answer.model_dump_json(by_alias=True),
                            media_type="application/json")
        return StreamingResponse(self._lines(first, told, answering, session.run_id),
                                 media_type=STREAM_TYPE)

    def _execute(self, session: Buffered, told: asyncio.Queue[ev.StreamChunk | None]
                 ) -> asyncio.Future[DispatchResponse]:
        """Execute `session` in a thread (meanwhile a cancel reaches its steps); None is
        put in `told` when it is done, after every chunk it streamed."""
        self.running.setdefault(session.run_id, []).append(session)
        answering = asyncio.ensure_future(run_in_threadpool(session.answer))

        def done(_: object) -> None:
            self.running[session.run_id].remove(session)
            if not self.running[session.run_id]:
                del self.running[session.run_id]
            told.put_nowait(None)

        answering.add_done_callback(done)
        return answering

    async def _lines(self, first: ev.StreamChunk, told: asyncio.Queue[ev.StreamChunk | None],
                     answering: asyncio.Future[DispatchResponse],
                     run_id: str) -> AsyncIterator[bytes]:
        """The answer in lines: each step chunk as it is streamed, then the answer."""
        chunk: ev.StreamChunk | None = first
        while chunk is not None:
            yield _line("chunk", NewRecord.of(chunk))
            chunk = await told.get()
        try:
            answer = answering.result()
        except Exception as error:  # as a 500 would: the worker counts the request lost
            log.exception("run %s: the execution broke off", run_id, extra={"run_id": run_id})
            yield _line("error", Refusal(error="internal", message=f"the execution broke "
                                         f"off: {type(error).__name__}: {error}"))
            return
        yield _line("answer", answer)

    async def check(self, request: Request) -> Response:
        asked = await self._read(request, CheckRequest)
        if isinstance(asked, Response):
            return asked
        try:
            self.registry.get(asked.workflow_id, asked.workflow_version).check_input(asked.input)
        except UnknownWorkflow as error:
            return _refuse(404, "unknown_workflow", str(error))
        except InvalidInput as error:
            return JSONResponse(CheckAnswer(ok=False, errors=error.errors).model_dump(
                mode="json", by_alias=True), status_code=422)
        return JSONResponse(CheckAnswer(ok=True).model_dump(mode="json", by_alias=True))

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
                             Route("/check", handler.check, methods=["POST"]),
                             Route("/workflows", handler.workflows, methods=["GET"])])
