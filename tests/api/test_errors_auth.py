"""Error codes and shapes, auth and tenant isolation, idempotency keys, the DLQ routes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from kafka.errors import TopicAuthorizationFailedError

from ledgerflow._app import Ledgerflow
from ledgerflow.eventstore.schema import events
from ledgerflow.outbox import OutboundMessage, Outcome, Relay
from tests.api.conftest import ACME, GLOBEX, ROOT


def event_count(lf: Ledgerflow) -> int:
    with lf.db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())


def assert_error(response: httpx2.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"error", "message", "details"}
    return body


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/runs/nope"), ("GET", "/api/runs/nope/history"),
    ("GET", "/api/runs/nope/journal"), ("POST", "/api/runs/nope/signals"),
    ("POST", "/api/runs/nope/events"), ("POST", "/api/runs/nope/tokens/t"),
    ("POST", "/api/runs/nope/cancel"), ("POST", "/api/runs/nope/rerun"),
    ("POST", "/api/runs/nope/resume"),
])
def test_unknown_run_is_404_on_every_run_route(client: TestClient, method: str,
                                               path: str) -> None:
    body = {"name": "x"} if path.endswith("signals") else (
        {"eventType": "x"} if path.endswith("events") else {})
    response = client.request(method, path, json=body if method == "POST" else None)
    assert assert_error(response, 404, "run_not_found")["details"] == {"runId": "nope"}


def test_bad_input_is_4xx_with_the_error_shape_and_appends_nothing(client: TestClient,
                                                                   lf: Ledgerflow) -> None:
    assert "hello" in assert_error(client.post("/api/runs", json={"workflowId": "hello"}),
                                   404, "workflow_not_found")["message"]
    missing = assert_error(client.post("/api/runs", json={"input": 1}), 422, "invalid_request")
    assert "workflowId" in str(missing["details"])
    assert_error(client.post("/api/runs", json={"workflowId": "greet", "bogus": 1}),
                 422, "invalid_request")
    assert_error(client.post("/api/runs", content=b"{not json",
                             headers={"content-type": "application/json"}),
                 422, "invalid_request")
    assert_error(client.post("/api/runs", json={"workflowId": "greet", "input": "a\u0000b"}),
                 422, "invalid_request")
    assert_error(client.post("/api/runs", json={"workflowId": "greet", "input": 2**70}),
                 422, "invalid_request")
    big = {"workflowId": "greet", "input": "x" * (70 * 1024)}
    assert_error(client.post("/api/runs", json=big), 413, "payload_too_large")
    assert_error(client.get("/api/runs?limit=0"), 422, "invalid_request")
    assert_error(client.get("/api/runs?status=sleeping"), 422, "invalid_request")
    assert_error(client.get("/api/runs?cursor=garbage"), 422, "invalid_request")
    assert_error(client.get("/api/nothing-here"), 404, "not_found")
    assert_error(client.delete("/api/runs"), 405, "method_not_allowed")
    assert event_count(lf) == 0


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_openapi_document_has_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) >= {
        "/api/runs", "/api/runs/{id}", "/api/runs/{id}/history", "/api/runs/{id}/journal",
        "/api/runs/{id}/signals", "/api/runs/{id}/events", "/api/runs/{id}/tokens/{tokenId}",
        "/api/runs/{id}/cancel", "/api/runs/{id}/rerun", "/api/runs/{id}/resume",
        "/api/outbox/dead-letters", "/api/outbox/dead-letters/replay", "/healthz"}
    trigger_body = client.get("/openapi.json").json()["components"]["schemas"]["TriggerRequest"]
    assert {"workflowId", "tenantMeta", "runId"} <= set(trigger_body["properties"])


# --------------------------------------------------------------------- auth


def test_every_route_but_healthz_needs_a_token(authed: TestClient) -> None:
    assert authed.get("/healthz").status_code == 200
    assert_error(authed.get("/api/runs"), 401, "unauthorized")
    assert_error(authed.get("/api/runs", headers={"Authorization": "Bearer wrong"}),
                 401, "unauthorized")
    assert_error(authed.get("/api/runs", headers={"Authorization": "Basic root-token"}),
                 401, "unauthorized")
    assert_error(authed.post("/api/runs", json={"workflowId": "greet"}), 401, "unauthorized")
    assert authed.get("/api/runs", headers=ROOT).status_code == 200


def test_tenant_bound_tokens_see_and_command_only_their_tenant(authed: TestClient,
                                                              lf: Ledgerflow) -> None:
    mine = authed.post("/api/runs", json={"workflowId": "waiter"}, headers=ACME)
    assert mine.status_code == 201
    assert mine.json()["tenantMeta"] == {"tenantId": "acme"}  # stamped from the token
    theirs = authed.post("/api/runs", json={"workflowId": "waiter"}, headers=GLOBEX).json()
    lf.engine.run_due()
    for path in ("", "/history", "/journal"):
        assert_error(authed.get(f"/api/runs/{theirs['id']}{path}", headers=ACME),
                     404, "run_not_found")
        assert authed.get(f"/api/runs/{theirs['id']}{path}", headers=GLOBEX).status_code == 200
    before = event_count(lf)
    for path, body in (("/signals", {"name": "go"}), ("/events", {"eventType": "e"}),
                       ("/cancel", {}), ("/rerun", {}), ("/resume", {})):
        assert_error(authed.post(f"/api/runs/{theirs['id']}{path}", json=body, headers=ACME),
                     404, "run_not_found")
    assert event_count(lf) == before
    listed = authed.get("/api/runs", headers=ACME).json()["data"]
    assert [r["id"] for r in listed] == [mine.json()["id"]]
    assert_error(authed.get("/api/runs?tenantId=globex", headers=ACME), 403, "forbidden")
    assert len(authed.get("/api/runs", headers=ROOT).json()["data"]) == 2
    assert authed.get(f"/api/runs/{theirs['id']}", headers=ROOT).status_code == 200


def test_tenant_bound_token_cannot_trigger_into_another_tenant(authed: TestClient,
                                                              lf: Ledgerflow) -> None:
    response = authed.post("/api/runs", headers=ACME, json={
        "workflowId": "greet", "tenantMeta": {"tenantId": "globex"}})
    assert assert_error(response, 403, "forbidden")["details"] == {"tenantId": "globex"}
    assert event_count(lf) == 0
    own = authed.post("/api/runs", headers=ACME, json={
        "workflowId": "greet", "tenantMeta": {"tenantId": "acme", "plan": "gold"}})
    assert own.status_code == 201
    assert own.json()["tenantMeta"] == {"tenantId": "acme", "plan": "gold"}


def test_dead_letter_routes_need_an_all_tenants_token(authed: TestClient) -> None:
    assert_error(authed.get("/api/outbox/dead-letters", headers=ACME), 403, "forbidden")
    assert_error(authed.post("/api/outbox/dead-letters/replay", json={}, headers=ACME),
                 403, "forbidden")
    assert authed.get("/api/outbox/dead-letters", headers=ROOT).status_code == 200


# -------------------------------------------------------------- idempotency


def test_same_idempotency_key_and_body_replays_the_response(client: TestClient,
                                                            lf: Ledgerflow) -> None:
    body = {"workflowId": "greet", "input": "ada"}
    first = client.post("/api/runs", json=body, headers={"Idempotency-Key": "k-1"})
    lf.engine.run_due()
    again = client.post("/api/runs", json=body, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert len(client.get("/api/runs").json()["data"]) == 1
    other = client.post("/api/runs", json={**body, "input": "bob"},
                        headers={"Idempotency-Key": "k-1"})
    conflict = assert_error(other, 409, "conflict")
    assert conflict["details"] == {"runId": first.json()["id"], "key": "k-1"}
    assert len(client.get("/api/runs").json()["data"]) == 1


def test_idempotency_key_on_a_command_delivers_once(client: TestClient,
                                                    lf: Ledgerflow) -> None:
    run_id = client.post("/api/runs", json={"workflowId": "waiter"}).json()["id"]
    for _ in range(3):
        response = client.post(f"/api/runs/{run_id}/signals", json={"name": "later"},
                               headers={"Idempotency-Key": "sig-1"})
        assert response.status_code == 200
    types = [e["type"] for e in client.get(f"/api/runs/{run_id}/history").json()["data"]]
    assert types.count("SignalReceived") == 1
    other_run = client.post("/api/runs", json={"workflowId": "waiter"}).json()["id"]
    assert_error(client.post(f"/api/runs/{other_run}/signals", json={"name": "later"},
                             headers={"Idempotency-Key": "sig-1"}), 409, "conflict")


def test_a_failed_request_does_not_burn_its_key(client: TestClient, lf: Ledgerflow) -> None:
    run_id = client.post("/api/runs", json={"workflowId": "greet"}).json()["id"]
    lf.engine.run_due()
    assert client.post(f"/api/runs/{run_id}/cancel", headers={"Idempotency-Key": "c"}
                       ).status_code == 409
    assert client.post(f"/api/runs/{run_id}/cancel", headers={"Idempotency-Key": "c"}
                       ).status_code == 409


# --------------------------------------------------------------------- DLQ


class Refusing:
    """An injected fault: a publisher whose broker refuses every message (poison: an
    unreachable broker would only delay them)."""

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        return [TopicAuthorizationFailedError("broker refused") for _ in messages]

    def close(self) -> None:
        pass


def test_dead_letters_list_and_replay(client: TestClient, lf: Ledgerflow) -> None:
    client.post("/api/runs", json={"workflowId": "greet"})
    Relay(lf.db, Refusing(), max_attempts=1).run_once()
    dead = client.get("/api/outbox/dead-letters").json()["data"]
    assert len(dead) == 1
    assert dead[0]["eventType"] == "RunCreated" and "broker refused" in dead[0]["lastError"]
    replayed = client.post("/api/outbox/dead-letters/replay", json={"ids": [dead[0]["id"]]})
    assert replayed.status_code == 200 and replayed.json() == {"replayed": [dead[0]["id"]]}
    assert client.get("/api/outbox/dead-letters").json()["data"] == []
