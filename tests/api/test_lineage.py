"""The run record shows lineage and a failed run's rollback outcome, and the list
filters on them: "which runs resumed this one" is one request."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from ledgerflow import Context
from ledgerflow._app import Ledgerflow
from tests.api.test_errors_auth import assert_error


def saga(ctx: Context, data: Any) -> Any:
    """A step with a compensator, then one that fails: the run is compensated."""
    ctx.step("reserve", lambda: "held", compensate=lambda held: None)
    return ctx.step("charge", lambda: 1 / 0)


def test_lineage_and_compensation_on_the_record_and_in_the_list(client: TestClient,
                                                                lf: Ledgerflow) -> None:
    lf.engine.registry.register("saga", saga)
    failed = client.post("/api/runs", json={"workflowId": "fragile"}).json()["id"]
    compensated = client.post("/api/runs", json={"workflowId": "saga"}).json()["id"]
    lf.engine.run_due()
    resumed = client.post(f"/api/runs/{failed}/resume", json={"resumeFromStep": "second",
                                                              "input": {"ok": True}}).json()
    rerun = client.post(f"/api/runs/{failed}/rerun").json()
    assert (resumed["resumedFrom"], resumed["rerunOf"]) == (failed, None)
    assert (rerun["rerunOf"], rerun["resumedFrom"]) == (failed, None)
    record = client.get(f"/api/runs/{compensated}").json()
    assert (record["status"], record["compensation"]) == ("failed", "compensated")
    assert client.get(f"/api/runs/{failed}").json()["compensation"] is None
    assert (record["priority"], record["queue"]) == (0, "default")

    def listed(query: str) -> list[str]:
        response = client.get(f"/api/runs?{query}")
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert listed(f"resumedFrom={failed}") == [resumed["id"]]
    assert listed(f"rerunOf={failed}") == [rerun["id"]]
    assert listed("compensation=compensated") == [compensated]
    assert listed("compensation=compensation_failed") == []
    assert_error(client.get("/api/runs?compensation=partial"), 422, "invalid_request")
