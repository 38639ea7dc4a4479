"""A step served by a handler streams its chunks live: the worker appends each as the
handler sends it, while the step still runs, and the answer does not write it twice."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ledgerflow import Ledgerflow
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.remote.endpoint import Endpoint
from ledgerflow.remote.protocol import PROTOCOL, DispatchRequest, Record
from tests.remote.conftest import SECRET, HandlerProcess, drive, open_remote


def _chunks(lf: Ledgerflow, run_id: str) -> list[dict[str, Any]]:
    return [r.data for r in lf.engine.runtime.history(run_id) if r.type == "StreamChunk"]


@pytest.mark.parametrize("workflow", ["live", "async-live"])
def test_a_remote_steps_chunks_are_in_the_store_while_the_step_runs(
        remote_lf: Ledgerflow, handler: HandlerProcess, workflow: str) -> None:
    key = uuid.uuid4().hex[:8]
    run_id = remote_lf.engine.trigger(workflow, {"key": key}).run_id
    driving = threading.Thread(target=drive, args=(remote_lf, run_id))
    driving.start()
    try:
        deadline = time.monotonic() + 20
        while not _chunks(remote_lf, run_id):  # the step waits for the flag meanwhile
            assert time.monotonic() < deadline, "no chunk reached the store while the step ran"
            time.sleep(0.02)
        assert [c["chunk"] for c in _chunks(remote_lf, run_id)] == [{"token": "first"}]
        assert remote_lf.engine.state(run_id).status is RunStatus.RUNNING
    finally:
        handler.effects.with_name(f"{handler.effects.name}.go-{key}").touch()
        driving.join(30)
    state = remote_lf.engine.state(run_id)
    assert state.status is RunStatus.COMPLETED and state.result == "told"
    chunks = _chunks(remote_lf, run_id)  # each once, in order
    assert [(c["chunk"]["token"], c["seq"], c["attempt"]) for c in chunks] == [
        ("first", 1, 1), ("second", 2, 1)]


def test_a_worker_asking_for_plain_json_gets_the_chunks_in_the_answer(
        handler: HandlerProcess) -> None:
    key = uuid.uuid4().hex[:8]
    handler.effects.with_name(f"{handler.effects.name}.go-{key}").touch()
    request = DispatchRequest(
        protocol=PROTOCOL, request_id=uuid.uuid4().hex, run_id=f"plain-{key}",
        workflow_id="live", workflow_version="1", input={"key": key},
        journal=[], now=datetime.now(UTC), budget_seconds=30)
    endpoint = Endpoint(handler.url, SECRET)
    try:
        answer = endpoint.call(_with_start(request, key))  # no chunk sink: one JSON body
    finally:
        endpoint.close()
    chunks = [e for e in (r.event() for r in answer.events) if isinstance(e, ev.StreamChunk)]
    assert [c.seq for c in chunks] == [1, 2] and answer.next.action == "complete"


def test_the_handler_answers_in_lines_only_when_asked(handler: HandlerProcess) -> None:
    response = httpx.post(handler.url + "/run", content=b"{}",
                          headers={"accept": "application/x-ndjson"})
    assert response.status_code == 401  # unsigned: refused as JSON, before anything runs
    assert response.headers["content-type"].startswith("application/json")


def _with_start(request: DispatchRequest, key: str) -> DispatchRequest:
    """The request with the journal a started run of `live` has (created, started)."""
    created = ev.RunCreated(workflow_id="live", workflow_version="1", input={"key": key})
    started = ev.RunStarted(worker="w")
    journal = [Record(version=n, event_id=uuid.uuid4().hex, type=e.type_name(),
                      data=ev.encode(e)[2]) for n, e in enumerate((created, started), 1)]
    return request.model_copy(update={"journal": journal})


def test_a_request_lost_after_a_live_chunk_keeps_the_chunk_and_counts_the_attempt(
        pg_url: str, handler: HandlerProcess) -> None:
    handler.fresh()
    key = f"chatty-{uuid.uuid4().hex[:8]}"
    lf = open_remote(pg_url, handler.url, dispatch_timeout_seconds=0.5,
                     dispatch_budget_seconds=0)
    try:  # the first attempt streams, then outlasts the worker's read timeout
        run_id = lf.engine.trigger("chatty-drowsy",
                                   {"key": key, "seconds": 2.0, "times": 1}).run_id
        state = drive(lf, run_id, timeout=40)
        history = [(r.type, r.data) for r in lf.engine.history(run_id)]
    finally:
        lf.close()
    assert state.status is RunStatus.COMPLETED and state.result == f"{key} awake after 2"
    chunks = [(d["attempt"], d["seq"], d["chunk"]["token"]) for t, d in history
              if t == "StreamChunk"]
    assert chunks == [(1, 1, "attempt 1"), (2, 1, "attempt 2")]  # the lost one's kept, once
    doze = [(t, d.get("attempt")) for t, d in history if d.get("step_id") == "doze"
            and t != "StreamChunk"]
    assert doze == [("StepFailed", 1), ("RetryScheduled", 2), ("StepCompleted", 2)]
    failed = next(d for t, d in history if t == "StepFailed")
    assert failed["error"]["type"] == "AttemptLost"
    assert "stopped answering" in failed["error"]["message"]
