"""`GET /api/runs/{id}/audit`: verified, or where the history was changed."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from ledgerflow.testing import run_to_completion


def test_the_audit_of_a_run_then_of_its_tampered_history(client: TestClient,
                                                           lf: Ledgerflow) -> None:
    run_id = lf.engine.trigger("greet", "ada").run_id
    run_to_completion(lf.engine, run_id)
    body = client.get(f"/api/runs/{run_id}/audit").json()
    events = len(lf.store.stored_stream(run_id))
    assert body == {"runId": run_id, "verified": True, "events": events,
                    "firstBadVersion": None, "reason": None,
                    "head": lf.store.stored_stream(run_id)[-1].hash}
    with lf.db.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE stream_id = :r AND version = 2"),
                     {"r": run_id})
    body = client.get(f"/api/runs/{run_id}/audit").json()
    assert (body["verified"], body["firstBadVersion"]) == (False, 2)
    assert "version 2 is missing" in body["reason"]
    missing = client.get("/api/runs/no-such-run/audit")
    assert missing.status_code == 404
