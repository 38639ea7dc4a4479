"""The builder: what handlers see, loops and routes at run time, resume, and the
definitions it refuses at registration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import Flow, FlowContext, WorkflowRegistry, flow
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.flows import FlowDefinitionError
from ledgerflow.testing import FakeClock, open_test_engine, run_to_completion


def _run(built: Flow, data: Any = None) -> tuple[Any, str]:
    registry = WorkflowRegistry()
    built.register(registry)
    engine = open_test_engine(registry=registry, clock=FakeClock())
    run = engine.trigger(built.name, data).run_id
    return engine, run


def test_handlers_see_the_input_and_the_results_so_far() -> None:
    seen: list[tuple[Any, dict[str, Any]]] = []

    def look(fctx: FlowContext) -> int:
        seen.append((fctx.input, dict(fctx.results)))
        return len(seen)

    engine, run = _run(flow("looker").step("one", look).step("two", look), {"x": 1})
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED and state.result == {"one": 1, "two": 2}
    assert seen == [({"x": 1}, {}), ({"x": 1}, {"one": 1})]


def test_a_loop_feeds_each_result_back_until_it_holds() -> None:
    values: list[Any] = []

    def grow(fctx: FlowContext, value: Any) -> int:
        values.append(value)
        return int(value) + 1

    built = flow("grower").loop("grow", grow, max_iterations=5, until=lambda r, i: r >= 3,
                                feedback=lambda r: r * 10)
    engine, run = _run(built, 0)
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.COMPLETED and state.result == {"grow": 11}
    assert values == [0, 10]
    steps = [r.event.step_id for r in engine.history(run) if r.type == "StepCompleted"]
    assert steps == ["grow#1", "grow#2"]


def test_a_loop_reaching_max_iterations_fails_saying_so() -> None:
    built = flow("stubborn").loop("try", lambda fctx, v: {"ok": False}, max_iterations=3,
                                  until=lambda r, i: r["ok"])
    engine, run = _run(built)
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert state.error.step_id == "try"
    assert "max_iterations=3" in state.error.message
    assert state.error.details["cause"]["type"] == "LoopExhausted"
    steps = [r.event.step_id for r in engine.history(run) if r.type == "StepCompleted"]
    assert steps == ["try#1", "try#2", "try#3"]  # every iteration journaled, then the failure


def test_a_route_resolving_to_no_branch_fails_without_retrying() -> None:
    calls: list[int] = []

    def resolver(fctx: FlowContext) -> str:
        calls.append(1)
        return "teleport"

    built = flow("router").route("ship", resolver, {"post": flow("post").step("p", lambda f: 1)},
                                 max_attempts=3)
    engine, run = _run(built)
    state = run_to_completion(engine, run)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert "'teleport', which is not one of its branches ('post')" in state.error.message
    assert calls == [1]


def test_a_failed_flow_resumes_from_the_step_that_failed() -> None:
    attempts: list[int] = []

    def pay(fctx: FlowContext) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("card declined")
        return f"paid {fctx.results['reserve']}"

    built = flow("shop").step("reserve", lambda f: "seat 1").step("pay", pay)
    engine, run = _run(built)
    assert run_to_completion(engine, run).status is RunStatus.FAILED
    resumed = engine.resume(run)
    state = run_to_completion(engine, resumed)
    assert state.status is RunStatus.COMPLETED
    assert state.result == {"reserve": "seat 1", "pay": "paid seat 1"}


def test_the_decorator_form_registers_like_workflow() -> None:
    registry = WorkflowRegistry()

    @flow("decorated", version="2", registry=registry)
    def decorated(f: Flow) -> None:
        f.step("only", lambda fctx: "done").sleep("nap", timedelta(seconds=1))

    assert isinstance(decorated, Flow)
    assert registry.get("decorated").version == "2"
    assert [n["id"] for n in decorated.graph()["nodes"]] == [
        "__start__", "only", "nap", "__end__"]


def _problems(built: Flow) -> str:
    registry = WorkflowRegistry()
    with pytest.raises(FlowDefinitionError) as caught:
        built.register(registry)
    assert registry.names() == []  # nothing registered
    return str(caught.value)


def test_duplicate_step_names_fail_at_registration() -> None:
    top = _problems(flow("dup").step("a", lambda f: 1).sleep("a", timedelta(seconds=1)))
    assert "duplicate step name 'a'" in top
    nested = flow("nested").step("notify", lambda f: 1).route(
        "ship", lambda f: "x", {"x": flow("x").step("notify", lambda f: 2)})
    message = _problems(nested)
    assert "duplicate step name 'notify' (in route 'ship', branch 'x')" in message
    assert "first used at the top" in message


def test_a_route_branch_naming_no_sub_flow_fails_at_registration() -> None:
    bad: Any = {"express": "express-flow", "post": flow("post").step("p", lambda f: 1)}
    message = _problems(flow("router").route("ship", lambda f: "post", bad))
    assert "route 'ship': branch 'express' names no sub-flow (got str" in message


def test_a_loop_without_max_iterations_fails_at_registration() -> None:
    message = _problems(flow("forever").loop("spin", lambda f, v: v, until=lambda r, i: False))
    assert "loop 'spin' needs max_iterations=" in message
    message = _problems(flow("no-until").loop("spin", lambda f, v: v, max_iterations=2))
    assert "loop 'spin' needs until=" in message


def test_every_problem_is_listed_at_once() -> None:
    built = (flow("messy").step("a/b", lambda f: 1, max_attempt=3)
             .parallel("fan", {})
             .child("kid", ""))
    message = _problems(built)
    for expected in ("'a/b' is not a valid name", "unknown option(s) max_attempt",
                     "parallel 'fan' has no branches", "child 'kid': workflow must be"):
        assert expected in message
    assert "it has no nodes" in _problems(flow("empty"))
