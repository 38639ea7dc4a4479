"""`/api/schedules`: create, list with next fire times, detail with history, pause,
resume, trigger, delete; bad input answers 404 / 409 / 422 and appends nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from ledgerflow.domain import schedules as sch
from tests.api.conftest import ACME, ROOT

BODY = {"scheduleId": "hourly-greet", "workflowId": "greet", "input": "Ada",
        "cron": "0 * * * *", "timezone": "Europe/Paris"}


def test_create_list_get(client: TestClient) -> None:
    created = client.post("/api/schedules", json=BODY)
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["scheduleId"] == "hourly-greet" and record["cron"] == "0 * * * *"
    assert record["overlap"] == "skip" and record["catchupWindowSeconds"] == 60
    assert len(record["nextFireTimes"]) == 5
    assert all(t.endswith(":00:00+00:00") for t in record["nextFireTimes"])
    again = client.post("/api/schedules", json=BODY)
    assert again.status_code == 200 and again.json()["version"] == 1
    listed = client.get("/api/schedules").json()
    assert [s["scheduleId"] for s in listed["data"]] == ["hourly-greet"]
    assert listed["nextCursor"] is None
    detail = client.get("/api/schedules/hourly-greet").json()
    assert [h["type"] for h in detail["history"]] == ["ScheduleCreated"]
    assert detail["history"][0]["data"]["spec"]["timezone"] == "Europe/Paris"


def test_pause_resume_trigger_delete(client: TestClient, lf: Ledgerflow) -> None:
    client.post("/api/schedules", json={**BODY, "cron": None, "everySeconds": 60})
    paused = client.post("/api/schedules/hourly-greet/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert paused.json()["nextFireTimes"] == []
    triggered = client.post("/api/schedules/hourly-greet/trigger")
    assert triggered.status_code == 201, triggered.text
    run_id = triggered.json()["runId"]
    assert run_id.startswith("hourly-greet@") and run_id.endswith("Z")
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["tags"] == ["schedule:hourly-greet"] and run["input"] == "Ada"
    resumed = client.post("/api/schedules/hourly-greet/resume").json()
    assert resumed["paused"] is False and len(resumed["nextFireTimes"]) == 5
    assert client.delete("/api/schedules/hourly-greet").status_code == 204
    assert client.get("/api/schedules/hourly-greet").status_code == 404
    kinds = [r.type for r in lf.store.read_stream(sch.stream_id("hourly-greet"))]
    assert kinds == ["ScheduleCreated", "SchedulePaused", "ScheduleFired", "ScheduleResumed",
                     "ScheduleDeleted"]


def test_a_schedule_is_changed_in_place(client: TestClient, lf: Ledgerflow) -> None:
    client.post("/api/schedules", json={**BODY, "paused": True})
    spec = {k: v for k, v in BODY.items() if k != "scheduleId"}
    changed = client.put("/api/schedules/hourly-greet",
                         json={**spec, "cron": None, "everySeconds": 90, "input": "Grace",
                               "overlap": "allow"})
    assert changed.status_code == 200, changed.text
    record = changed.json()
    assert (record["cron"], record["everySeconds"], record["input"], record["overlap"]) == (
        None, 90, "Grace", "allow")
    assert record["paused"] is True and record["version"] == 2  # paused stays paused
    same = client.put("/api/schedules/hourly-greet",
                      json={**spec, "cron": None, "everySeconds": 90, "input": "Grace",
                            "overlap": "allow"})
    assert same.json()["version"] == 2  # the same spec again appends nothing
    resumed = client.post("/api/schedules/hourly-greet/resume").json()
    gaps = {(b - a).total_seconds() for a, b in zip(
        map(datetime.fromisoformat, resumed["nextFireTimes"]),
        map(datetime.fromisoformat, resumed["nextFireTimes"][1:]), strict=False)}
    assert gaps == {90.0}
    bad = client.put("/api/schedules/hourly-greet", json={**spec, "cron": "0 25 * * *"})
    assert bad.status_code == 422 and "hour field: 25" in bad.json()["message"]
    missing = client.put("/api/schedules/missing", json=spec)
    assert missing.status_code == 404 and missing.json()["error"] == "schedule_not_found"
    unknown = client.put("/api/schedules/hourly-greet", json={**spec, "workflowId": "nope"})
    assert unknown.status_code == 404
    kinds = [r.type for r in lf.store.read_stream(sch.stream_id("hourly-greet"))]
    assert kinds == ["ScheduleCreated", "ScheduleUpdated", "ScheduleResumed"]


def _refused(client: TestClient, body: dict[str, Any], status: int, says: str) -> None:
    response = client.post("/api/schedules", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["message"], response.json()


def test_bad_input(client: TestClient, lf: Ledgerflow) -> None:
    _refused(client, {**BODY, "workflowId": "nope"}, 404, "no workflow 'nope'")
    _refused(client, {**BODY, "cron": "0 25 * * *"}, 422, "hour field: 25 is out of range")
    _refused(client, {**BODY, "timezone": "Europe/Nowhere"}, 422,
             "unknown time zone 'Europe/Nowhere'")
    _refused(client, {**BODY, "everySeconds": 5}, 422, "exactly one of cron and everySeconds")
    _refused(client, {**BODY, "cron": None}, 422, "got neither")
    _refused(client, {**BODY, "overlap": "sometimes"}, 422, "overlap")
    assert lf.store.stream_version(sch.stream_id("hourly-greet")) == 0
    client.post("/api/schedules", json=BODY)
    _refused(client, {**BODY, "cron": "5 * * * *"}, 409, "exists already with another spec")
    for path in ("pause", "resume", "trigger"):
        missing = client.post(f"/api/schedules/missing/{path}")
        assert missing.status_code == 404 and missing.json()["error"] == "schedule_not_found"
    assert client.delete("/api/schedules/missing").status_code == 404
    assert client.get("/api/schedules/missing").status_code == 404


def test_schedules_need_a_token_that_sees_every_tenant(authed: TestClient) -> None:
    assert authed.post("/api/schedules", json=BODY, headers=ACME).status_code == 403
    assert authed.get("/api/schedules", headers=ACME).status_code == 403
    assert authed.post("/api/schedules", json=BODY, headers=ROOT).status_code == 201
