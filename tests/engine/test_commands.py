"""Children, cancel, rerun and resume."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import ChildFailed, Context, Engine, WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import IllegalTransition, InvalidRequest
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.runtime.queue import queue_row
from ledgerflow.testing import FakeClock, run_to_completion


def _child_workflows(registry: WorkflowRegistry) -> None:
    @registry.workflow("remind")
    def remind(ctx: Context, data: Any) -> Any:
        if data.get("fail"):
            ctx.step("boom", lambda: (_ for _ in ()).throw(RuntimeError("no reminder")))
        return ctx.step("send", lambda: {"sent": data["id"]})

    @registry.workflow("parent")
    def parent(ctx: Context, data: Any) -> Any:
        try:
            return ctx.child("remind", "remind", data)
        except ChildFailed as failure:
            return {"childFailed": failure.status, "child": failure.child_run_id}


def test_child_runs_are_linked_both_ways_and_return_results(
        engine: Engine, registry: WorkflowRegistry) -> None:
    _child_workflows(registry)
    run = engine.trigger("parent", {"id": 7}, tenant_meta={"tenantId": "acme"}).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED and state.result == {"sent": 7}
    (child_id,) = state.children
    child = engine.state(child_id)
    assert child.parent_run_id == run and child.status is RunStatus.COMPLETED
    assert engine.history(child_id)[0].metadata["correlation_id"] == run
    assert engine.history(child_id)[0].metadata["tenant"] == "acme"
    finished = [r for r in engine.history(run) if r.type == "ChildFinished"]
    woken = [r for r in engine.history(run) if r.type == "RunWoken"]
    assert len(finished) == 1 and woken[0].version == finished[0].version + 1


def test_failed_child_raises_child_failed_in_parent(engine: Engine,
                                                    registry: WorkflowRegistry) -> None:
    _child_workflows(registry)
    run = engine.trigger("parent", {"id": 1, "fail": True}).run_id
    state = run_to_completion(engine, run)
    assert state.result["childFailed"] == "failed"


def test_canceled_child_raises_child_failed_in_parent(engine: Engine,
                                                      registry: WorkflowRegistry) -> None:
    @registry.workflow("waits")
    def waits(ctx: Context, data: Any) -> Any:
        return ctx.wait_for_signal("never")

    @registry.workflow("p2")
    def p2(ctx: Context, data: Any) -> Any:
        try:
            return ctx.child("c", "waits", None)
        except ChildFailed as failure:
            return failure.status

    run = engine.trigger("p2", None).run_id
    run_to_completion(engine, run)
    (child,) = engine.state(run).children
    engine.cancel(child, "no longer needed")
    assert run_to_completion(engine, run).result == "canceled"


def test_cancel_from_waiting_and_refused_when_terminal(engine: Engine,
                                                       registry: WorkflowRegistry) -> None:
    registry.register("sleepy", lambda ctx, data: ctx.sleep("s", timedelta(hours=1)))
    run = engine.trigger("sleepy", None).run_id
    engine.run_due()
    engine.cancel(run, "user asked", actor="bob")
    state = engine.state(run)
    assert state.status is RunStatus.CANCELED
    assert engine.history(run)[-1].metadata["actor"] == "bob"
    with engine.store.engine.connect() as conn:
        assert queue_row(conn, run) is None
    with pytest.raises(IllegalTransition):
        engine.cancel(run)
    pending = engine.trigger("sleepy", None).run_id
    engine.cancel(pending)
    assert engine.run_due().claimed == 0
    assert engine.state(pending).status is RunStatus.CANCELED


def test_cancel_abandons_the_step_in_flight(engine: Engine, registry: WorkflowRegistry) -> None:
    after: list[str] = []
    holder: dict[str, str] = {}

    def cancel_me() -> str:
        engine.cancel(holder["run"], "mid-step")
        return "side effect done"

    @registry.workflow("inflight")
    def inflight(ctx: Context, data: Any) -> Any:
        ctx.step("one", cancel_me)
        ctx.step("two", lambda: after.append("two"))
        return "done"

    holder["run"] = engine.trigger("inflight", None).run_id
    result = engine.run_due()
    assert result.abandoned == 1
    assert after == []
    assert engine.state(holder["run"]).status is RunStatus.CANCELED
    assert "StepCompleted" not in [r.type for r in engine.history(holder["run"])]


def test_rerun_starts_a_linked_run_with_the_same_input(engine: Engine,
                                                       registry: WorkflowRegistry) -> None:
    registry.register("echo", lambda ctx, data: data)
    run = engine.trigger("echo", {"a": 1}, tags=["x"]).run_id
    run_to_completion(engine, run)
    again = engine.rerun(run)
    assert again != run
    assert run_to_completion(engine, again).result == {"a": 1}
    created = engine.history(again)[0].event
    assert created.rerun_of == run and created.tags == ["x"]  # type: ignore[attr-defined]


class Effects:
    """Steps' side effects, counted; step `broken` raises while `on`."""

    def __init__(self, broken: str) -> None:
        self.broken, self.on = broken, True
        self.calls: list[str] = []

    def __call__(self, name: str) -> str:
        self.calls.append(name)
        if name == self.broken and self.on:
            raise RuntimeError(f"{name} is broken")
        return name.upper()

    def workflow(self, registry: WorkflowRegistry, name: str, steps: tuple[str, ...]) -> None:
        """Register `name`: one step per name in `steps`, returning their results."""
        registry.register(name, lambda ctx, data: [ctx.step(n, self, n) for n in steps])


