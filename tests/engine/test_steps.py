"""Timeouts and cancel reach the step: `current_step()`, the grace period, late results
discarded, a cancel setting `cancelled` (in this process and through the heartbeat), and
the compensating cancel."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import (
    Context,
    Engine,
    StepFailed,
    StepInfo,
    TickResult,
    WorkflowRegistry,
    current_step,
)
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore import EventStore
from ledgerflow.runtime.queue import queue_row
from ledgerflow.testing import FakeClock, run_to_completion

SHORT = timedelta(milliseconds=100)
LONG = 30.0  # seconds: bounds that only a broken engine reaches


def _events(engine: Engine, run_id: str, kind: type[ev.Event]) -> list[Any]:
    return [r.event for r in engine.history(run_id) if isinstance(r.event, kind)]


def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LONG
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@contextmanager
def _executing(engine: Engine) -> Iterator[list[TickResult]]:
    """`engine.run_due()` in a thread of its own (joined on exit)."""
    done: list[TickResult] = []
    thread = threading.Thread(target=lambda: done.append(engine.run_due()), daemon=True)
    thread.start()
    try:
        yield done
    finally:
        thread.join(LONG)
        assert not thread.is_alive(), "the run did not finish executing"


class Overlap:
    """Counts calls of a slow step and the most that ran at the same time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = self.calls = 0

    def __call__(self, seconds: float) -> str:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(seconds)  # ignores `cancelled`: not cooperative
            return "slept"
        finally:
            with self.lock:
                self.running -= 1


def test_the_next_attempt_waits_for_a_timed_out_one_and_its_result_is_discarded(
        engine: Engine, registry: WorkflowRegistry) -> None:
    slow = Overlap()

    @registry.workflow("slow")
    def slow_wf(ctx: Context, data: Any) -> Any:
        try:
            return ctx.step("nap", slow, 0.5, timeout=SHORT, max_attempts=2,
                            initial_delay=timedelta(0), timeout_grace=timedelta(seconds=LONG))
        except StepFailed as failure:
            return {"failed": failure.error.type, "attempts": failure.attempts}

    run = engine.trigger("slow", None).run_id
    state = run_to_completion(engine, run)
    assert state.result == {"failed": "StepTimeout", "attempts": 2}
    assert slow.calls == 2 and slow.most == 1  # never overlapping
    late = _events(engine, run, ev.StepResultDiscarded)
    assert [(d.step_id, d.attempt, d.result) for d in late] == [("nap", 1, "slept"),
                                                                 ("nap", 2, "slept")]
    types = [r.type for r in engine.history(run)]
    first = types.index("StepFailed")
    assert types[first:first + 3] == ["StepFailed", "StepResultDiscarded", "StepFailed"]
    assert _events(engine, run, ev.StepCompleted) == []  # a late result is never used


def test_current_step_tells_the_step_who_it_is_and_when_to_give_up(
        engine: Engine, registry: WorkflowRegistry) -> None:
    seen: list[tuple[str, str, int, bool]] = []

    def cooperative() -> str:
        me: StepInfo = current_step()
        gave_up = me.cancelled.wait(LONG)  # a loop of small units checks it the same way
        seen.append((me.run_id, me.step_id, me.attempt, gave_up))
        return "gave up" if gave_up else "finished"

    @registry.workflow("coop")
    def coop(ctx: Context, data: Any) -> Any:
        try:
            return ctx.step("work", cooperative, timeout=SHORT, max_attempts=2,
                            initial_delay=timedelta(0), timeout_grace=timedelta(seconds=LONG))
        except StepFailed as failure:
            return failure.attempts

    run = engine.trigger("coop", None).run_id
    started = time.monotonic()
    assert run_to_completion(engine, run).result == 2
    assert time.monotonic() - started < LONG
    assert seen == [(run, "work", 1, True), (run, "work", 2, True)]
    assert [d.result for d in _events(engine, run, ev.StepResultDiscarded)] == ["gave up"] * 2
    with pytest.raises(RuntimeError, match="only available in the code of a step"):
        current_step()


