"""`GET /api/workflows/{name}/graph`, and an agent step answered over HTTP
(`POST /api/runs/{id}/tokens/{tokenId}`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledgerflow import Ledgerflow, Suspend, WorkflowRegistry, current_step, flow
from ledgerflow.api import create_app
from ledgerflow.settings import Settings
from ledgerflow.testing import run_to_completion
from tests.api.conftest import ACME, GLOBEX, TOKENS


def _agent(_fctx: Any) -> Any:
    info = current_step()
    if info.resume_data is None:
        return Suspend(state={"asked": "weather"}, pending=[{"tool": "forecast"}])
    return {"reply": f"{info.suspended_state['asked']}: {info.resume_data['forecast']}"}


SHOP = (flow("shop", version="2")
        .step("reserve", lambda f: "seat")
        .step("assistant", _agent)
        .sleep("cool-off", timedelta(minutes=5)))


def _registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()
    SHOP.register(registry)
    registry.register("plain", lambda ctx, data: ctx.step("one", lambda: 1))
    return registry


@pytest.fixture
def lf(settings: Settings) -> Iterator[Ledgerflow]:
    """conftest's `lf` (which its `client` serves) with this module's workflows."""
    app = Ledgerflow.open(settings, registry=_registry(), upgrade=False)
    yield app
    app.close()


def test_a_flows_graph_is_served(client: TestClient) -> None:
    response = client.get("/api/workflows/shop/graph")
    assert response.status_code == 200, response.text
    assert response.json() == SHOP.graph()
    assert response.json()["version"] == "2"


def test_unknown_and_code_first_workflows_have_no_graph(client: TestClient) -> None:
    missing = client.get("/api/workflows/nope/graph")
    assert missing.status_code == 404 and missing.json()["error"] == "workflow_not_found"
    plain = client.get("/api/workflows/plain/graph")
    assert plain.status_code == 409
    assert plain.json()["error"] == "not_a_flow"
    assert "code-first" in plain.json()["message"] and "ledgerflow.flow()" in plain.json()[
        "message"]


def test_an_agent_step_answered_over_http_and_the_run_overlaid(
        client: TestClient, lf: Ledgerflow) -> None:
    run = client.post("/api/runs", json={"workflowId": "shop"}).json()["id"]
    run_to_completion(lf.engine, run)
    waiting = client.get(f"/api/runs/{run}").json()
    wp = waiting["waitpoint"]
    assert waiting["status"] == "suspended" and wp["kind"] == "agent"
    assert (wp["name"], wp["pending"]) == ("assistant", [{"tool": "forecast"}])
    graph = client.get("/api/workflows/shop/graph", params={"runId": run}).json()
    statuses = {n["id"]: n["status"] for n in graph["nodes"]}
    assert (statuses["reserve"], statuses["assistant"], statuses["cool-off"]) == (
        "ran", "waiting", None)
    answered = client.post(f"/api/runs/{run}/tokens/{wp['tokenId']}",
                           json={"payload": {"forecast": "sunny"}})
    assert answered.status_code == 200, answered.text
    run_to_completion(lf.engine, run)
    journal = client.get(f"/api/runs/{run}/journal").json()["data"]
    assert [(e["stepId"], e["status"], e["result"]) for e in journal] == [
        ("reserve", "completed", "seat"),
        ("assistant", "completed", {"reply": "weather: sunny"})]
    again = client.post(f"/api/runs/{run}/tokens/{wp['tokenId']}", json={"payload": {}})
    assert again.status_code == 409 and again.json()["error"] == "not_awaited"


def test_run_overlay_checks_the_workflow_and_the_tenant(lf: Ledgerflow,
                                                        settings: Settings) -> None:
    plain = lf.engine.trigger("plain", None).run_id
    theirs = lf.engine.trigger("shop", None, tenant_meta={"tenantId": "globex"}).run_id
    tokens = settings.model_copy(update={"api_tokens": TOKENS})
    with TestClient(create_app(lf, tokens)) as authed:
        other = authed.get("/api/workflows/shop/graph", params={"runId": plain},
                           headers=ACME)
        assert other.status_code == 404  # acme cannot see the untenanted run either
        hidden = authed.get("/api/workflows/shop/graph", params={"runId": theirs},
                            headers=ACME)
        assert hidden.status_code == 404
        seen = authed.get("/api/workflows/shop/graph", params={"runId": theirs},
                          headers=GLOBEX)
        assert seen.status_code == 200
        wrong = authed.get("/api/workflows/plain/graph", params={"runId": theirs},
                           headers=GLOBEX)
        assert wrong.status_code == 422 and "not 'plain'" in wrong.json()["message"]
