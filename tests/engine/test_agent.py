"""Agent steps: a step returning a suspension parks the run until its tool calls are
answered (token resolved), then is entered again with the results and its state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import (
    Context,
    Engine,
    Ledgerflow,
    Suspend,
    WorkflowRegistry,
    current_step,
)
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import NotAwaited
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.runtime.faults import InjectedFault
from ledgerflow.testing import (
    FakeClock,
    Replayer,
    export_history,
    open_test_app,
    relay_to_sink,
    run_to_completion,
    run_view,
    step_journal,
)


@dataclass
class LibraryRun:
    """An agent library's own suspended run: no ledgerflow import needed."""

    state: dict[str, Any]
    pending_tool_calls: list[dict[str, Any]]
    status: str = "suspended"


@dataclass
class FakeAgent:
    """Asks for one tool call per round until it has `rounds` results, then answers."""

    rounds: int = 2
    library: bool = False
    entries: list[tuple[Any, Any]] = field(default_factory=list)

    def __call__(self) -> Any:
        info = current_step()
        self.entries.append((info.suspended_state, info.resume_data))
        results = list((info.suspended_state or {}).get("results", []))
        if info.resume_data is not None:
            results.append(info.resume_data["result"])
        if len(results) < self.rounds:
            state = {"results": results}
            call = [{"tool": "lookup", "args": {"n": len(results) + 1}}]
            return LibraryRun(state, call) if self.library else Suspend(state=state,
                                                                        pending=call)
        return {"answer": "+".join(results)}


def _agent_registry(agent: FakeAgent) -> WorkflowRegistry:
    registry = WorkflowRegistry()

    @registry.workflow("assistant")
    def assistant(ctx: Context, data: Any) -> Any:
        before = ctx.step("prepare", lambda: {"question": data})
        answer = ctx.step("agent", agent)
        return {"before": before, "answer": answer}

    return registry


def _suspended(engine: Engine, run: str) -> list[ev.StepSuspended]:
    return [r.event for r in engine.history(run) if isinstance(r.event, ev.StepSuspended)]


def _answer(engine: Engine, run: str, result: str) -> None:
    wp = engine.state(run).waitpoint
    assert wp is not None and wp.kind == "agent" and wp.token_id is not None
    engine.resolve_token(run, wp.token_id, {"result": result})


@pytest.mark.parametrize("library", [False, True], ids=["Suspend", "duck-typed"])
def test_an_agent_needing_two_rounds_completes_after_two_token_resolutions(
        any_engine: Any, clock: FakeClock, library: bool) -> None:
    from ledgerflow.eventstore import EventStore

    agent = FakeAgent(library=library)
    engine = Engine(EventStore(any_engine, clock=clock), _agent_registry(agent), clock=clock)
    run = engine.trigger("assistant", "why?").run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.SUSPENDED and state.waitpoint is not None
    first = state.waitpoint
    assert (first.kind, first.name) == ("agent", "agent")
    assert first.pending == [{"tool": "lookup", "args": {"n": 1}}]
    _answer(engine, run, "A")
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.SUSPENDED and state.waitpoint is not None
    assert state.waitpoint.token_id != first.token_id  # each round has a token of its own
    assert state.waitpoint.pending == [{"tool": "lookup", "args": {"n": 2}}]
    _answer(engine, run, "B")
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED
    assert state.result == {"before": {"question": "why?"}, "answer": {"answer": "A+B"}}
    assert agent.entries == [(None, None), ({"results": []}, {"result": "A"}),
                             ({"results": ["A"]}, {"result": "B"})]
    rounds = _suspended(engine, run)
    assert [(s.round, s.attempt, s.state) for s in rounds] == [
        (1, 1, {"results": []}), (2, 2, {"results": ["A"]})]
    with pytest.raises(NotAwaited):  # a round's token is spent once answered
        engine.resolve_token(run, rounds[0].token_id, {"result": "again"})