def test_past_the_grace_period_the_run_goes_on_and_journals_the_late_result(
        engine: Engine, registry: WorkflowRegistry, caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    attempts: list[int] = []
    holder: dict[str, str] = {}

    def stuck() -> str:
        attempts.append(current_step().attempt)
        if len(attempts) == 1:
            release.wait(LONG)  # not cooperative: held until the next step lets it go
            return "first, too late"
        return "second"

    def let_it_return() -> str:  # the run is executing when the late result lands
        release.set()
        _until(lambda: bool(_events(engine, holder["run"], ev.StepResultDiscarded)),
               "the late result")
        return "let go"

    @registry.workflow("stuck")
    def stuck_wf(ctx: Context, data: Any) -> Any:
        value = ctx.step("call", stuck, timeout=SHORT, max_attempts=2,
                         initial_delay=timedelta(0))  # grace: the timeout, 0.1 s
        ctx.step("release", let_it_return)
        ctx.wait_for_signal("go")  # and when it is suspended
        return value

    run = holder["run"] = engine.trigger("stuck", None).run_id
    with caplog.at_level(logging.WARNING, logger="ledgerflow.executor"):
        engine.run_due()
    assert engine.state(run).status is RunStatus.SUSPENDED and attempts == [1, 2]
    warned = [r for r in caplog.records if "still running" in r.getMessage()]
    assert len(warned) == 1 and warned[0].run_id == run  # type: ignore[attr-defined]
    (late,) = _events(engine, run, ev.StepResultDiscarded)
    assert (late.step_id, late.attempt, late.result) == ("call", 1, "first, too late")
    engine.signal(run, "go")
    assert run_to_completion(engine, run).result == "second"


class LongJob:
    """A cooperative step that runs until its `cancelled` is set; raises if `fail`."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.started, self.observed = threading.Event(), threading.Event()

    def __call__(self) -> str:
        self.started.set()
        if current_step().cancelled.wait(LONG):
            self.observed.set()
            if self.fail:
                raise RuntimeError("abandoned: the run was canceled")
        return "stopped early"


def test_cancel_sets_cancelled_for_the_step_in_flight(engine: Engine,
                                                      registry: WorkflowRegistry) -> None:
    job, after = LongJob(), []

    @registry.workflow("long")
    def long_wf(ctx: Context, data: Any) -> Any:
        ctx.step("job", job)
        ctx.step("next", lambda: after.append("next"))
        return "done"

    run = engine.trigger("long", None).run_id
    with _executing(engine) as done:
        assert job.started.wait(LONG)
        engine.cancel(run, "user gave up")
        assert job.observed.wait(LONG)
    assert done[0].abandoned == 1 and after == []
    assert engine.state(run).status is RunStatus.CANCELED


def test_a_cancel_from_another_process_reaches_the_step_by_the_heartbeat(
        engine: Engine, registry: WorkflowRegistry, clock: FakeClock) -> None:
    job = LongJob()
    registry.register("long", lambda ctx, data: ctx.step("job", job))
    # The worker: a short lease, so its heartbeat beats every 0.2 s.
    worker = Engine(EventStore(engine.store.engine, clock=clock), registry, clock=clock,
                    lease=timedelta(seconds=0.6))
    run = engine.trigger("long", None).run_id
    with _executing(worker) as done:
        assert job.started.wait(LONG)
        engine.cancel(run, "from elsewhere")  # another engine: nothing in flight there
        assert job.observed.wait(LONG)
    assert done[0].abandoned == 1
    assert engine.state(run).status is RunStatus.CANCELED


def _saga(registry: WorkflowRegistry, undone: list[str],
          middle: Callable[[Context], Any]) -> None:
    @registry.workflow("saga")
    def saga(ctx: Context, data: Any) -> Any:
        ctx.step("reserve", lambda: "r1", compensate=lambda r: undone.append(f"reserve:{r}"))
        ctx.step("charge", lambda: "c1", compensate=lambda r: undone.append(f"charge:{r}"))
        middle(ctx)
        ctx.step("ship", lambda: undone.append("shipped!"))
        return "done"


def test_a_compensating_cancel_undoes_completed_steps_then_cancels(
        engine: Engine, registry: WorkflowRegistry) -> None:
    undone: list[str] = []
    _saga(registry, undone, lambda ctx: ctx.wait_for_signal("approve"))
    run = engine.trigger("saga", None).run_id
    engine.run_due()
    assert engine.state(run).status is RunStatus.SUSPENDED

    engine.cancel(run, "customer left", compensate=True)
    assert engine.state(run).status is RunStatus.COMPENSATING
    assert run_to_completion(engine, run).status is RunStatus.CANCELED
    assert undone == ["charge:c1", "reserve:r1"]
    types = [r.type for r in engine.history(run)]
    assert types[types.index("RunCompensating"):] == [
        "RunCompensating", "CompensationCompleted", "CompensationCompleted", "RunCanceled"]
    rollback = _events(engine, run, ev.RunCompensating)[0]
    assert rollback.error.type == "Canceled" and rollback.error.message == "customer left"
    assert _events(engine, run, ev.RunCanceled)[0].reason == "customer left"
    with engine.store.engine.connect() as conn:
        assert queue_row(conn, run) is None

    pending = engine.trigger("saga", None).run_id  # nothing done yet: canceled at once
    engine.cancel(pending, compensate=True)
    assert engine.state(pending).status is RunStatus.CANCELED


def test_a_compensating_cancel_reaches_the_step_in_flight_and_undoes_the_rest(
        engine: Engine, registry: WorkflowRegistry) -> None:
    undone: list[str] = []
    approve = LongJob(fail=True)
    _saga(registry, undone, lambda ctx: ctx.step("approve", approve))
    run = engine.trigger("saga", None).run_id
    with _executing(engine) as done:
        assert approve.started.wait(LONG)
        engine.cancel(run, "too slow", compensate=True)
    assert done[0].canceled == 1
    assert engine.state(run).status is RunStatus.CANCELED
    assert undone == ["charge:c1", "reserve:r1"]
    assert len(_events(engine, run, ev.CompensationCompleted)) == 2
