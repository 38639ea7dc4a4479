"""Retries with durable back-off, StepFailed, compensation (saga rollback)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ledgerflow import Context, Engine, StepFailed, WorkflowRegistry
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.testing import FakeClock, run_to_completion


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"attempt {self.calls} failed")
        return "ok"


def test_retry_backoff_is_a_durable_due_time(engine: Engine, registry: WorkflowRegistry,
                                             clock: FakeClock) -> None:
    flaky = Flaky(2)

    @registry.workflow("retry")
    def retry(ctx: Context, data: Any) -> Any:
        return ctx.step("call", flaky, max_attempts=3, backoff="exponential",
                        initial_delay=timedelta(seconds=10))

    run = engine.trigger("retry", None).run_id
    engine.run_due()
    state = engine.state(run)
    assert state.status is RunStatus.SUSPENDED and state.waitpoint is not None
    assert state.waitpoint.kind == "retry"
    assert state.waitpoint.wake_at == clock() + timedelta(seconds=10)
    clock.advance(timedelta(seconds=10))
    engine.run_due()
    assert engine.state(run).waitpoint.wake_at == clock() + timedelta(seconds=20)  # type: ignore[union-attr]
    clock.advance(timedelta(seconds=20))
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED and state.result == "ok"
    assert flaky.calls == 3
    failed = [r.event for r in engine.history(run) if r.type == "StepFailed"]
    assert [(f.attempt, f.final) for f in failed] == [(1, False), (2, False)]  # type: ignore[attr-defined]


def test_non_retryable_error_fails_at_once_and_can_be_caught(
        engine: Engine, registry: WorkflowRegistry) -> None:
    flaky = Flaky(5)

    @registry.workflow("caught")
    def caught(ctx: Context, data: Any) -> Any:
        try:
            ctx.step("call", flaky, max_attempts=5, non_retryable=(ConnectionError,))
        except StepFailed as failure:
            return {"step": failure.step_id, "attempts": failure.attempts}
        return None

    run = engine.trigger("caught", None).run_id
    assert run_to_completion(engine, run).result == {"step": "call", "attempts": 1}
    assert flaky.calls == 1


def test_uncaught_step_failure_compensates_in_reverse_order(
        engine: Engine, registry: WorkflowRegistry) -> None:
    undone: list[str] = []

    def undo(name: str) -> Any:
        def run(result: Any) -> None:
            undone.append(f"{name}:{result}")
        return run

    def boom() -> None:
        raise ValueError("card declined")

    @registry.workflow("saga")
    def saga(ctx: Context, data: Any) -> Any:
        ctx.step("reserve", lambda: "r1", compensate=undo("reserve"))
        ctx.step("book", lambda: "b1", compensate=undo("book"))
        ctx.step("charge", boom, max_attempts=2, initial_delay=timedelta(0))
        return "unreachable"

    run = engine.trigger("saga", None).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED
    assert undone == ["book:b1", "reserve:r1"]
    assert state.error is not None and state.error.step_id == "charge"
    assert "'charge'" in state.error.message and "compensation completed" in state.error.message
    types = [r.type for r in engine.history(run)]
    assert types[types.index("RunCompensating"):] == [
        "RunCompensating", "CompensationCompleted", "CompensationCompleted", "RunFailed"]
    assert engine.history(run)[-1].event.compensation == "completed"  # type: ignore[attr-defined]


def test_a_failing_compensator_does_not_stop_the_others(
        engine: Engine, registry: WorkflowRegistry) -> None:
    undone: list[str] = []

    def bad_undo(result: Any) -> None:
        raise RuntimeError("cannot undo")

    @registry.workflow("partial")
    def partial(ctx: Context, data: Any) -> Any:
        ctx.step("a", lambda: 1, compensate=lambda r: undone.append("a"))
        ctx.step("b", lambda: 2, compensate=bad_undo)
        ctx.step("c", lambda: (_ for _ in ()).throw(KeyError("x")))
        return None

    run = engine.trigger("partial", None).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED
    assert undone == ["a"]
    assert state.error is not None and "compensation partial" in state.error.message
    assert "b" in state.error.details["compensationFailed"]
    types = [r.type for r in engine.history(run)]
    assert "CompensationFailed" in types and types[-1] == "RunFailed"


def test_step_timeout_counts_as_a_failed_attempt(engine: Engine,
                                                 registry: WorkflowRegistry) -> None:
    import threading
    release = threading.Event()

    @registry.workflow("slow")
    def slow(ctx: Context, data: Any) -> Any:
        try:
            ctx.step("wait", release.wait, 5, timeout=timedelta(milliseconds=50))
        except StepFailed as failure:
            return failure.error.type
        return "finished"

    run = engine.trigger("slow", None).run_id
    assert run_to_completion(engine, run).result == "StepTimeout"
    release.set()


def test_parallel_branches_retry_with_durable_back_off(engine: Engine,
                                                      registry: WorkflowRegistry,
                                                      clock: FakeClock) -> None:
    flaky, steady = Flaky(2), Flaky(0)

    @registry.workflow("fan")
    def fan(ctx: Context, data: Any) -> Any:
        return ctx.parallel("p", {"flaky": flaky, "steady": steady}, max_attempts=3,
                            initial_delay=timedelta(seconds=10))

    run = engine.trigger("fan", None).run_id
    engine.run_due()
    state = engine.state(run)
    assert state.waitpoint is not None and state.waitpoint.kind == "retry"
    assert state.waitpoint.wake_at == clock() + timedelta(seconds=10)
    assert engine.run_due().claimed == 0  # not due yet: no sleep in a thread
    clock.advance(timedelta(seconds=10))
    engine.run_due()
    assert engine.state(run).waitpoint.wake_at == clock() + timedelta(seconds=20)  # type: ignore[union-attr]
    clock.advance(timedelta(seconds=20))
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED
    assert state.result == {"flaky": "ok", "steady": "ok"}
    assert (flaky.calls, steady.calls) == (3, 1)  # the branch that succeeded ran once
    outcomes = [(r.type, r.event.step_id, r.event.attempt)  # type: ignore[attr-defined]
                for r in engine.history(run) if r.type in ("StepCompleted", "StepFailed")]
    assert outcomes == [("StepFailed", "p/flaky", 1), ("StepCompleted", "p/steady", 1),
                        ("StepFailed", "p/flaky", 2), ("StepCompleted", "p/flaky", 3)]


def test_parallel_branch_that_keeps_failing_fails_the_run_naming_it(
        engine: Engine, registry: WorkflowRegistry) -> None:
    broken, steady = Flaky(99), Flaky(0)

    @registry.workflow("fan-broken")
    def fan(ctx: Context, data: Any) -> Any:
        return ctx.parallel("p", {"broken": broken, "steady": steady}, max_attempts=3,
                            initial_delay=timedelta(0))  # no delay: retried at once

    run = engine.trigger("fan-broken", None).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert state.error.step_id == "p/broken" and "attempt 3 failed" in state.error.message
    assert (broken.calls, steady.calls) == (3, 1)
    assert not [r for r in engine.history(run) if r.type == "RunSuspended"]