def test_resume_seeds_completed_steps_before_the_resume_point(
        engine: Engine, registry: WorkflowRegistry, clock: FakeClock) -> None:
    effects = Effects("c")
    effects.workflow(registry, "abc", ("a", "b", "c"))
    calls, broken = effects.calls, effects

    run = engine.trigger("abc", None).run_id
    assert run_to_completion(engine, run).status is RunStatus.FAILED
    other = engine.trigger("abc", None).run_id
    with pytest.raises(IllegalTransition):
        engine.resume(other)
    engine.cancel(other)
    with pytest.raises(InvalidRequest, match="no step 'zz'"):
        engine.resume(run, resume_from_step="zz")
    with pytest.raises(InvalidRequest, match="seed_results"):
        engine.resume(run, seed_results={"": 1})
    broken.on = False
    calls.clear()
    resumed = engine.resume(run, resume_from_step="b")
    state = run_to_completion(engine, resumed)
    assert state.result == ["A", "B", "C"]
    assert calls == ["b", "c"]
    assert engine.history(resumed)[0].event.resumed_from == run  # type: ignore[attr-defined]
    calls.clear()
    seeded = engine.resume(run, seed_results={"a": "SEED-A", "b": "SEED-B"})
    assert run_to_completion(engine, seeded).result == ["SEED-A", "SEED-B", "C"]
    assert calls == ["c"]


def test_cancel_cascades_to_unfinished_children(engine: Engine,
                                                registry: WorkflowRegistry) -> None:
    @registry.workflow("leaf")
    def leaf(ctx: Context, data: Any) -> Any:
        return ctx.wait_for_signal("never")

    @registry.workflow("done-child")
    def done_child(ctx: Context, data: Any) -> Any:
        return "done"

    @registry.workflow("middle")
    def middle(ctx: Context, data: Any) -> Any:
        return ctx.child("leaf", "leaf", None)

    @registry.workflow("top")
    def top(ctx: Context, data: Any) -> Any:
        ctx.child("quick", "done-child", None)
        return ctx.child("middle", "middle", None)

    run = engine.trigger("top", None).run_id
    for _ in range(10):
        engine.run_due()
    quick, middle_run = engine.state(run).children
    (leaf_run,) = engine.state(middle_run).children
    assert engine.state(leaf_run).status is RunStatus.SUSPENDED
    assert engine.state(quick).status is RunStatus.COMPLETED

    engine.cancel(run, "order withdrawn", actor="alice")

    for child in (middle_run, leaf_run):
        assert engine.state(child).status is RunStatus.CANCELED
        canceled = engine.history(child)[-1]
        assert isinstance(canceled.event, ev.RunCanceled)
        assert canceled.event.reason is not None and "was canceled" in canceled.event.reason
        assert canceled.metadata["actor"] == "alice"
    assert engine.state(quick).status is RunStatus.COMPLETED  # finished children stay as they are
    assert engine.state(run).status is RunStatus.CANCELED


def test_resume_continues_from_the_step_that_failed(engine: Engine,
                                                    registry: WorkflowRegistry) -> None:
    effects = Effects("two")
    effects.workflow(registry, "one-two-three", ("one", "two", "three"))
    calls = effects.calls

    run = engine.trigger("one-two-three", None).run_id
    assert run_to_completion(engine, run).status is RunStatus.FAILED
    assert calls == ["one", "two"]
    effects.on = False
    resumed = engine.resume(run)
    assert run_to_completion(engine, resumed).result == ["ONE", "TWO", "THREE"]
    assert calls == ["one", "two", "two", "three"]  # step one's side effect: once in all
    created = engine.history(resumed)[0].event
    assert isinstance(created, ev.RunCreated)
    assert (created.resume_from_step, created.seed_results) == ("two", {"one": "ONE"})
    seeded = [r.event for r in engine.history(resumed) if r.type == "StepCompleted"]
    assert [(e.step_id, e.attempt) for e in seeded] == [  # type: ignore[attr-defined]
        ("one", 0), ("two", 1), ("three", 1)]


def test_resume_after_every_step_completed_seeds_them_all(
        engine: Engine, registry: WorkflowRegistry) -> None:
    calls: list[str] = []

    def add_up() -> int:
        calls.append("sum")
        return 3

    @registry.workflow("checks-after")
    def checks_after(ctx: Context, data: Any) -> Any:
        total = ctx.step("sum", add_up)
        if total != data["expect"]:
            raise ValueError(f"expected {data['expect']}, got {total}")
        return total

    run = engine.trigger("checks-after", {"expect": 4}).run_id
    assert run_to_completion(engine, run).status is RunStatus.FAILED
    resumed = engine.resume(run, input={"expect": 3})
    assert run_to_completion(engine, resumed).result == 3
    assert calls == ["sum"]
