"""`/api/queues`: the queues, their limits and figures; limits changed at run time.

`GET /api/queues` lists every queue (`runtime.queues.QueueInfo`); `PUT
/api/queues/{name}` creates it or changes the limits the body names (a change is a
`QueueChanged` event on the queue's stream, its actor the caller's tenant scope);
`POST /api/queues/{name}/pause` and `/resume` (404 for a queue that does not exist).
Queues are not a tenant's: changing one needs a token that sees every tenant.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from ledgerflow.api._errors import json_response
from ledgerflow.api._models import Name, QueueRequest
from ledgerflow.api._runs import App, Caller, _errors
from ledgerflow.domain.wire import Page
from ledgerflow.runtime.queues import QueueInfo, RateLimit

router = APIRouter(prefix="/api/queues", tags=["queues"])
QueueName = Annotated[Name, Path(description="the queue's name")]


@router.get("", response_model=Page[QueueInfo], responses=_errors())
def list_queues(lf: App) -> Response:
    """Every queue by name: limits, paused, depth, executing, oldest waiting age."""
    return json_response(200, Page(lf.engine.queues.list()).wire_values())


@router.put("/{name}", response_model=QueueInfo, responses=_errors(403))
def put_queue(name: QueueName, body: QueueRequest, lf: App, who: Caller) -> Response:
    """Create the queue or change the limits the body names (null: remove a limit)."""
    who.require_all("changing a queue")
    changes: dict[str, Any] = {}
    for field in sorted(body.model_fields_set):
        value = getattr(body, field)
        if field == "rate_limit":
            value = None if value is None else RateLimit(value.limit, value.period_seconds)
        if field == "paused" and value is None:
            continue
        changes[field] = value
    info = lf.engine.queues.change(name, changes, actor=f"api:{who.scope}")
    return json_response(200, info.to_wire())


@router.post("/{name}/pause", response_model=QueueInfo, responses=_errors(403, 404))
def pause_queue(name: QueueName, lf: App, who: Caller) -> Response:
    """Hold every run of the queue (runs executing finish their current execution)."""
    who.require_all("pausing a queue")
    return json_response(200, lf.engine.queues.pause(name, actor=f"api:{who.scope}").to_wire())


@router.post("/{name}/resume", response_model=QueueInfo, responses=_errors(403, 404))
def resume_queue(name: QueueName, lf: App, who: Caller) -> Response:
    """Let the queue's runs be claimed again."""
    who.require_all("resuming a queue")
    return json_response(200, lf.engine.queues.resume(name, actor=f"api:{who.scope}").to_wire())
