"""The engine's behaviour for workflows served by a real uvicorn handler process, the
worker executing here: retries, sleep, signals, wait timeouts, step timeouts, parallel
branches, children, compensation, cancel (plain and compensating), resume, streams."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from ledgerflow import Ledgerflow
from ledgerflow.domain.lifecycle import RunStatus
from tests.remote.conftest import HandlerProcess, drive, open_remote


def _types(lf: Ledgerflow, run_id: str) -> list[str]:
    return [rec.type for rec in lf.engine.runtime.history(run_id)]


def test_failed_attempts_are_retried_after_their_back_off(
        remote_lf: Ledgerflow, handler: HandlerProcess) -> None:
    run_id = remote_lf.engine.trigger("retries", {"key": "r1", "failures": 2}).run_id
    state = drive(remote_lf, run_id)
    assert state.status is RunStatus.COMPLETED
    assert state.result == "r1 ok after 3"
    assert [e["call"] for e in handler.effects_seen("flaky")] == [1, 2, 3]
    types = _types(remote_lf, run_id)
    assert types.count("StepFailed") == 2 and types.count("RetryScheduled") == 2
    assert types.count("RunSuspended") == 2  # each back-off parks the run (durably)


def test_a_step_out_of_attempts_fails_the_run(remote_lf: Ledgerflow) -> None:
    run_id = remote_lf.engine.trigger("doomed").run_id
    state = drive(remote_lf, run_id)
    assert state.status is RunStatus.FAILED
    assert state.error is not None and state.error.type == "StepFailed"
    assert state.error.step_id == "never"
    assert "flaky doomed" in state.error.details["cause"]["message"]


def test_sleep_signal_and_a_wait_timeout(remote_lf: Ledgerflow) -> None:
    run_id = remote_lf.engine.trigger("waits").run_id
    started = time.monotonic()
    state = drive(remote_lf, run_id, until=lambda s: s.waitpoint is not None
                  and s.waitpoint.kind == "signal")
    assert time.monotonic() - started >= 0.5  # the nap was slept
    remote_lf.engine.signal(run_id, "approve", {"by": "ann"})
    state = drive(remote_lf, run_id)
    assert state.status is RunStatus.COMPLETED
    assert state.result == {"approved": {"by": "ann"}, "late": "timed out"}
    types = _types(remote_lf, run_id)
    assert "TimerFired" in types and "SignalReceived" in types and "WaitTimedOut" in types


def test_a_step_past_its_timeout_fails_with_step_timeout(
        remote_lf: Ledgerflow, handler: HandlerProcess) -> None:
    run_id = remote_lf.engine.trigger("timeouts").run_id
    state = drive(remote_lf, run_id)
    assert state.status is RunStatus.COMPLETED
    assert state.result == "gave up: StepTimeout"
    assert len(handler.effects_seen("slow")) == 1


def test_what_a_step_returns_after_its_grace_period_is_journaled_as_discarded(
        remote_lf: Ledgerflow, handler: HandlerProcess) -> None:
    run_id = remote_lf.engine.trigger("late").run_id
    state = drive(remote_lf, run_id)
    assert state.result == "done"
    assert handler.effects_seen("stubborn-returned")
    discarded = [r.data for r in remote_lf.engine.history(run_id)
                 if r.type == "StepResultDiscarded"]
    assert [(d["step_id"], d["result"]) for d in discarded] == [("stubborn", "too late")]


def test_parallel_branches_each_run_once(remote_lf: Ledgerflow,
                                          handler: HandlerProcess) -> None:
    run_id = remote_lf.engine.trigger("fanout").run_id
    state = drive(remote_lf, run_id)
    assert state.result == {"a": "A", "b": "B", "c": "C"}
    assert sorted(e["name"] for e in handler.effects_seen("leg")) == ["a", "b", "c"]


def test_a_child_run_is_started_and_its_result_returned(remote_lf: Ledgerflow) -> None:
    run_id = remote_lf.engine.trigger("parent").run_id
    state = drive(remote_lf, run_id)
    assert state.status is RunStatus.COMPLETED
    assert state.result["first"] == 1 and state.result["child"]["seat"] == "seat-k"
    history = remote_lf.engine.runtime.history(run_id)
    started = next(r.event for r in history if r.type == "ChildStarted")
    child = remote_lf.engine.runtime.journal(started.child_run_id)  # type: ignore[attr-defined]
    assert child.created is not None and child.created.parent_run_id == run_id
    assert child.state.status is RunStatus.COMPLETED


def test_a_failure_rolls_back_the_completed_steps(remote_lf: Ledgerflow,
                                                   handler: HandlerProcess) -> None:
    run_id = remote_lf.engine.trigger("saga", {"fail": True}).run_id
    state = drive(remote_lf, run_id)
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert state.error.details["compensation"] == "completed"
    effects = [e["effect"] for e in handler.effects_seen()
               if e["effect"] in ("book", "pay", "refund", "unbook")]
    assert effects == ["book", "pay", "refund", "unbook"]
    types = _types(remote_lf, run_id)
    assert types.index("RunCompensating") < types.index("CompensationCompleted") \
        < types.index("RunFailed")


def test_a_compensating_cancel_undoes_then_cancels(remote_lf: Ledgerflow,
                                                   handler: HandlerProcess) -> None:
    run_id = remote_lf.engine.trigger("saga", {}).run_id
    drive(remote_lf, run_id, until=lambda s: s.status is RunStatus.SUSPENDED)
    remote_lf.engine.cancel(run_id, "changed my mind", compensate=True)
    state = drive(remote_lf, run_id)
    assert state.status is RunStatus.CANCELED
    assert [e["effect"] for e in handler.effects_seen()
            if e["effect"] in ("refund", "unbook")] == ["refund", "unbook"]
    assert _types(remote_lf, run_id)[-1] == "RunCanceled"


@pytest.fixture
def worker(remote_lf: Ledgerflow) -> Iterator[None]:
    running = remote_lf.worker(threads=1, poll_interval=0.1, schedules=False).start()
    yield
    running.stop(graceful=False, timeout=30)


def _until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise TimeoutError("condition not met")


def test_a_cancel_while_the_handler_runs_a_step_keeps_what_it_answers_out(
        remote_lf: Ledgerflow, handler: HandlerProcess, worker: None) -> None:
    run_id = remote_lf.engine.trigger("slowpoke", {"seconds": 1.5}).run_id
    _until(lambda: handler.effects_seen("long-start"))
    remote_lf.engine.cancel(run_id, "stop it")
    time.sleep(2.5)  # the handler answers meanwhile; the worker's append meets the cancel
    history = remote_lf.engine.runtime.history(run_id)
    assert history[-1].type == "RunCanceled"
    assert not any(r.type == "StepCompleted" and r.data["step_id"] == "long"
                   for r in history)


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_a_cancel_reaches_the_step_running_at_the_handler(
        remote_lf: Ledgerflow, handler: HandlerProcess, worker: None, pg_url: str,
        where: str) -> None:
    """Made in the worker's process, or in another (the worker's heartbeat sees it)."""
    run_id = remote_lf.engine.trigger("patient", {"seconds": 20}).run_id
    _until(lambda: handler.effects_seen("patient-start"))
    started = time.monotonic()
    if where == "here":
        remote_lf.engine.cancel(run_id, "enough")
    else:
        other = open_remote(pg_url, handler.url)
        other.engine.cancel(run_id, "enough")
        other.close()
    _until(lambda: handler.effects_seen("patient-end"), timeout=10)
    assert handler.effects_seen("patient-end") == [{"effect": "patient-end",
                                                     "cancelled": True}]
    assert time.monotonic() - started < 5  # not the step's 20 s
    _until(lambda: remote_lf.engine.state(run_id).status is RunStatus.CANCELED)
    assert remote_lf.engine.history(run_id)[-1].type == "RunCanceled"


def test_a_failed_run_resumes_from_a_step(remote_lf: Ledgerflow,
                                          handler: HandlerProcess) -> None:
    failed = remote_lf.engine.trigger("saga", {"fail": True}).run_id
    drive(remote_lf, failed)
    resumed = remote_lf.engine.resume(failed, resume_from_step="ship",
                                      input={"fail": False})
    drive(remote_lf, resumed, until=lambda s: s.status is RunStatus.SUSPENDED)
    remote_lf.engine.signal(resumed, "go")
    state = drive(remote_lf, resumed)
    assert state.status is RunStatus.COMPLETED and state.result == "shipped"
    # book and pay were seeded: they ran once, for the failed run
    assert [e["effect"] for e in handler.effects_seen() if e["effect"] == "book"] == ["book"]


def test_stream_chunks_of_the_workflow_are_journaled(remote_lf: Ledgerflow) -> None:
    run_id = remote_lf.engine.trigger("booking", {"id": 1, "amount": 1}).run_id
    drive(remote_lf, run_id)
    chunks = [r.data for r in remote_lf.engine.runtime.history(run_id)
              if r.type == "StreamChunk"]
    assert [c["chunk"] for c in chunks] == [{"done": 2}]


def test_runs_of_many_threads_all_complete(remote_lf: Ledgerflow) -> None:
    ids = [remote_lf.engine.trigger("booking", {"id": i, "amount": i}).run_id
           for i in range(8)]
    threads = [threading.Thread(target=remote_lf.engine.run_due) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for run_id in ids:
        assert drive(remote_lf, run_id).status is RunStatus.COMPLETED


def test_an_async_workflow_runs_at_the_handler(remote_lf: Ledgerflow,
                                               handler: HandlerProcess) -> None:
    run_id = remote_lf.engine.trigger("asyncbook", {"sku": "z", "amount": 9}).run_id
    state = drive(remote_lf, run_id)
    assert state.result == {"seat": "reserved z", "paid": 9}
    assert [e["effect"] for e in handler.effects_seen()] == ["async-reserve", "async-charge"]
