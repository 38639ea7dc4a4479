"""`Idempotency-Key` is kept in the command's own transaction: a crash right after the
command commits (fault point `command_committed`) cannot make a retry append twice."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.api._idempotency import fingerprint
from ledgerflow.api._models import SignalRequest
from ledgerflow.eventstore.schema import events
from ledgerflow.runtime.faults import InjectedFault
from tests.api.test_errors_auth import assert_error


def crashing_post(lf: Ledgerflow, path: str, body: object, key: str) -> None:
    """POST on a server of its own that dies (fault point `command_committed`) after
    the command committed, before it answers."""
    lf.faults.arm("command_committed")
    with pytest.raises(InjectedFault):
        TestClient(create_app(lf)).post(path, json=body, headers={"Idempotency-Key": key})


def history_types(client: TestClient, run_id: str) -> list[str]:
    return [e["type"] for e in client.get(f"/api/runs/{run_id}/history").json()["data"]]


def test_a_crash_after_a_signal_commits_then_a_retry_replays_and_appends_nothing(
        client: TestClient, lf: Ledgerflow) -> None:
    run_id = client.post("/api/runs", json={"workflowId": "waiter"}).json()["id"]
    crashing_post(lf, f"/api/runs/{run_id}/signals", {"name": "later", "payload": 1},
                  "sig-crash")
    assert history_types(client, run_id).count("SignalReceived") == 1
    retry = client.post(f"/api/runs/{run_id}/signals", json={"name": "later", "payload": 1},
                        headers={"Idempotency-Key": "sig-crash"})
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == client.get(f"/api/runs/{run_id}").json()  # the run it left
    assert history_types(client, run_id).count("SignalReceived") == 1


def test_a_crash_after_a_trigger_commits_then_a_retry_replays_the_first_response(
        client: TestClient, lf: Ledgerflow) -> None:
    body = {"workflowId": "greet", "input": "ada"}
    crashing_post(lf, "/api/runs", body, "t-crash")
    retry = client.post("/api/runs", json=body, headers={"Idempotency-Key": "t-crash"})
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    runs = client.get("/api/runs").json()["data"]
    assert [r["id"] for r in runs] == [retry.json()["id"]]
    assert retry.json()["status"] == "pending"  # verbatim: as the trigger committed it
    with lf.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1


def test_rerun_and_resume_create_one_run_per_key(client: TestClient, lf: Ledgerflow) -> None:
    run_id = client.post("/api/runs", json={"workflowId": "fragile"}).json()["id"]
    lf.engine.run_due()
    for route in ("rerun", "resume"):
        first = client.post(f"/api/runs/{run_id}/{route}", headers={"Idempotency-Key": route})
        again = client.post(f"/api/runs/{run_id}/{route}", headers={"Idempotency-Key": route})
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
    assert len(client.get("/api/runs").json()["data"]) == 3


def test_a_key_still_held_by_an_unfinished_request_is_409(client: TestClient,
                                                          lf: Ledgerflow) -> None:
    run_id = client.post("/api/runs", json={"workflowId": "waiter"}).json()["id"]
    body = SignalRequest(name="later")
    lf.keys.acquire("api:*:POST /api/runs/{id}/signals", "held",
                    fingerprint({"id": run_id}, body))
    response = client.post(f"/api/runs/{run_id}/signals", json={"name": "later"},
                           headers={"Idempotency-Key": "held"})
    assert assert_error(response, 409, "idempotency_in_progress")["details"] == {"key": "held"}
    assert "SignalReceived" not in history_types(client, run_id)
