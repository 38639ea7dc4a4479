"""A flow writes exactly the history its hand-written twin writes, construct by
construct: each pair runs under the same run id on a store of its own, and their
histories' (type, data) sequences are compared (the worker's id and the tracebacks of
the definitions' own lines left out); then the
Replayer replays each history against the other definition."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import (
    Branch,
    Context,
    Engine,
    Flow,
    FlowContext,
    Suspend,
    WorkflowRegistry,
    current_step,
    flow,
)
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.testing import (
    FakeClock,
    Replayer,
    export_history,
    open_test_engine,
    run_to_completion,
)

RUN = "equivalence-run"
Driver = Callable[[Engine, FakeClock], None]


def _undo(result: Any) -> Any:
    return {"undone": result}


def _flaky() -> Callable[[Any], Any]:
    """Fails its first call, then returns its argument's `n` doubled."""
    calls: list[int] = []

    def fn(value: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("try again")
        return value["n"] * 2
    return fn


def _step() -> tuple[Flow, Callable[[Context, Any], Any]]:
    flaky, twin_flaky = _flaky(), _flaky()
    built = flow("equiv").step("double", lambda f: flaky(f.input), max_attempts=2,
                                initial_delay=timedelta(seconds=5), compensate=_undo)

    def twin(ctx: Context, data: Any) -> Any:
        return {"double": ctx.step("double", lambda: twin_flaky(data), max_attempts=2,
                                   initial_delay=timedelta(seconds=5), compensate=_undo)}
    return built, twin


def _parallel() -> tuple[Flow, Callable[[Context, Any], Any]]:
    built = flow("equiv").parallel(
        "docs", {"invoice": lambda f: f"INV-{f.input['n']}",
                 "email": Branch(lambda f: {"to": f.input["n"]}, compensate=_undo)},
        max_concurrency=1)

    def twin(ctx: Context, data: Any) -> Any:
        return {"docs": ctx.parallel(
            "docs", {"invoice": lambda: f"INV-{data['n']}",
                     "email": Branch(lambda: {"to": data["n"]}, compensate=_undo)},
            max_concurrency=1)}
    return built, twin


def _route() -> tuple[Flow, Callable[[Context, Any], Any]]:
    express = flow("express").step("courier", lambda f: {"eta": 1})
    standard = flow("standard").step("post", lambda f: {"eta": 5})
    built = flow("equiv").route("ship", lambda f: "express" if f.input["n"] > 1 else "standard",
                                {"express": express, "standard": standard})

    def twin(ctx: Context, data: Any) -> Any:
        branch = ctx.step("ship", lambda: "express" if data["n"] > 1 else "standard")
        if branch == "express":
            return {"ship": branch, "courier": ctx.step("courier", lambda: {"eta": 1})}
        return {"ship": branch, "post": ctx.step("post", lambda: {"eta": 5})}
    return built, twin


def _refine(fctx: FlowContext, value: Any) -> Any:
    return {"draft": value if isinstance(value, int) else value["n"]}


def _loop() -> tuple[Flow, Callable[[Context, Any], Any]]:
    built = flow("equiv").loop("refine", _refine, max_iterations=5,
                               until=lambda result, i: result["draft"] >= 8,
                               feedback=lambda result: result["draft"] * 2)

    def twin(ctx: Context, data: Any) -> Any:
        value: Any = data
        for i in range(1, 6):
            result = ctx.step(f"refine#{i}", lambda v=value: {
                "draft": v if isinstance(v, int) else v["n"]})
            if result["draft"] >= 8:
                return {"refine": result}
            value = result["draft"] * 2
        raise AssertionError("not reached")
    return built, twin


def _sleep() -> tuple[Flow, Callable[[Context, Any], Any]]:
    built = flow("equiv").sleep("cool-off", timedelta(minutes=5)).step("after", lambda f: 1)

    def twin(ctx: Context, data: Any) -> Any:
        ctx.sleep("cool-off", timedelta(minutes=5))
        return {"after": ctx.step("after", lambda: 1)}
    return built, twin


def _signal() -> tuple[Flow, Callable[[Context, Any], Any]]:
    built = flow("equiv").wait_for_signal("approval", timeout=timedelta(hours=1))

    def twin(ctx: Context, data: Any) -> Any:
        return {"approval": ctx.wait_for_signal("approval", timeout=timedelta(hours=1))}
    return built, twin


def _child() -> tuple[Flow, Callable[[Context, Any], Any]]:
    built = flow("equiv").child("kid", "greet", map_input=lambda f: {"who": f.input["n"]})

    def twin(ctx: Context, data: Any) -> Any:
        return {"kid": ctx.child("kid", "greet", {"who": data["n"]})}
    return built, twin


def _agent_fn() -> Any:
    info = current_step()
    if info.resume_data is None:
        return Suspend(state={"asked": 1}, pending=[{"tool": "search"}])
    return {"state": info.suspended_state, "tools": info.resume_data}


def _agent() -> tuple[Flow, Callable[[Context, Any], Any]]:
    built = flow("equiv").step("agent", lambda f: _agent_fn())

    def twin(ctx: Context, data: Any) -> Any:
        return {"agent": ctx.step("agent", _agent_fn)}
    return built, twin


def _nothing(engine: Engine, clock: FakeClock) -> None:
    clock.advance(timedelta(seconds=5))  # a retry's back-off, where there is one


def _later(engine: Engine, clock: FakeClock) -> None:
    clock.advance(timedelta(minutes=5))


def _approve(engine: Engine, clock: FakeClock) -> None:
    engine.signal(RUN, "approval", {"ok": True})


def _answer(engine: Engine, clock: FakeClock) -> None:
    wp = engine.state(RUN).waitpoint
    assert wp is not None and wp.token_id is not None
    engine.resolve_token(RUN, wp.token_id, {"hits": 3})


@dataclass(frozen=True)
class Case:
    make: Callable[[], tuple[Flow, Callable[[Context, Any], Any]]]
    drive: Driver = _nothing


CASES = {"step": Case(_step), "parallel": Case(_parallel), "route": Case(_route),
         "loop": Case(_loop), "sleep": Case(_sleep, _later), "signal": Case(_signal, _approve),
         "child": Case(_child), "agent": Case(_agent, _answer)}


def _registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()
    registry.register("greet", lambda ctx, data: ctx.step("hello", lambda: f"hi {data}"))
    return registry


def _run(registry: WorkflowRegistry, drive: Driver) -> tuple[Engine, list[tuple[str, Any]]]:
    clock = FakeClock()
    engine = open_test_engine(registry=registry, clock=clock)
    engine.trigger("equiv", {"n": 2}, run_id=RUN)
    for _ in range(3):
        if run_to_completion(engine, RUN).is_terminal:
            break
        drive(engine, clock)
    assert engine.state(RUN).status is RunStatus.COMPLETED
    return engine, [(r.type, _comparable(r.event.model_dump(mode="json")))
                    for r in engine.history(RUN)]


def _comparable(data: Any) -> Any:
    """Event data without the worker's id and the tracebacks (which quote the lines of
    the two definitions' own source)."""
    if isinstance(data, dict):
        return {k: _comparable(v) for k, v in data.items() if k not in ("worker", "traceback")}
    return data


@pytest.mark.parametrize("construct", list(CASES))
def test_a_flow_writes_the_history_of_its_hand_written_twin(construct: str) -> None:
    built, twin = CASES[construct].make()
    flows, code = _registry(), _registry()
    built.register(flows)
    code.register("equiv", twin)
    flow_engine, flow_history = _run(flows, CASES[construct].drive)
    code_engine, code_history = _run(code, CASES[construct].drive)
    assert flow_history == code_history
    assert flow_engine.state(RUN).result == code_engine.state(RUN).result
    assert Replayer(code).replay(export_history(flow_engine, RUN)).ok
    assert Replayer(flows).replay(export_history(code_engine, RUN)).ok
