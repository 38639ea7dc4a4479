"""`priority` is reachable: in the trigger body (it was refused with 422), kept on the
run, and a worker with one thread claims the higher priority first."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from tests.api.test_errors_auth import assert_error


def test_a_worker_with_one_thread_claims_higher_priority_first(client: TestClient,
                                                              lf: Ledgerflow) -> None:
    ids = {}
    for priority in (0, 5, -3, 10, 1):  # triggered low first: the oldest is not the first
        response = client.post("/api/runs", json={"workflowId": "greet", "input": priority,
                                                  "priority": priority})
        assert response.status_code == 201, response.text
        ids[priority] = response.json()["id"]
    worker = lf.worker(threads=1, poll_interval=0.05).start()
    try:
        for run_id in ids.values():
            assert lf.engine.wait(run_id, timeout=30).status.value == "completed"
    finally:
        worker.stop()
    started = {p: lf.engine.history(r)[1] for p, r in ids.items()}
    assert all(e.type == "RunStarted" for e in started.values())
    by_start = sorted(started, key=lambda p: started[p].position)
    assert by_start == [10, 5, 1, 0, -3]


def test_priority_out_of_range_is_422(client: TestClient) -> None:
    for bad in (2**31, -(2**31) - 1, "high", 1.5):
        assert_error(client.post("/api/runs", json={"workflowId": "greet", "priority": bad}),
                     422, "invalid_request")
