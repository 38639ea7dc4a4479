"""The run routes through the HTTP stack on PostgreSQL: shapes, commands, lists, errors."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow

RUN_KEYS = {"id", "workflowId", "workflowVersion", "status", "input", "result", "error",
            "waitpoint", "wakeAt", "parentRunId", "children", "tags", "tenantMeta",
            "createdAt", "updatedAt", "version", "resumedFrom", "rerunOf", "compensation",
            "queue", "priority"}


def trigger(client: TestClient, workflow_id: str, input: Any = None, **extra: Any) -> Any:
    response = client.post("/api/runs", json={"workflowId": workflow_id, "input": input,
                                              **extra})
    assert response.status_code == 201, response.text
    return response.json()


def history_types(client: TestClient, run_id: str) -> list[str]:
    response = client.get(f"/api/runs/{run_id}/history")
    assert response.status_code == 200
    return [e["type"] for e in response.json()["data"]]


def test_trigger_run_and_read_record_history_journal(client: TestClient,
                                                      lf: Ledgerflow) -> None:
    run = trigger(client, "greet", "ada", tags=["vip"], tenantMeta={"tenantId": "acme"})
    assert set(run) == RUN_KEYS
    assert (run["status"], run["input"], run["tags"]) == ("pending", "ada", ["vip"])
    lf.engine.run_due()
    got = client.get(f"/api/runs/{run['id']}").json()
    assert (got["status"], got["result"], got["tenantMeta"]) == (
        "completed", "hello ada", {"tenantId": "acme"})
    history = client.get(f"/api/runs/{run['id']}/history").json()["data"]
    assert [e["type"] for e in history] == ["RunCreated", "RunStarted", "StepCompleted",
                                            "RunCompleted"]
    assert [e["version"] for e in history] == [1, 2, 3, 4]
    assert set(history[0]) == {"eventId", "position", "version", "type", "data", "metadata",
                               "recordedAt"}
    journal = client.get(f"/api/runs/{run['id']}/journal").json()["data"]
    assert [(j["stepId"], j["status"], j["attempt"], j["result"]) for j in journal] == [
        ("greet", "completed", 1, "hello ada")]


def test_trigger_with_an_existing_run_id_returns_that_run(client: TestClient) -> None:
    first = trigger(client, "greet", "a", runId="order-17")
    again = client.post("/api/runs", json={"workflowId": "greet", "input": "a",
                                           "runId": "order-17"})
    assert again.status_code == 200
    assert again.json()["id"] == first["id"] == "order-17"
    assert history_types(client, "order-17") == ["RunCreated"]


def test_signal_event_and_token_wake_a_waiting_run(client: TestClient, lf: Ledgerflow) -> None:
    run_id = trigger(client, "waiter")["id"]
    lf.engine.run_due()
    waiting = client.get(f"/api/runs/{run_id}").json()
    assert waiting["status"] == "suspended"
    assert waiting["waitpoint"]["kind"] == "signal" and waiting["waitpoint"]["name"] == "go"
    assert client.post(f"/api/runs/{run_id}/signals",
                       json={"name": "go", "payload": 1}).status_code == 200
    lf.engine.run_due()
    assert client.post(f"/api/runs/{run_id}/events",
                       json={"eventType": "payment.settled", "payload": {"ok": True}}
                       ).status_code == 200
    lf.engine.run_due()
    wp = client.get(f"/api/runs/{run_id}").json()["waitpoint"]
    assert wp["kind"] == "token" and wp["tokenId"]
    resolved = client.post(f"/api/runs/{run_id}/tokens/{wp['tokenId']}", json={"payload": "ok"})
    assert resolved.status_code == 200
    lf.engine.run_due()
    done = client.get(f"/api/runs/{run_id}").json()
    assert done["status"] == "completed"
    assert done["result"] == {"go": 1, "paid": {"ok": True}, "note": "ok"}


def test_cancel_then_cancel_again_is_409_and_appends_nothing(client: TestClient,
                                                             lf: Ledgerflow) -> None:
    run_id = trigger(client, "waiter")["id"]
    lf.engine.run_due()
    canceled = client.post(f"/api/runs/{run_id}/cancel", json={"reason": "customer left"})
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    before = history_types(client, run_id)
    again = client.post(f"/api/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == "illegal_transition"
    assert history_types(client, run_id) == before


def test_cancel_with_compensate_undoes_completed_steps_then_cancels(
        client: TestClient, lf: Ledgerflow) -> None:
    run_id = trigger(client, "booking")["id"]
    lf.engine.run_due()
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "suspended"
    asked = client.post(f"/api/runs/{run_id}/cancel",
                        json={"reason": "trip called off", "compensate": True})
    assert asked.status_code == 200 and asked.json()["status"] == "compensating"
    lf.engine.run_due()
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "canceled"
    history = client.get(f"/api/runs/{run_id}/history").json()["data"]
    assert [e["type"] for e in history][-3:] == ["RunCompensating", "CompensationCompleted",
                                                 "RunCanceled"]
    assert history[-2]["data"]["result"] == {"released": "12A"}
    assert history[-1]["data"]["reason"] == "trip called off"


def test_a_failed_runs_error_shows_the_users_traceback(client: TestClient,
                                                       lf: Ledgerflow) -> None:
    run_id = trigger(client, "fragile", {"ok": False})["id"]
    lf.engine.run_due()
    error = client.get(f"/api/runs/{run_id}").json()["error"]
    assert {"type", "message", "traceback", "details"} <= set(error)
    assert "_workflows.py" in error["traceback"] and "in second" in error["traceback"]
    assert 'raise Declined("card declined")' in error["traceback"]
    (step,) = [j for j in client.get(f"/api/runs/{run_id}/journal").json()["data"]
               if j["stepId"] == "second"]
    assert step["error"]["traceback"] == error["traceback"]
    failed = [e for e in client.get(f"/api/runs/{run_id}/history").json()["data"]
              if e["type"] == "StepFailed"]
    assert failed[0]["data"]["error"]["traceback"] == error["traceback"]


def test_token_that_is_not_awaited_is_409(client: TestClient, lf: Ledgerflow) -> None:
    run_id = trigger(client, "waiter")["id"]
    lf.engine.run_due()
    before = history_types(client, run_id)
    response = client.post(f"/api/runs/{run_id}/tokens/not-the-token", json={})
    assert response.status_code == 409
    assert response.json()["error"] == "not_awaited"
    assert history_types(client, run_id) == before


def test_rerun_and_resume(client: TestClient, lf: Ledgerflow) -> None:
    failed = trigger(client, "fragile", {"ok": False})["id"]
    lf.engine.run_due()
    assert client.get(f"/api/runs/{failed}").json()["status"] == "failed"
    rerun = client.post(f"/api/runs/{failed}/rerun", json={})
    assert rerun.status_code == 201 and rerun.json()["input"] == {"ok": False}
    resumed = client.post(f"/api/runs/{failed}/resume",
                          json={"input": {"ok": True}, "resumeFromStep": "second",
                                "triggeredByUserId": "ops-1"})
    assert resumed.status_code == 201, resumed.text
    lf.engine.run_due()
    record = client.get(f"/api/runs/{resumed.json()['id']}").json()
    assert record["status"] == "completed"
    assert record["result"] == {"first": {"n": 1}, "second": "paid"}
    not_failed = client.post(f"/api/runs/{resumed.json()['id']}/resume", json={})
    assert not_failed.status_code == 409


def test_list_filters_and_cursor_paging(client: TestClient, lf: Ledgerflow) -> None:
    ids = [trigger(client, "greet", i, tags=["batch"] if i % 2 else [],
                   tenantMeta={"tenantId": "acme" if i < 3 else "globex"})["id"]
           for i in range(5)]
    trigger(client, "waiter")
    lf.engine.run_due()
    page = client.get("/api/runs", params={"workflowId": "greet", "limit": 2}).json()
    assert len(page["data"]) == 2 and page["nextCursor"]
    seen = [r["id"] for r in page["data"]]
    while page["nextCursor"]:
        page = client.get("/api/runs", params={"workflowId": "greet", "limit": 2,
                                               "cursor": page["nextCursor"]}).json()
        seen += [r["id"] for r in page["data"]]
    assert seen == list(reversed(ids))
    assert {r["id"] for r in client.get("/api/runs?tag=batch").json()["data"]} == {
        ids[1], ids[3]}
    assert len(client.get("/api/runs?tenantId=acme").json()["data"]) == 3
    assert [r["workflowId"] for r in client.get("/api/runs?status=suspended").json()["data"]
            ] == ["waiter"]


def test_parent_lists_its_children(client: TestClient, lf: Ledgerflow) -> None:
    parent = trigger(client, "parent")["id"]
    for _ in range(3):
        lf.engine.run_due()
    record = client.get(f"/api/runs/{parent}").json()
    assert record["status"] == "completed" and len(record["children"]) == 1
    kids = client.get("/api/runs", params={"parentRunId": parent}).json()["data"]
    assert [k["id"] for k in kids] == record["children"]
