"""`/api/queues` and the trigger's flow-control fields over HTTP: create and change a
queue (audited on its stream), list it with its figures, pause and resume, a run's
`queue` on its record, debounce, and the bad-input answers (404 naming the queues,
422 for limits that are not positive)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from tests.api.conftest import ACME, ROOT
from tests.api.test_errors_auth import assert_error


def _queues(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/api/queues")
    assert response.status_code == 200, response.text
    return {q["name"]: q for q in response.json()["data"]}


def test_put_creates_and_changes_a_queue_and_get_lists_it(client: TestClient,
                                                          lf: Ledgerflow) -> None:
    created = client.put("/api/queues/payments", json={"concurrency": 5,
                                                      "perKeyConcurrency": 1})
    assert created.status_code == 200, created.text
    changed = client.put("/api/queues/payments",
                         json={"rateLimit": {"limit": 10, "periodSeconds": 2}})
    assert changed.json() == {
        "name": "payments", "concurrency": 5, "perKeyConcurrency": 1,
        "rateLimit": {"limit": 10, "periodSeconds": 2.0}, "paused": False, "depth": 0,
        "executing": 0, "oldestWaitingSeconds": None}
    assert set(_queues(client)) == {"default", "payments"}
    removed = client.put("/api/queues/payments", json={"concurrency": None})
    assert removed.json()["concurrency"] is None and removed.json()["perKeyConcurrency"] == 1
    history = lf.store.read_stream("queue:payments")
    assert [r.type for r in history] == ["QueueChanged"] * 3


def test_a_run_waits_in_its_queue_and_shows_it(client: TestClient, lf: Ledgerflow) -> None:
    client.put("/api/queues/slow", json={"concurrency": 1})
    client.post("/api/queues/slow/pause")
    response = client.post("/api/runs", json={"workflowId": "greet", "input": "a",
                                              "queue": "slow", "concurrencyKey": "c1",
                                              "priority": 3})
    assert response.status_code == 201, response.text
    record = response.json()
    assert (record["queue"], record["priority"]) == ("slow", 3)
    slow = _queues(client)["slow"]
    assert (slow["paused"], slow["depth"]) == (True, 1)
    assert slow["oldestWaitingSeconds"] is not None
    metrics = client.get("/metrics").text
    assert 'ledgerflow_queue_depth{queue="slow"} 1.0' in metrics
    assert lf.engine.run_due(10).claimed == 0  # paused
    assert client.post("/api/queues/slow/resume").json()["paused"] is False
    assert lf.engine.run_due(10).completed == 1
    assert client.get(f"/api/runs/{record['id']}").json()["status"] == "completed"


def test_debounced_triggers_answer_the_same_run(client: TestClient, lf: Ledgerflow) -> None:
    ids = set()
    for n in range(5):
        response = client.post("/api/runs", json={
            "workflowId": "greet", "input": n, "debounce": {"key": "u1", "seconds": 60}})
        assert response.status_code in (200, 201), response.text
        ids.add(response.json()["id"])
    assert len(ids) == 1
    (run_id,) = ids
    record = client.get(f"/api/runs/{run_id}").json()
    assert (record["input"], record["status"]) == (4, "pending")


def test_unknown_queue_is_404_naming_the_queues(client: TestClient) -> None:
    client.put("/api/queues/payments", json={})
    body = assert_error(client.post("/api/runs", json={"workflowId": "greet",
                                                       "queue": "nope"}), 404,
                        "queue_not_found")
    assert body["details"]["known"] == ["default", "payments"]
    assert "default" in body["message"] and "payments" in body["message"]
    assert_error(client.post("/api/queues/nope/pause"), 404, "queue_not_found")
    assert_error(client.post("/api/queues/nope/resume"), 404, "queue_not_found")
    assert set(_queues(client)) == {"default", "payments"}
    assert client.get("/api/runs").json()["data"] == []


@pytest.mark.parametrize("body", [
    {"concurrency": 0}, {"concurrency": -1}, {"perKeyConcurrency": 0},
    {"rateLimit": {"limit": 0, "periodSeconds": 1}},
    {"rateLimit": {"limit": 5, "periodSeconds": 0}}, {"concurrency": "many"},
    {"burst": 3},
])
def test_limits_that_are_not_positive_are_422(client: TestClient, lf: Ledgerflow,
                                              body: dict[str, Any]) -> None:
    assert_error(client.put("/api/queues/q", json=body), 422, "invalid_request")
    assert "q" not in _queues(client)
    assert lf.store.read_stream("queue:q") == []


def test_bad_trigger_flow_fields_are_422(client: TestClient) -> None:
    for extra in ({"debounce": {"key": "k", "seconds": 0}}, {"startAt": "tomorrow"},
                  {"startAt": "2030-01-01T00:00:00"}, {"concurrencyKey": ""}):
        assert_error(client.post("/api/runs", json={"workflowId": "greet", **extra}), 422,
                     "invalid_request")
    assert client.get("/api/runs").json()["data"] == []


def test_changing_a_queue_needs_a_token_that_sees_every_tenant(authed: TestClient) -> None:
    assert_error(authed.put("/api/queues/q", json={"concurrency": 2}, headers=ACME), 403,
                 "forbidden")
    ok = authed.put("/api/queues/q", json={"concurrency": 2}, headers=ROOT)
    assert ok.status_code == 200, ok.text
