"""Every `/api/runs/{id}` route takes a unique prefix of a run id (as the CLI's tables
show them); an ambiguous one answers 409 with the candidates, an unknown one 404."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from tests.api.conftest import ACME, GLOBEX
from tests.api.test_runs import trigger


def test_every_run_route_takes_a_unique_prefix(client: TestClient, lf: Ledgerflow) -> None:
    trigger(client, "waiter", runId="5f3a9c21-waiter")
    failing = trigger(client, "fragile", {"ok": False}, runId="77aa00-fragile")
    lf.engine.run_due()
    assert client.get("/api/runs/5f3a9c").json()["id"] == "5f3a9c21-waiter"
    assert client.get("/api/runs/5f3a9c/history").json()["data"][0]["type"] == "RunCreated"
    assert client.get("/api/runs/77aa00-f/journal").json()["data"][0]["stepId"] == "first"
    signaled = client.post("/api/runs/5f3a9c/signals", json={"name": "go", "payload": 1})
    assert signaled.status_code == 200 and signaled.json()["id"] == "5f3a9c21-waiter"
    lf.engine.run_due()
    sent = client.post("/api/runs/5f3a9c21/events", json={"eventType": "payment.settled"})
    assert sent.status_code == 200
    lf.engine.run_due()
    token = client.get("/api/runs/5f3a9c").json()["waitpoint"]["tokenId"]
    assert client.post(f"/api/runs/5f3a9c/tokens/{token}", json={}).status_code == 200
    rerun = client.post("/api/runs/77aa00/rerun", json={})
    assert rerun.status_code == 201 and rerun.json()["input"] == failing["input"]
    resumed = client.post("/api/runs/77aa00/resume", json={"input": {"ok": True}})
    assert resumed.status_code == 201, resumed.text
    canceled = client.post("/api/runs/77aa00/cancel", json={})  # failed: not cancelable
    assert canceled.status_code == 409 and canceled.json()["details"]["runId"] == failing["id"]


def test_an_ambiguous_prefix_is_409_with_the_candidates(client: TestClient) -> None:
    for run_id in ("abcdef-1", "abcdef-2"):
        trigger(client, "greet", "x", runId=run_id)
    for method, path in (("GET", "/api/runs/abcdef"), ("GET", "/api/runs/abcdef/history"),
                         ("POST", "/api/runs/abcdef/cancel")):
        response = client.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 409, (path, response.text)
        body = response.json()
        assert body["error"] == "ambiguous_run_id"
        assert body["details"]["candidates"] == ["abcdef-1", "abcdef-2"]
        assert "abcdef-1, abcdef-2" in body["message"]
    assert client.get("/api/runs/abcdef-2").json()["id"] == "abcdef-2"


def test_short_and_unknown_prefixes_are_404(client: TestClient) -> None:
    trigger(client, "greet", "x", runId="abcdef-1")
    for path in ("/api/runs/abcde", "/api/runs/abcdeg", "/api/runs/abcde/journal"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "run_not_found"


def test_a_prefix_sees_only_the_callers_tenant(authed: TestClient) -> None:
    created = authed.post("/api/runs", headers=ACME, json={
        "workflowId": "greet", "runId": "acme0001-run"})
    assert created.status_code == 201
    assert authed.get("/api/runs/acme0001", headers=ACME).json()["id"] == "acme0001-run"
    hidden = authed.get("/api/runs/acme0001", headers=GLOBEX)
    assert hidden.status_code == 404
    assert "acme0001-run" not in hidden.text
