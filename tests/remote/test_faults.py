"""What a handler refuses (unsigned, wrongly signed, stale, replayed requests; another
protocol version), and what a worker does when its handler is gone or speaks another
protocol: the run waits and continues once a handler answers (a request broken off
mid-step costs that step an attempt, see `test_transport_failures`)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.remote import parse_table
from ledgerflow.remote.protocol import SIGNATURE_HEADER, Record
from ledgerflow.remote.signing import BadSignature, signature, verify
from tests.remote.conftest import SECRET, HandlerProcess, open_remote


def _record(version: int, event: ev.Event) -> dict[str, Any]:
    return Record.of(RecordedEvent(0, "r1", version, f"e{version}", event.type_name(),
                                   event.schema_version, event, {}, datetime.now(UTC))
                     ).model_dump(mode="json")


def _body(**over: Any) -> bytes:
    created = ev.RunCreated(workflow_id="booking", workflow_version="1",
                            input={"id": 1, "amount": 2})
    journal = [_record(1, created), _record(2, ev.RunStarted(worker="w"))]
    request = {"protocol": 1, "requestId": f"req-{time.monotonic_ns()}", "runId": "r1",
               "workflowId": "booking", "workflowVersion": "1",
               "input": {"id": 1, "amount": 2}, "journal": journal, "attempt": 1,
               "now": "2026-01-01T00:00:00+00:00", **over}
    return json.dumps(request).encode()


def _post(handler: HandlerProcess, body: bytes, sig: str | None) -> httpx.Response:
    headers = {} if sig is None else {SIGNATURE_HEADER: sig}
    return httpx.post(handler.url + "/run", content=body, headers=headers, timeout=10)


def test_unsigned_wrongly_signed_stale_and_replayed_requests_are_refused(
        handler: HandlerProcess) -> None:
    body = _body()
    assert _post(handler, body, None).status_code == 401
    wrong = _post(handler, body, signature("another secret", body))
    assert wrong.status_code == 401 and "does not match" in wrong.json()["message"]
    stale = _post(handler, body, signature(SECRET, body, time.time() - 301))
    assert stale.status_code == 401 and "stale" in stale.json()["message"]
    tampered = _post(handler, _body(input={"id": 1, "amount": 2000}), signature(SECRET, body))
    assert tampered.status_code == 401
    # signed right, the handler executes the request... once
    first = _post(handler, body, signature(SECRET, body))
    assert first.status_code == 200, first.text
    assert first.json()["next"]["action"] == "complete"
    again = _post(handler, body, signature(SECRET, body))
    assert again.status_code == 401 and "already answered" in again.json()["message"]


def test_another_protocol_version_is_refused_by_name(handler: HandlerProcess) -> None:
    body = _body(protocol=2)
    answer = _post(handler, body, signature(SECRET, body))
    assert answer.status_code == 400
    assert answer.json()["message"] == ("this handler speaks dispatch protocol 1; the "
                                        "request is protocol 2")


def test_a_workflow_the_handler_does_not_serve_is_404(handler: HandlerProcess) -> None:
    body = _body(workflowId="nope")
    answer = _post(handler, body, signature(SECRET, body))
    assert answer.status_code == 404 and "nope" in answer.json()["message"]


def test_a_journal_that_is_not_the_runs_is_refused(handler: HandlerProcess) -> None:
    body = _body(journal=[])
    answer = _post(handler, body, signature(SECRET, body))
    assert answer.status_code == 400
    assert "not that of a run of booking@1" in answer.json()["message"]


def test_signatures_verify_only_as_made() -> None:
    body = b'{"a": 1}'
    assert verify("s", signature("s", body, 1000.0), body, now=1000.0) == 1000
    for header in ("", "t=x,v1=y", "v1=abc", f"t=1000,v1={'0' * 64}"):
        with pytest.raises(BadSignature):
            verify("s", header, body, now=1000.0)


def test_the_dispatch_table_names_a_bad_entry() -> None:
    assert parse_table("booking=http://app:8000/lf/, *=inline") == {
        "booking": "http://app:8000/lf", "*": "inline"}
    with pytest.raises(ValueError, match="'booking=ftp://x' is not of the form"):
        parse_table("booking=ftp://x")


def test_a_handler_killed_mid_step_and_back_continues_the_run(
        pg_engine: SAEngine, pg_url: str, own_handler: HandlerProcess) -> None:
    lf = open_remote(pg_url, own_handler.url, dispatch_budget_seconds=0)
    worker = lf.worker(threads=1, poll_interval=0.1, schedules=False).start()
    try:
        run_id = lf.engine.trigger("slowpoke", {"seconds": 2}).run_id
        deadline = time.monotonic() + 20
        while not own_handler.effects_seen("long-start") and time.monotonic() < deadline:
            time.sleep(0.05)
        own_handler.kill()  # mid-step: the worker's request breaks off
        time.sleep(1.5)
        assert lf.engine.state(run_id).status is RunStatus.RUNNING
        own_handler.start()
        state = lf.engine.wait(run_id, timeout=40, poll=0.2)
        long = [(r.type, r.data.get("attempt")) for r in lf.engine.history(run_id)
                if r.data.get("step_id") == "long"]
    finally:
        worker.stop(graceful=False, timeout=30)
        lf.close()
    assert state.status is RunStatus.COMPLETED and state.result == "finished"
    # the request broken off is the step's first attempt, failed: its policy retried it
    assert long == [("StepFailed", 1), ("RetryScheduled", 2), ("StepCompleted", 2)]
    assert len(own_handler.effects_seen("before")) == 1  # journaled before the kill
    assert len(own_handler.effects_seen("long-start")) == 2  # the step in hand re-ran


def test_a_handler_of_another_protocol_leaves_the_run_waiting_with_a_clear_error(
        pg_engine: SAEngine, pg_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    future = HandlerProcess(tmp_path / "effects.jsonl", app="tests.remote.future_app:app")
    future.start()
    lf = open_remote(pg_url, future.url)
    try:
        lf.engine.registry.register("booking", lambda ctx, data: None)  # known, not served
        run_id = lf.engine.trigger("booking", {"id": 1, "amount": 1}).run_id
        with caplog.at_level(logging.ERROR, logger="ledgerflow.remote"):
            lf.engine.run_due()
        assert lf.engine.state(run_id).status is RunStatus.RUNNING  # not failed: retried
        assert any("speaks dispatch protocol 2, this worker speaks 1" in r.getMessage()
                   for r in caplog.records)
    finally:
        lf.close()
        future.stop()


def test_a_worker_with_the_wrong_secret_is_refused_and_writes_nothing(
        pg_engine: SAEngine, pg_url: str, handler: HandlerProcess,
        caplog: pytest.LogCaptureFixture) -> None:
    lf = open_remote(pg_url, handler.url, secret="not the secret")
    try:
        run_id = lf.engine.trigger("booking", {"id": 1, "amount": 1}).run_id
        with caplog.at_level(logging.WARNING, logger="ledgerflow.remote"):
            lf.engine.run_due()
        assert [r.type for r in lf.engine.history(run_id)] == ["RunCreated", "RunStarted"]
        assert any("refused the request (401)" in r.getMessage() for r in caplog.records)
    finally:
        lf.close()


def test_a_handler_that_starts_later_is_asked_again_for_its_workflows(
        tmp_path: Path) -> None:
    from ledgerflow import WorkflowRegistry
    from ledgerflow.remote import RemoteRuns

    late = HandlerProcess(tmp_path / "effects.jsonl")
    registry = WorkflowRegistry()
    dispatch = RemoteRuns.parse(f"*={late.url}", SECRET)
    try:
        assert dispatch.register(registry, retry=0.2) == []  # nobody answers yet
        late.start()
        deadline = time.monotonic() + 20
        while "booking" not in registry.names() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "booking" in registry.names()
    finally:
        dispatch.close()
        late.stop()


def test_a_url_that_serves_no_handler_says_so(handler: HandlerProcess) -> None:
    from ledgerflow.remote import ProtocolMismatch
    from ledgerflow.remote.endpoint import Endpoint

    wrong = Endpoint(handler.url.replace("/ledgerflow", "/elsewhere"), SECRET)
    with pytest.raises(ProtocolMismatch, match="/elsewhere/workflows answered 404"):
        wrong.workflows()
    wrong.close()
