"""`GET /api/workflows`: the workflows this server can run, for a client to discover.

Each is a `WorkflowInfo` (declared by the authoring API, `ledgerflow._authoring`):
name, versions, kind (`code`, or `flow`: it has a graph, `GET
/api/workflows/{name}/graph`), description (the function's docstring), the JSON
schemas of its input and output models (null when untyped), queue and schedule
(null until workflows can name them). Read from the server's registry: no database read.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ledgerflow import flows
from ledgerflow._authoring import WorkflowInfo
from ledgerflow.api._errors import json_response
from ledgerflow.api._runs import App, _errors
from ledgerflow.domain.wire import Page

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


@router.get("", response_model=Page[WorkflowInfo], responses=_errors())
def list_workflows(lf: App) -> Response:
    """Registered workflows, by name (any token may list them: they are not a tenant's)."""
    return json_response(200, Page(lf.engine.registry.describe(flows.kind)).wire_values())
