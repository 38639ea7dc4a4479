"""409 `conflict` for a trigger that reuses a run id or an `Idempotency-Key` with
another workflow or input, naming the existing run; the same request is idempotent."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from tests.api.test_errors_auth import assert_error, event_count


def test_a_reused_run_id_with_other_input_is_409_naming_the_run(client: TestClient,
                                                                lf: Ledgerflow) -> None:
    body = {"workflowId": "greet", "input": "ada", "runId": "order-7"}
    assert client.post("/api/runs", json=body).status_code == 201
    again = client.post("/api/runs", json=body)
    assert again.status_code == 200 and again.json()["id"] == "order-7"
    before = event_count(lf)
    other = assert_error(client.post("/api/runs", json={**body, "input": "bob"}),
                         409, "conflict")
    assert other["details"] == {"runId": "order-7", "differs": ["input"]}
    assert "run 'order-7' exists already" in other["message"]
    assert_error(client.post("/api/runs", json={**body, "workflowId": "waiter"}),
                 409, "conflict")
    assert event_count(lf) == before
    assert client.get("/api/runs/order-7").json()["input"] == "ada"


def test_a_reused_trigger_key_with_another_workflow_is_409_naming_the_run(
        client: TestClient, lf: Ledgerflow) -> None:
    key = {"Idempotency-Key": "checkout-1"}
    first = client.post("/api/runs", json={"workflowId": "greet", "input": 1}, headers=key)
    run_id = first.json()["id"]
    other = assert_error(client.post("/api/runs", json={"workflowId": "waiter", "input": 1},
                                     headers=key), 409, "conflict")
    assert other["details"] == {"runId": run_id, "key": "checkout-1"}
    assert f"names run {run_id!r}" in other["message"]
    assert len(client.get("/api/runs").json()["data"]) == 1