def test_a_crash_between_rounds_loses_nothing(any_engine: Any, clock: FakeClock) -> None:
    from ledgerflow.eventstore import EventStore
    from ledgerflow.runtime.faults import FaultPoints

    agent, faults = FakeAgent(), FaultPoints()
    engine = Engine(EventStore(any_engine, clock=clock), _agent_registry(agent), clock=clock,
                    faults=faults)
    run = engine.trigger("assistant", "q").run_id
    run_to_completion(engine, run)
    _answer(engine, run, "A")
    faults.arm("step_executed")  # round 2 suspends again, but dies before it commits
    with pytest.raises(InjectedFault):
        engine.run_due()
    assert len(_suspended(engine, run)) == 1
    clock.advance(timedelta(seconds=31))  # the dead worker's lease runs out
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.SUSPENDED and len(_suspended(engine, run)) == 2
    assert agent.entries[1] == agent.entries[2] == ({"results": []}, {"result": "A"})
    faults.arm("step_committed")  # the last round commits, then the process dies
    _answer(engine, run, "B")
    with pytest.raises(InjectedFault):
        engine.run_due()
    clock.advance(timedelta(seconds=31))
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED and state.result["answer"] == {"answer": "A+B"}
    completions = [r.event for r in engine.history(run) if isinstance(r.event, ev.StepCompleted)
                   and r.event.step_id == "agent"]
    assert len(completions) == 1 and len(agent.entries) == 4


def test_the_replayer_replays_an_agent_run_finished_or_mid_round(
        any_engine: Any, clock: FakeClock) -> None:
    from ledgerflow.eventstore import EventStore

    registry = _agent_registry(FakeAgent())
    engine = Engine(EventStore(any_engine, clock=clock), registry, clock=clock)
    run = engine.trigger("assistant", "q").run_id
    run_to_completion(engine, run)
    _answer(engine, run, "A")
    mid = export_history(engine, run)  # answered, not entered again yet
    run_to_completion(engine, run)
    _answer(engine, run, "B")
    run_to_completion(engine, run)
    assert Replayer(registry).replay(mid).ok
    report = Replayer(registry).replay(export_history(engine, run))
    assert report.ok and report.replayed_ops == 2
    changed = WorkflowRegistry()  # the agent step renamed: replay says where

    @changed.workflow("assistant")
    def renamed(ctx: Context, data: Any) -> Any:
        ctx.step("prepare", lambda: {"question": data})
        return ctx.step("assistant", FakeAgent())

    divergence = Replayer(changed).replay(export_history(engine, run)).divergence
    assert divergence is not None and "'agent'" in divergence


def test_retries_count_per_round_and_attempts_stay_unique(engine: Engine,
                                                          registry: WorkflowRegistry) -> None:
    calls: list[int] = []

    def flaky_agent() -> Any:
        info = current_step()
        calls.append(info.attempt)
        if info.resume_data is None:
            return Suspend(state={"step": 1}, pending=[{"tool": "t"}])
        if len(calls) == 2:
            raise ConnectionError("model overloaded")
        return {"done": info.resume_data}

    @registry.workflow("flaky")
    def flaky(ctx: Context, data: Any) -> Any:
        return ctx.step("agent", flaky_agent, max_attempts=2, initial_delay=timedelta(0))

    run = engine.trigger("flaky", None).run_id
    run_to_completion(engine, run)
    _answer(engine, run, "r")
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED and state.result == {"done": {"result": "r"}}
    assert calls == [1, 2, 3]  # round 2 had its own budget of two attempts


def test_a_parallel_branch_cannot_suspend(engine: Engine, registry: WorkflowRegistry) -> None:
    @registry.workflow("fan")
    def fan(ctx: Context, data: Any) -> Any:
        return ctx.parallel("fan", {"agent": lambda: Suspend(state={}, pending=[])})

    run = engine.trigger("fan", None).run_id
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert "cannot suspend" in state.error.message


@pytest.fixture
def app(clock: FakeClock) -> Iterator[Ledgerflow]:
    lf = open_test_app(registry=_agent_registry(FakeAgent()), clock=clock)
    yield lf
    lf.close()


def test_the_suspension_is_projected_and_published(app: Ledgerflow) -> None:
    run = app.engine.trigger("assistant", "q").run_id
    run_to_completion(app.engine, run)
    wire = run_view(app, run).to_wire()
    assert wire["status"] == "suspended"
    assert wire["waitpoint"]["kind"] == "agent" and wire["waitpoint"]["name"] == "agent"
    assert wire["waitpoint"]["pending"] == [{"tool": "lookup", "args": {"n": 1}}]
    assert [(e.step_id, e.status) for e in step_journal(app, run)] == [
        ("prepare", "completed"), ("agent", "suspended")]
    published = [m for m in relay_to_sink(app) if m["headers"]["event-type"] == "StepSuspended"]
    assert len(published) == 1
    assert published[0]["value"]["data"]["token_id"] == wire["waitpoint"]["tokenId"]
