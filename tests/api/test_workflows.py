"""`GET /api/workflows` lets a client discover what it may trigger; a typed workflow's
trigger validates its input first (422 with pydantic's errors and their locations)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import BaseModel

from ledgerflow import Context, flow
from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.settings import Settings
from tests.api._workflows import registry
from tests.api.conftest import ROOT, TOKENS
from tests.api.test_errors_auth import assert_error, event_count


class Payment(BaseModel):
    account: str
    cents: int


def pay(ctx: Context, payment: Payment) -> dict[str, int]:
    """Charge an account."""
    return {"charged": payment.cents}


def test_workflows_are_listed_with_versions_description_and_input_schema(
        client: TestClient, lf: Ledgerflow) -> None:
    lf.engine.registry.register("pay", pay, input=Payment)
    flow("drawn", description="A flow: it has a graph.", registry=lf.engine.registry).step(
        "only", lambda fctx: 1).register()
    listed = client.get("/api/workflows")
    assert listed.status_code == 200
    body = listed.json()
    assert body["nextCursor"] is None
    found = {w["name"]: w for w in body["data"]}
    assert set(found) == {*registry().names(), "pay", "drawn"}
    assert (found["drawn"]["kind"], found["drawn"]["description"]) == (
        "flow", "A flow: it has a graph.")
    assert found["pay"] == {
        "name": "pay", "versions": ["1"], "kind": "code", "description": "Charge an account.",
        "inputSchema": Payment.model_json_schema(), "outputSchema": None, "queue": None,
        "schedule": None, "rerunSafety": "safe"}
    assert found["greet"]["description"] == "One step." and found["greet"]["inputSchema"] is None
    documented = client.get("/openapi.json").json()["paths"]["/api/workflows"]["get"]
    assert "200" in documented["responses"]


def test_a_typed_trigger_validates_before_appending(client: TestClient, lf: Ledgerflow) -> None:
    lf.engine.registry.register("pay", pay, input=Payment)
    refused = assert_error(client.post("/api/runs", json={
        "workflowId": "pay", "input": {"cents": "ten"}}), 422, "invalid_request")
    assert [(e["loc"], e["type"]) for e in refused["details"]["errors"]] == [
        (["input", "account"], "missing"), (["input", "cents"], "int_parsing")]
    assert "input.account: Field required" in refused["message"]
    assert event_count(lf) == 0
    run = client.post("/api/runs", json={"workflowId": "pay",
                                         "input": {"account": "a-1", "cents": 250}})
    assert run.status_code == 201
    lf.engine.run_due()
    assert client.get(f"/api/runs/{run.json()['id']}").json()["result"] == {"charged": 250}


def test_listing_workflows_needs_a_token_when_tokens_are_set(lf: Ledgerflow,
                                                             settings: Settings) -> None:
    with TestClient(create_app(lf, settings.model_copy(update={"api_tokens": TOKENS}))) as c:
        assert_error(c.get("/api/workflows"), 401, "unauthorized")
        assert c.get("/api/workflows", headers=ROOT).status_code == 200
