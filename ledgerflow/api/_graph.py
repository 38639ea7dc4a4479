"""`GET /api/workflows/{name}/graph`: a declarative flow's static graph.

The graph is `ledgerflow.flows.graph`'s `{workflow, version, nodes, edges}` of the
latest registered version (or `?version=`). With `?runId=`, the run's history is laid
over it (each node's `status`: `ran`, `failed`, `waiting` or null) and the version is
the run's. 404 for an unknown workflow (or a run the caller cannot see); 409
`not_a_flow` for a code-first workflow: it exists, but only flows built with
`ledgerflow.flow()` have a static graph; 422 when `runId` names a run of another
workflow.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from ledgerflow.api._errors import json_response
from ledgerflow.api._models import MAX_ID, Name
from ledgerflow.api._runs import _ID_PATTERN, App, Caller, _errors, visible_run
from ledgerflow.domain.errors import InvalidRequest
from ledgerflow.flows import graph_of, history_entries, overlay

router = APIRouter(tags=["workflows"])


class GraphNode(BaseModel):
    """A node: `id` (the step id it journals), `kind`, `label`, what its kind tells
    (`maxAttempts`, `maxIterations`, `workflow`, ...) and, overlaid, `status`."""

    model_config = ConfigDict(extra="allow")
    id: str
    kind: str
    label: str


class GraphEdge(BaseModel):
    """An edge: kind `next`, `fanout`, `fanin`, `branch` (label: the branch) or `back`."""

    source: str
    target: str
    kind: str
    label: str | None


class Graph(BaseModel):
    workflow: str
    version: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]


WorkflowName = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=_ID_PATTERN)]


@router.get("/api/workflows/{name}/graph", response_model=Graph,
            responses=_errors(404, 409))
def workflow_graph(name: WorkflowName, lf: App, who: Caller, version: Name | None = None,
                   run_id: Annotated[Name | None, Query(alias="runId")] = None) -> Response:
    """The flow's nodes and edges; with `runId`, that run's progress on them. 409 for a
    code-first workflow (only flows have a static graph)."""
    if run_id is not None:
        record = visible_run(lf, who, run_id)
        if record.workflow_id != name:
            raise InvalidRequest(f"run {run_id!r} is a run of workflow "
                                 f"{record.workflow_id!r}, not {name!r}")
        version = version or record.workflow_version
    graph = graph_of(lf.engine.registry, name, version)
    if run_id is not None:
        graph = overlay(graph, history_entries(lf.engine.history(record.run_id)))
    return json_response(200, graph)
