"""`ctx.parallel`: at most `max_concurrency` branches at once, and a compensator per
branch (`Branch(fn, compensate=undo)`) that runs like a step's when the run rolls back."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ledgerflow import Branch, Context, Engine, WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.testing import run_to_completion


class Gauge:
    """How many branches run at once (and the most there ever were)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = 0
        self.pairs = threading.Barrier(2, timeout=20)  # two must run together to pass

    def branch(self, name: str) -> Any:
        def run() -> str:
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                self.pairs.wait()
            finally:
                with self.lock:
                    self.now -= 1
            return name
        return run


def test_max_concurrency_bounds_the_branches_running_at_once(
        engine: Engine, registry: WorkflowRegistry) -> None:
    gauge = Gauge()

    @registry.workflow("bounded")
    def bounded(ctx: Context, data: Any) -> Any:
        return ctx.parallel("fan", {n: gauge.branch(n) for n in "abcd"}, max_concurrency=2)

    state = run_to_completion(engine, engine.trigger("bounded", None).run_id)
    assert state.status is RunStatus.COMPLETED
    assert state.result == {n: n for n in "abcd"}
    assert gauge.peak == 2  # pairs met at the barrier: two at once, never more


def test_max_concurrency_must_be_positive(engine: Engine, registry: WorkflowRegistry) -> None:
    @registry.workflow("zero")
    def zero(ctx: Context, data: Any) -> Any:
        return ctx.parallel("fan", {"a": lambda: 1}, max_concurrency=0)

    state = run_to_completion(engine, engine.trigger("zero", None).run_id)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert "max_concurrency must be a positive int" in state.error.message


def _compensations(engine: Engine, run: str) -> list[tuple[str, Any]]:
    return [(r.event.step_id, r.event.result) for r in engine.history(run)
            if isinstance(r.event, ev.CompensationCompleted)]


@pytest.mark.parametrize("fails", ["later-step", "a-branch"])
def test_completed_branches_are_compensated_when_the_run_rolls_back(
        engine: Engine, registry: WorkflowRegistry, fails: str) -> None:
    undone: list[Any] = []

    def undo(result: Any) -> Any:
        undone.append(result)
        return {"undid": result}

    def boom() -> None:
        raise RuntimeError("declined")

    @registry.workflow("saga")
    def saga(ctx: Context, data: Any) -> Any:
        branches: dict[str, Any] = {"email": Branch(lambda: "mail", compensate=undo),
                                    "sms": Branch(lambda: "text", compensate=undo),
                                    "log": lambda: "logged"}
        if fails == "a-branch":
            branches["pay"] = boom
        ctx.parallel("notify", branches)
        return ctx.step("charge", boom)

    run = engine.trigger("saga", None).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert state.error.details["compensation"] == "completed"
    assert sorted(undone) == ["mail", "text"]  # the plain branch has nothing to undo
    assert sorted(_compensations(engine, run)) == [
        ("notify/email", {"undid": "mail"}), ("notify/sms", {"undid": "text"})]


def test_a_compensating_cancel_undoes_the_branches_done_while_others_wait_to_retry(
        engine: Engine, registry: WorkflowRegistry) -> None:
    from datetime import timedelta

    def flaky() -> None:
        raise ConnectionError("try later")

    @registry.workflow("half-done")
    def half_done(ctx: Context, data: Any) -> Any:
        return ctx.parallel("fan", {"done": Branch(lambda: "ok", compensate=lambda r: "undone"),
                                    "flaky": flaky},
                            max_attempts=3, initial_delay=timedelta(minutes=5))

    run = engine.trigger("half-done", None).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.SUSPENDED and state.waitpoint is not None
    assert state.waitpoint.kind == "retry"
    engine.cancel(run, "changed my mind", compensate=True)
    assert run_to_completion(engine, run).status is RunStatus.CANCELED
    assert _compensations(engine, run) == [("fan/done", "undone")]
