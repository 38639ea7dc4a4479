"""Authoring API + executor + queue: trigger, run_due, replay, idempotent triggers."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerflow import Context, Engine, WorkflowRegistry
from ledgerflow.domain.errors import (
    InvalidRequest,
    NonDeterminismError,
    UnknownRun,
    UnknownWorkflow,
)
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.testing import run_to_completion


def _types(engine: Engine, run_id: str) -> list[str]:
    return [r.type for r in engine.history(run_id)]


def test_three_steps_complete_with_results_in_order(engine: Engine,
                                                    registry: WorkflowRegistry) -> None:
    calls: list[str] = []

    def effect(name: str, value: Any) -> Any:
        calls.append(name)
        return value

    @registry.workflow("three")
    def three(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        a = ctx.step("a", effect, "a", {"n": data["n"] + 1})
        b = ctx.step("b", effect, "b", {"n": a["n"] * 2})
        c = ctx.step("c", effect, "c", "done")
        return {"b": b, "c": c}

    run = engine.trigger("three", {"n": 1}, tenant_meta={"tenantId": "t1"}, actor="alice")
    assert run.created
    assert engine.run_due().completed == 1
    state = engine.state(run.run_id)
    assert state.status is RunStatus.COMPLETED
    assert state.result == {"b": {"n": 4}, "c": "done"}
    assert calls == ["a", "b", "c"]
    assert _types(engine, run.run_id) == [
        "RunCreated", "RunStarted", "StepCompleted", "StepCompleted", "StepCompleted",
        "RunCompleted"]
    history = engine.history(run.run_id)
    for rec in history:
        assert rec.metadata["workflow_id"] == "three"
        assert rec.metadata["tenant"] == "t1"
        assert rec.metadata["correlation_id"] == run.run_id
    assert history[0].metadata["actor"] == "alice"
    assert history[1].metadata["causation_id"] == history[0].event_id


def test_unknown_workflow_names_what_exists(engine: Engine, registry: WorkflowRegistry) -> None:
    registry.register("known", lambda ctx, data: None)
    with pytest.raises(UnknownWorkflow) as info:
        engine.trigger("nope", {})
    assert "'nope'" in str(info.value) and "known@1" in str(info.value)
    with pytest.raises(UnknownRun):
        engine.state("missing")


def test_trigger_is_idempotent_by_key_and_run_id(engine: Engine,
                                                 registry: WorkflowRegistry) -> None:
    registry.register("w", lambda ctx, data: data)
    first = engine.trigger("w", {"x": 1}, idempotency_key="k1")
    again = engine.trigger("w", {"x": 1}, idempotency_key="k1")
    assert again.run_id == first.run_id and not again.created
    given = engine.trigger("w", {"x": 2}, run_id="run-fixed")
    assert given.created and given.run_id == "run-fixed"
    assert not engine.trigger("w", {"x": 2}, run_id="run-fixed").created
    assert engine.run_due().claimed == 2
    assert len(engine.history(first.run_id)) == 3


def test_non_json_input_and_result_are_refused_clearly(engine: Engine,
                                                       registry: WorkflowRegistry) -> None:
    @registry.workflow("bad")
    def bad(ctx: Context, data: Any) -> Any:
        return ctx.step("s", lambda: object())

    with pytest.raises(InvalidRequest, match="not JSON-serialisable"):
        engine.trigger("bad", {"when": object()})
    run = engine.trigger("bad", {}).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert "not JSON-serialisable" in state.error.message and "'s'" in state.error.message


def test_nul_characters_are_refused_clearly_on_every_backend(
        engine: Engine, registry: WorkflowRegistry) -> None:
    """PostgreSQL's jsonb cannot store U+0000: refused at the door, on SQLite too."""
    @registry.workflow("nul")
    def nul(ctx: Context, data: Any) -> Any:
        ctx.step("s", lambda: {"text": "a\x00b"})
        return "unreached"

    @registry.workflow("fine")
    def fine(ctx: Context, data: Any) -> Any:
        return data

    with pytest.raises(InvalidRequest, match=r"input holds a NUL character"):
        engine.trigger("fine", {"name": "x\x00"}, run_id="refused")
    with pytest.raises(UnknownRun):
        engine.history("refused")
    literal = engine.trigger("fine", "a\\u0000b").run_id  # an escaped backslash: kept
    assert run_to_completion(engine, literal).result == "a\\u0000b"
    run = engine.trigger("nul", {}).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert "the result of step 's' holds a NUL character" in state.error.message


def test_text_that_is_not_unicode_is_refused_clearly(engine: Engine,
                                                     registry: WorkflowRegistry) -> None:
    """An unpaired surrogate is a valid Python str but no database can store it."""
    @registry.workflow("surrogate")
    def surrogate(ctx: Context, data: Any) -> Any:
        ctx.step("s", lambda: ["\udc80"])
        return "unreached"

    with pytest.raises(InvalidRequest, match=r"input holds text that is not valid Unicode"):
        engine.trigger("surrogate", {"name": "x\ud800"})
    with pytest.raises(InvalidRequest, match="signal payload holds text that is not valid"):
        engine.signal(engine.trigger("surrogate", {}, eager=False).run_id, "go", "\ud800")
    state = run_to_completion(engine, engine.trigger("surrogate", {}).run_id)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert "the result of step 's' holds text that is not valid Unicode" in state.error.message


def test_replay_detects_renamed_step(engine: Engine, registry: WorkflowRegistry) -> None:
    version = {"name": "a"}

    @registry.workflow("nd")
    def nd(ctx: Context, data: Any) -> Any:
        ctx.step(version["name"], lambda: 1)
        ctx.sleep("nap", __import__("datetime").timedelta(seconds=5))
        return ctx.step("z", lambda: 2)

    run = engine.trigger("nd", None).run_id
    engine.run_due()
    assert engine.state(run).status is RunStatus.SUSPENDED
    version["name"] = "renamed"
    engine.clock.advance(__import__("datetime").timedelta(seconds=6))  # type: ignore[attr-defined]
    engine.run_due()
    state = engine.state(run)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert state.error.type == NonDeterminismError.__name__
    assert "'renamed'" in state.error.message and "'a'" in state.error.message


def test_wait_returns_the_terminal_state(engine: Engine, registry: WorkflowRegistry) -> None:
    registry.register("answer", lambda ctx, data: {"answer": 42})
    run = engine.trigger("answer", None).run_id
    engine.run_due()
    assert engine.wait(run, timeout=5).result == {"answer": 42}
    assert engine.wait(run, timeout=5).status is RunStatus.COMPLETED  # falls back to the store
    pending = engine.trigger("answer", None).run_id
    with pytest.raises(TimeoutError):
        engine.wait(pending, timeout=0.2, poll=0.05)
