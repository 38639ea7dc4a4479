"""A request to the handler that gets no answer (a timeout, a connection lost, a 5xx)
counts as a failed attempt of the step it ran: the handler records it when the run's
next request carries it, and the step's retry policy decides (a back-off, or the run
fails after the last attempt)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.remote.protocol import SIGNATURE_HEADER
from ledgerflow.remote.signing import signature
from tests.remote.conftest import SECRET, HandlerProcess, drive, open_remote
from tests.remote.test_faults import _record

LOST = "the request to the handler failed: "


def _steps(lf: Any, run_id: str, step: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the history records of step `step`."""
    return [(r.type, r.data) for r in lf.engine.history(run_id)
            if r.data.get("step_id") == step]


@pytest.mark.parametrize("budget", [1.0, 0.0])
def test_a_step_whose_request_times_out_each_time_fails_after_its_last_attempt(
        pg_engine: SAEngine, pg_url: str, handler: HandlerProcess, budget: float) -> None:
    handler.fresh()
    key = f"always-{uuid.uuid4().hex[:8]}"
    lf = open_remote(pg_url, handler.url, dispatch_timeout_seconds=0.5,
                     dispatch_budget_seconds=budget)
    try:
        run_id = lf.engine.trigger("drowsy", {"key": key, "seconds": 2.0, "times": 99}).run_id
        state = drive(lf, run_id, timeout=60)
        doze = _steps(lf, run_id, "doze")
        first = _steps(lf, run_id, "first")
    finally:
        lf.close()
    assert state.status is RunStatus.FAILED
    assert [(t, d.get("attempt"), d.get("final")) for t, d in doze] == [
        ("StepFailed", 1, False), ("RetryScheduled", 2, None),
        ("StepFailed", 2, False), ("RetryScheduled", 3, None),
        ("StepFailed", 3, True)]
    for kind, data in doze:
        if kind == "StepFailed":
            assert data["error"]["type"] == "AttemptLost"
            assert data["error"]["message"].startswith(LOST)
            assert "ReadTimeout" in data["error"]["message"]
    # the step that ran before the one that hangs is not blamed: one attempt, completed
    assert [(t, d["attempt"]) for t, d in first] == [("StepCompleted", 1)]
    assert state.error is not None and "'doze' failed after 3 attempt(s)" in state.error.message
    calls = [e for e in handler.effects_seen("drowsy") if e["key"] == key]
    # no attempt beyond the policy; with a budget, the first lost request could have run
    # several steps: it is not counted, and the next ones run one step each
    assert [e["attempt"] for e in calls] == ([1, 2, 3] if budget == 0 else [1, 1, 2, 3])


def test_one_lost_request_then_success_completes_on_the_second_attempt(
        pg_engine: SAEngine, pg_url: str, handler: HandlerProcess) -> None:
    handler.fresh()
    key = f"once-{uuid.uuid4().hex[:8]}"
    lf = open_remote(pg_url, handler.url, dispatch_timeout_seconds=0.5,
                     dispatch_budget_seconds=0)
    try:
        run_id = lf.engine.trigger("drowsy", {"key": key, "seconds": 2.0, "times": 1}).run_id
        state = drive(lf, run_id, timeout=40)
        doze = _steps(lf, run_id, "doze")
    finally:
        lf.close()
    assert state.status is RunStatus.COMPLETED and state.result == f"{key} awake after 2"
    assert [(t, d.get("attempt")) for t, d in doze] == [
        ("StepFailed", 1), ("RetryScheduled", 2), ("StepCompleted", 2)]
    assert doze[0][1]["error"]["message"].startswith(LOST)


def _post_run(handler: HandlerProcess, workflow: str, data: Any,
              failures: list[dict[str, str]]) -> dict[str, Any]:
    from ledgerflow.domain import events as ev

    created = ev.RunCreated(workflow_id=workflow, workflow_version="1", input=data)
    body = json.dumps({
        "protocol": 1, "requestId": f"req-{time.monotonic_ns()}", "runId": "r1",
        "workflowId": workflow, "workflowVersion": "1", "input": data,
        "journal": [_record(1, created), _record(2, ev.RunStarted(worker="w"))],
        "now": "2026-01-01T00:00:00+00:00", "transportFailures": failures}).encode()
    answer = httpx.post(handler.url + "/run", content=body, timeout=10,
                        headers={SIGNATURE_HEADER: signature(SECRET, body)})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.parametrize(("workflow", "data", "failed"), [
    ("booking", {"id": 1, "amount": 2}, ["reserve"]),
    ("asyncbook", {"sku": "A", "amount": 2}, ["reserve"]),
    ("fanout", None, ["legs/a", "legs/b", "legs/c"]),
])
def test_the_handler_records_each_failure_on_the_attempt_it_would_run(
        handler: HandlerProcess, workflow: str, data: Any, failed: list[str]) -> None:
    """Steps of one attempt (plain, async, each branch of a parallel round): the first
    failure fails them for good, the second is not recorded; nothing ran."""
    handler.fresh()
    failures = [{"at": "2026-01-01T00:00:00+00:00", "error": "ReadTimeout: timed out"},
                {"at": "2026-01-01T00:00:01+00:00", "error": "ReadTimeout: again"}]
    answer = _post_run(handler, workflow, data, failures)
    events = [e for e in answer["events"] if e["type"] == "StepFailed"]
    assert [(e["data"]["step_id"], e["data"]["attempt"], e["data"]["final"])
            for e in events] == [(step, 1, True) for step in failed]
    assert {e["data"]["error"]["message"] for e in events} == {
        LOST + "ReadTimeout: timed out"}
    assert answer["next"]["action"] == "fail"
    assert handler.effects_seen() == []


def test_a_lost_attempt_is_retried_by_the_steps_policy(handler: HandlerProcess) -> None:
    """A step with attempts left: StepFailed, RetryScheduled, the run parks until then."""
    answer = _post_run(handler, "retries", {"key": "lost", "failures": 0},
                       [{"at": "2026-01-01T00:00:00+00:00", "error": "502: bad gateway"}])
    kinds = [(e["type"], e["data"].get("attempt")) for e in answer["events"]]
    assert kinds == [("StepFailed", 1), ("RetryScheduled", 2)]
    assert answer["events"][0]["data"]["final"] is False
    assert answer["next"]["action"] == "park"
    assert (answer["next"]["waitpoint"]["kind"], answer["next"]["waitpoint"]["name"]) == (
        "retry", "flaky")
