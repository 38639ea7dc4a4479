"""`asgi_handler(workflows)`: the ASGI app a user mounts in their own service to serve
workflows to ledgerflow workers (`app.mount("/ledgerflow", asgi_handler(registry))`).

Routes (relative to where it is mounted):

- `POST /run` (also `POST /`): a signed `DispatchRequest` (see `protocol`); answers a
  `DispatchResponse` (200). Refusals: 401 (unsigned, wrong signature, stale, replayed),
  400 (another protocol version, or a body that is not a request of a running run),
  404 (a workflow or
  version it does not serve).
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

import json
import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledgerflow._authoring import WorkflowRegistry, default_registry
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
    CancelRequest,
    DispatchRequest,
    Refusal,
)
from ledgerflow.remote.signing import BadSignature, ReplayGuard, verify
from ledgerflow.runtime.aio_loop import AsyncLoop
from ledgerflow.settings import Settings

log = logging.getLogger("ledgerflow.remote")
M = TypeVar("M", bound=BaseModel)


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
        self.running.setdefault(asked.run_id, []).append(session)
        try:
            answer = await run_in_threadpool(session.answer)
        finally:
            self.running[asked.run_id].remove(session)
            if not self.running[asked.run_id]:
                del self.running[asked.run_id]
        return Response(answer.model_dump_json(by_alias=True), media_type="application/json")

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
