"""Durable sleeps, signals, events, tokens and their timeouts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import Context, Engine, WaitTimeout, WorkflowRegistry
from ledgerflow.domain.errors import NotAwaited
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.runtime.queue import queue_row
from ledgerflow.testing import FakeClock, run_to_completion


def test_sleep_is_a_due_time_that_fires_when_the_clock_passes_it(
        engine: Engine, registry: WorkflowRegistry, clock: FakeClock) -> None:
    @registry.workflow("sleeper")
    def sleeper(ctx: Context, data: Any) -> Any:
        ctx.sleep("nap", timedelta(minutes=10))
        return ctx.now().isoformat()

    run = engine.trigger("sleeper", None).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.SUSPENDED
    assert state.waitpoint is not None and state.waitpoint.kind == "sleep"
    assert state.waitpoint.wake_at == clock() + timedelta(minutes=10)
    with engine.store.engine.connect() as conn:
        row = queue_row(conn, run)
    assert row is not None and row["due_at"] == clock() + timedelta(minutes=10)
    clock.advance(timedelta(minutes=9))
    assert engine.run_due().claimed == 0
    clock.advance(timedelta(minutes=2))
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED
    assert state.result == clock().isoformat()
    types = [r.type for r in engine.history(run)]
    assert types[-4:] == ["TimerFired", "RunWoken", "ValueRecorded", "RunCompleted"]


def test_signals_are_buffered_and_delivered_in_order(engine: Engine,
                                                     registry: WorkflowRegistry) -> None:
    @registry.workflow("approvals")
    def approvals(ctx: Context, data: Any) -> Any:
        first = ctx.wait_for_signal("approve")
        second = ctx.wait_for_signal("approve")
        third = ctx.wait_for_signal("approve")
        return [first, second, third]

    run = engine.trigger("approvals", None).run_id
    engine.signal(run, "approve", {"n": 1})  # before the run even started: buffered
    engine.run_due()
    state = engine.state(run)
    assert state.status is RunStatus.SUSPENDED
    assert state.waitpoint is not None
    assert (state.waitpoint.kind, state.waitpoint.name) == ("signal", "approve")
    engine.signal(run, "approve", {"n": 2})
    engine.signal(run, "approve", {"n": 3})
    assert run_to_completion(engine, run).result == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_event_wait_times_out_with_a_catchable_wait_timeout(
        engine: Engine, registry: WorkflowRegistry, clock: FakeClock) -> None:
    @registry.workflow("pay")
    def pay(ctx: Context, data: Any) -> Any:
        try:
            return ctx.wait_for_event("payment.settled", timeout=timedelta(hours=1))
        except WaitTimeout:
            late = ctx.wait_for_event("payment.settled")
            return {"timedOut": True, "late": late}

    run = engine.trigger("pay", None).run_id
    engine.run_due()
    state = engine.state(run)
    assert state.waitpoint is not None
    assert state.waitpoint.timeout_at == clock() + timedelta(hours=1)
    clock.advance(timedelta(hours=2))
    engine.run_due()
    state = engine.state(run)
    assert state.status is RunStatus.SUSPENDED  # now waiting without a timeout
    assert "WaitTimedOut" in [r.type for r in engine.history(run)]
    engine.send_event(run, "payment.settled", {"amount": 5})
    assert run_to_completion(engine, run).result == {"timedOut": True, "late": {"amount": 5}}


def test_token_resolution_and_not_awaited(engine: Engine, registry: WorkflowRegistry,
                                          clock: FakeClock) -> None:
    @registry.workflow("manual")
    def manual(ctx: Context, data: Any) -> Any:
        note = ctx.wait_for_token("manual-check")
        try:
            ctx.wait_for_token("second", timeout=timedelta(seconds=30))
        except WaitTimeout as timeout:
            return {"note": note, "second": str(timeout)}
        return {"note": note}

    run = engine.trigger("manual", None).run_id
    with pytest.raises(NotAwaited):
        engine.resolve_token(run, "whatever")
    engine.run_due()
    wp = engine.state(run).waitpoint
    assert wp is not None and wp.kind == "token" and wp.token_id
    before = len(engine.history(run))
    with pytest.raises(NotAwaited) as info:
        engine.resolve_token(run, "not-the-token")
    assert "not-the-token" in str(info.value)
    assert len(engine.history(run)) == before
    engine.resolve_token(run, wp.token_id, {"ok": True})
    engine.run_due()
    second = engine.state(run).waitpoint
    assert second is not None and second.timeout_at == clock() + timedelta(seconds=30)
    clock.advance(timedelta(seconds=31))
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED
    assert state.result["note"] == {"ok": True}
    assert "timed out" in state.result["second"]


def test_signal_to_a_terminal_run_is_refused(engine: Engine, registry: WorkflowRegistry) -> None:
    registry.register("quick", lambda ctx, data: 1)
    run = engine.trigger("quick", None).run_id
    engine.run_due()
    with pytest.raises(NotAwaited):
        engine.signal(run, "late")


def test_parallel_branches_are_each_journaled(engine: Engine,
                                              registry: WorkflowRegistry) -> None:
    @registry.workflow("fanout")
    def fanout(ctx: Context, data: Any) -> Any:
        return ctx.parallel("docs", {"invoice": lambda: "inv", "email": lambda: {"sent": 1}})

    run = engine.trigger("fanout", None).run_id
    assert run_to_completion(engine, run).result == {"invoice": "inv", "email": {"sent": 1}}
    steps = sorted(r.event.step_id for r in engine.history(run)  # type: ignore[attr-defined]
                   if r.type == "StepCompleted")
    assert steps == ["docs/email", "docs/invoice"]
