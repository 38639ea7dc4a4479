"""The API's stream route, the confirmed rerun and the resume of a parent stored
elsewhere, with tenants."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from ledgerflow import Context, current_step
from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from tests.api.conftest import ACME, GLOBEX, ROOT


def _register(lf: Ledgerflow) -> None:
    def talk() -> str:
        current_step().stream("tokens", "hi")
        return "said"

    def chatty(ctx: Context, data: Any) -> str:
        ctx.stream("progress", 1)
        return str(ctx.step("talk", talk))

    lf.engine.registry.register("chatty", chatty)
    lf.engine.registry.register("unsafe", lambda ctx, data: data, rerun_safety="unsafe")


def test_the_stream_of_a_finished_run_is_its_chunks_then_the_end(lf: Ledgerflow,
                                                                 client: TestClient) -> None:
    _register(lf)
    run = lf.engine.trigger("chatty", None).run_id
    lf.engine.run_due()
    body = client.get(f"/api/runs/{run}/stream").text
    messages = [m for m in body.split("\n\n") if m]
    assert [line for m in messages for line in m.splitlines()
            if line.startswith("event:")] == ["event: chunk", "event: chunk", "event: end"]
    assert '"chunk":"hi"' in messages[1] and '"stepId":"talk"' in messages[1]
    assert messages[2] == 'event: end\ndata: {"status":"completed"}'
    first_id = int(messages[0].splitlines()[0].removeprefix("id: "))
    rest = client.get(f"/api/runs/{run}/stream", params={"from": first_id}).text
    assert rest.count("event: chunk") == 1 and '"chunk":"hi"' in rest
    assert client.get("/api/runs/nope-nope/stream").status_code == 404
    bad = client.get(f"/api/runs/{run}/stream", headers={"Last-Event-ID": "x"})
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid_request")


def test_rerun_of_an_unsafe_workflow_needs_confirm(lf: Ledgerflow, client: TestClient) -> None:
    _register(lf)
    run = lf.engine.trigger("unsafe", {"n": 1}).run_id
    refused = client.post(f"/api/runs/{run}/rerun", json={})
    assert refused.status_code == 409
    assert refused.json()["error"] == "rerun_not_confirmed"
    assert refused.json()["details"]["reason"] == "rerun_safety=unsafe"
    assert client.get("/api/runs", params={"rerunOf": run}).json()["data"] == []
    done = client.post(f"/api/runs/{run}/rerun", json={"confirm": True})
    assert done.status_code == 201 and done.json()["rerunOf"] == run


def test_resume_from_elsewhere_is_scoped_to_the_callers_tenant(lf: Ledgerflow) -> None:
    from tests.api.conftest import TOKENS

    with TestClient(create_app(lf, lf.settings.model_copy(
            update={"api_tokens": TOKENS}))) as authed:
        body = {"workflowId": "fragile", "resumeFromStep": "second",
                "seedResults": {"first": {"n": 3}}, "input": {"ok": True}}
        globex_run = authed.post("/api/runs", headers=GLOBEX,
                                 json={"workflowId": "greet", "input": "g"}).json()["id"]
        hidden = authed.post(f"/api/runs/{globex_run}/resume", headers=ACME, json=body)
        assert hidden.status_code == 404  # another tenant's run is not "elsewhere"
        assert authed.post("/api/runs/never-here/resume", headers=ACME,
                           json={"workflowId": "fragile"}).status_code == 404
        made = authed.post("/api/runs/never-here/resume", headers=ACME, json=body)
        assert made.status_code == 201, made.text
        new = made.json()
        assert (new["resumedFrom"], new["tenantMeta"]) == ("never-here", {"tenantId": "acme"})
        assert authed.get(f"/api/runs/{new['id']}", headers=ACME).status_code == 200
        lf.engine.run_due()
        done = authed.get(f"/api/runs/{new['id']}", headers=ROOT).json()
        assert done["result"] == {"first": {"n": 3}, "second": "paid"}
