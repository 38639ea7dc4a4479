"""Async workflows: the sync engine's behaviours, for `async def` workflows, on both
databases; cancellation of in-flight async steps; sync and async runs in one worker."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import (
    AsyncContext,
    ChildFailed,
    Context,
    Engine,
    StepFailed,
    WaitTimeout,
    Worker,
    WorkflowRegistry,
    current_step,
)
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.runtime.faults import InjectedFault
from ledgerflow.testing import FakeClock, run_to_completion


@pytest.fixture
def aengine(engine: Engine) -> Iterator[Engine]:
    """The engine fixture (each backend), its event loop closed after the test."""
    yield engine
    engine.runtime.aio.close()


def _types(engine: Engine, run_id: str) -> list[str]:
    return [r.type for r in engine.history(run_id)]


async def double(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * 2


def test_steps_are_journaled_and_the_history_is_the_sync_one(
        aengine: Engine, registry: WorkflowRegistry) -> None:
    effects: Counter[str] = Counter()

    async def charge(amount: int) -> dict[str, int]:
        effects["charge"] += 1
        await asyncio.sleep(0.01)
        return {"charged": amount}

    def receipt(charged: dict[str, int]) -> str:  # a sync step: runs in a thread
        effects["receipt"] += 1
        return f"receipt for {charged['charged']}"

    @registry.workflow("pay-async")
    async def pay_async(ctx: AsyncContext, data: dict[str, int]) -> Any:
        charged = await ctx.step("charge", charge, data["amount"])
        return {"receipt": await ctx.step("receipt", receipt, charged), "id": ctx.uuid()}

    @registry.workflow("pay-sync")
    def pay_sync(ctx: Context, data: dict[str, int]) -> Any:
        charged = ctx.step("charge", lambda: {"charged": data["amount"]})
        return {"receipt": ctx.step("receipt", receipt, charged), "id": ctx.uuid()}

    run = aengine.trigger("pay-async", {"amount": 5}).run_id
    state = run_to_completion(aengine, run)
    assert state.status is RunStatus.COMPLETED
    assert state.result["receipt"] == "receipt for 5"
    assert effects == Counter({"charge": 1, "receipt": 1})
    sync_run = aengine.trigger("pay-sync", {"amount": 5}).run_id
    run_to_completion(aengine, sync_run)
    assert _types(aengine, run) == _types(aengine, sync_run)
    assert aengine.run_due().claimed == 0 and effects["charge"] == 1


def test_a_crash_after_a_step_committed_resumes_without_repeating_it(
        aengine: Engine, registry: WorkflowRegistry, clock: FakeClock) -> None:
    effects: Counter[str] = Counter()

    async def effect(name: str) -> str:
        effects[name] += 1
        await asyncio.sleep(0)
        return name

    @registry.workflow("two-effects")
    async def two(ctx: AsyncContext, data: Any) -> Any:
        return [await ctx.step("a", effect, "a"), await ctx.step("b", effect, "b")]

    run = aengine.trigger("two-effects", None).run_id
    aengine.runtime.faults.arm("step_committed")
    with pytest.raises(InjectedFault):
        aengine.run_due()
    assert effects == Counter({"a": 1})
    clock.advance(aengine.lease + timedelta(seconds=1))  # the crashed lease expires
    aengine.reap()
    assert run_to_completion(aengine, run).result == ["a", "b"]
    assert effects == Counter({"a": 1, "b": 1})


def test_sleep_parks_and_fires_when_the_clock_passes_it(
        aengine: Engine, registry: WorkflowRegistry, clock: FakeClock) -> None:
    @registry.workflow("nap")
    async def nap(ctx: AsyncContext, data: Any) -> Any:
        await ctx.sleep("nap", timedelta(minutes=5))
        return "rested"

    run = aengine.trigger("nap", None).run_id
    assert run_to_completion(aengine, run).status is RunStatus.SUSPENDED
    clock.advance(timedelta(minutes=4))
    assert run_to_completion(aengine, run).status is RunStatus.SUSPENDED
    clock.advance(timedelta(minutes=2))
    assert run_to_completion(aengine, run).result == "rested"


def test_signals_are_buffered_and_waits_time_out(
        aengine: Engine, registry: WorkflowRegistry, clock: FakeClock) -> None:
    @registry.workflow("waits")
    async def waits(ctx: AsyncContext, data: Any) -> Any:
        first = await ctx.wait_for_signal("go")
        second = await ctx.wait_for_signal("go")
        try:
            paid = await ctx.wait_for_event("paid", timeout=timedelta(minutes=1))
        except WaitTimeout:
            paid = "timed out"
        token = await ctx.wait_for_token("check")
        return [first, second, paid, token]

    run = aengine.trigger("waits", None).run_id
    aengine.signal(run, "go", 1)
    aengine.signal(run, "go", 2)  # both sent before the run waits: buffered, in order
    state = run_to_completion(aengine, run)
    assert state.waitpoint is not None and state.waitpoint.kind == "event"
    clock.advance(timedelta(minutes=2))
    state = run_to_completion(aengine, run)
    assert state.waitpoint is not None and state.waitpoint.token_id is not None
    aengine.resolve_token(run, state.waitpoint.token_id, "ok")
    assert run_to_completion(aengine, run).result == [1, 2, "timed out", "ok"]


def test_parallel_coroutines_run_concurrently(aengine: Engine,
                                              registry: WorkflowRegistry) -> None:
    async def io(i: int) -> int:
        await asyncio.sleep(1.0)
        return i

    @registry.workflow("fan-out")
    async def fan_out(ctx: AsyncContext, data: Any) -> Any:
        branches: dict[str, Callable[[], Awaitable[int]]] = {
            f"b{i}": functools.partial(io, i) for i in range(10)}
        return await ctx.parallel("io", branches)

    run = aengine.trigger("fan-out", None).run_id
    started = time.monotonic()
    state = run_to_completion(aengine, run)
    elapsed = time.monotonic() - started
    assert state.result == {f"b{i}": i for i in range(10)}
    assert elapsed < 6.0, f"ten 1 s branches took {elapsed:.1f}s: not concurrent"
    completed = [r.event.step_id for r in aengine.history(run)  # type: ignore[attr-defined]
                 if r.type == "StepCompleted"]
    assert sorted(completed) == sorted(f"io/b{i}" for i in range(10))


def test_children_return_their_result_or_raise_child_failed(
        aengine: Engine, registry: WorkflowRegistry) -> None:
    @registry.workflow("kid")
    async def kid(ctx: AsyncContext, data: int) -> Any:
        if data < 0:
            raise ValueError("negative")
        return await ctx.step("double", double, data)

    @registry.workflow("parent")
    async def parent(ctx: AsyncContext, data: Any) -> Any:
        good = await ctx.child("good", "kid", 4)
        try:
            await ctx.child("bad", "kid", -1)
        except ChildFailed as failed:
            return [good, failed.status]
        return [good, "?"]

    run = aengine.trigger("parent", None).run_id
    assert run_to_completion(aengine, run).result == [8, "failed"]
    assert len(aengine.state(run).children) == 2


def test_a_failure_runs_async_and_sync_compensators_in_reverse(
        aengine: Engine, registry: WorkflowRegistry) -> None:
    undone: list[str] = []

    async def undo_hold(result: str) -> None:
        await asyncio.sleep(0)
        undone.append(result)

    async def refuse() -> None:
        raise RuntimeError("card declined")

    @registry.workflow("saga")
    async def saga(ctx: AsyncContext, data: Any) -> Any:
        await ctx.step("hold", double, 1, compensate=undo_hold)
        await ctx.step("book", lambda: "booked", compensate=undone.append)
        await ctx.step("pay", refuse)

    run = aengine.trigger("saga", None).run_id
    state = run_to_completion(aengine, run)
    assert state.status is RunStatus.FAILED
    assert state.error is not None and "card declined" in str(state.error.details)
    assert undone == ["booked", 2]
    assert _types(aengine, run).count("CompensationCompleted") == 2


def test_cancel_with_compensation_and_resume(aengine: Engine,
                                             registry: WorkflowRegistry) -> None:
    undone: list[Any] = []
    effects: Counter[str] = Counter()

    async def effect(name: str) -> str:
        effects[name] += 1
        if name == "fragile" and effects[name] == 1:
            raise RuntimeError("first time fails")
        return name

    @registry.workflow("held")
    async def held(ctx: AsyncContext, data: Any) -> Any:
        await ctx.step("reserve", effect, "reserve", compensate=undone.append)
        return await ctx.wait_for_signal("never")

    @registry.workflow("resumable")
    async def resumable(ctx: AsyncContext, data: Any) -> Any:
        return [await ctx.step("first", effect, "first"),
                await ctx.step("fragile", effect, "fragile")]

    run = aengine.trigger("held", None).run_id
    run_to_completion(aengine, run)
    aengine.cancel(run, "changed my mind", compensate=True)
    assert run_to_completion(aengine, run).status is RunStatus.CANCELED
    assert undone == ["reserve"]

    failed = aengine.trigger("resumable", None).run_id
    assert run_to_completion(aengine, failed).status is RunStatus.FAILED
    resumed = aengine.resume(failed)
    assert run_to_completion(aengine, resumed).result == ["first", "fragile"]
    assert effects == Counter({"reserve": 1, "first": 1, "fragile": 2})


def test_a_timed_out_async_step_is_cancelled_and_unwinds_before_its_retry(
        aengine: Engine, registry: WorkflowRegistry) -> None:
    seen: list[str] = []

    async def slow() -> str:
        attempt = current_step().attempt
        seen.append(f"start {attempt}")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # unwinding takes a while: the retry waits for it
            seen.append(f"cancelled {attempt}")
            raise
        seen.append("after the await")  # must never happen
        return "late"

    @registry.workflow("slow")
    async def slow_wf(ctx: AsyncContext, data: Any) -> Any:
        try:
            return await ctx.step("slow", slow, timeout=timedelta(seconds=0.3),
                                  max_attempts=2, initial_delay=timedelta(0))
        except StepFailed as failed:
            return failed.error.type

    run = aengine.trigger("slow", None).run_id
    assert run_to_completion(aengine, run).result == "StepTimeout"
    assert seen == ["start 1", "cancelled 1", "start 2", "cancelled 2"]


def test_cancel_cancels_the_async_step_in_flight(aengine: Engine,
                                                 registry: WorkflowRegistry) -> None:
    seen: list[str] = []

    async def long_io() -> str:
        seen.append("started")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("after the await")  # must never happen
        return "done"

    @registry.workflow("long")
    async def long_wf(ctx: AsyncContext, data: Any) -> Any:
        return await ctx.step("long", long_io)

    worker = Worker(aengine, threads=1, poll_interval=0.05).start()
    try:
        run = aengine.trigger("long", None).run_id
        _until(lambda: seen == ["started"], "the step starts")
        aengine.cancel(run, "stop it")
        _until(lambda: "cancelled" in seen, "the step is cancelled")
        assert aengine.state(run).status is RunStatus.CANCELED
    finally:
        worker.stop()
    time.sleep(0.2)
    assert seen == ["started", "cancelled"]


def test_sync_and_async_workflows_share_one_worker(aengine: Engine,
                                                   registry: WorkflowRegistry) -> None:
    @registry.workflow("sync-one")
    def sync_one(ctx: Context, data: int) -> Any:
        return ctx.step("inc", lambda: data + 1)

    @registry.workflow("async-one")
    async def async_one(ctx: AsyncContext, data: int) -> Any:
        await ctx.step("wait", asyncio.sleep, 1.0)
        return await ctx.step("double", double, data)

    worker = Worker(aengine, threads=2, poll_interval=0.05).start()
    try:
        started = time.monotonic()
        runs = [aengine.trigger("async-one", i).run_id for i in range(60)]
        runs += [aengine.trigger("sync-one", i).run_id for i in range(20)]
        states = [aengine.wait(run, timeout=120) for run in runs]
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
    assert [s.result for s in states] == [i * 2 for i in range(60)] + [i + 1 for i in range(20)]
    # 60 one-second async steps on two threads would take 30 s; on the loop they overlap
    assert elapsed < 25, f"took {elapsed:.1f}s"


def test_mixing_sync_and_async_wrongly_fails_the_run_saying_so(
        aengine: Engine, registry: WorkflowRegistry) -> None:
    @registry.workflow("forgot-await")
    async def forgot(ctx: AsyncContext, data: Any) -> Any:
        ctx.step("charge", double, 1)  # no await
        return await ctx.step("next", double, 2)

    @registry.workflow("sync-awaits")
    def sync_awaits(ctx: Context, data: Any) -> Any:
        return ctx.step("io", double, 1)  # an async step in a sync workflow

    @registry.workflow("sync-returns-coroutine")
    def returns_coroutine(ctx: Context, data: Any) -> Any:
        return double(1)

    for name, words in [("forgot-await", "called ctx.step('charge') without await"),
                        ("sync-awaits", "cannot await"),
                        ("sync-returns-coroutine", "declare it `async def`")]:
        run = aengine.trigger(name, None).run_id
        state = run_to_completion(aengine, run)
        assert state.status is RunStatus.FAILED, name
        assert state.error is not None and words in str(state.error.message) + str(
            state.error.details), (name, state.error)
    assert "StepCompleted" not in _types(aengine, aengine.trigger("forgot-await", 0).run_id)


def _until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)
