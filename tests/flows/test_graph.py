"""A flow's static graph (JSON and Mermaid) and a run's journal laid over it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ledgerflow import Branch, Flow, WorkflowRegistry, flow
from ledgerflow.flows import history_entries, mermaid, overlay
from ledgerflow.testing import (
    FakeClock,
    open_test_app,
    run_to_completion,
    step_journal,
)


def _checkout() -> Flow:
    return (flow("checkout", version="3")
            .step("reserve", lambda f: "R-1", max_attempts=3, compensate=lambda r: None)
            .parallel("docs", {"invoice": lambda f: "INV",
                               "email": Branch(lambda f: "sent", compensate=lambda r: None)},
                      max_concurrency=2)
            .route("ship", lambda f: "express",
                   {"express": flow("express").step("courier", lambda f: 1),
                    "pickup": flow("pickup")})
            .loop("refine", lambda f, v: v, max_iterations=3, until=lambda r, i: True)
            .sleep("cool-off", timedelta(minutes=5))
            .wait_for_signal("approval", timeout=timedelta(hours=1))
            .child("remind", "send-reminder"))


def _edges(graph: dict[str, Any]) -> set[tuple[str, str, str, str | None]]:
    return {(e["source"], e["target"], e["kind"], e["label"]) for e in graph["edges"]}


def test_the_graph_has_branches_back_edges_and_fan_out_fan_in() -> None:
    graph = _checkout().graph()
    assert (graph["workflow"], graph["version"]) == ("checkout", "3")
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds == {"__start__": "start", "reserve": "step", "docs": "parallel",
                     "docs/invoice": "branch", "docs/email": "branch", "ship": "route",
                     "courier": "step", "refine": "loop", "cool-off": "sleep",
                     "approval": "signal", "remind": "child", "__end__": "end"}
    assert _edges(graph) == {
        ("__start__", "reserve", "next", None), ("reserve", "docs", "next", None),
        ("docs", "docs/invoice", "fanout", None), ("docs", "docs/email", "fanout", None),
        ("docs/invoice", "ship", "fanin", None), ("docs/email", "ship", "fanin", None),
        ("ship", "courier", "branch", "express"), ("courier", "refine", "next", None),
        ("ship", "refine", "branch", "pickup"),  # an empty branch goes straight on
        ("refine", "refine", "back", "until not met"), ("refine", "cool-off", "next", None),
        ("cool-off", "approval", "next", None), ("approval", "remind", "next", None),
        ("remind", "__end__", "next", None)}
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["reserve"]["maxAttempts"] == 3 and nodes["reserve"]["compensate"] is True
    assert nodes["docs"]["maxConcurrency"] == 2 and nodes["docs/email"]["compensate"] is True
    assert nodes["refine"]["maxIterations"] == 3 and nodes["cool-off"]["seconds"] == 300
    assert nodes["approval"]["timeoutSeconds"] == 3600
    assert nodes["remind"]["workflow"] == "send-reminder"


def test_the_mermaid_text_draws_every_node_and_edge() -> None:
    built = (flow("small").step("a", lambda f: 1)
             .route("pick", lambda f: "x", {"x": flow("x").step("b", lambda f: 2),
                                            "y": flow("y").step("c", lambda f: 3)})
             .loop("again", lambda f, v: v, max_iterations=2, until=lambda r, i: True))
    assert built.mermaid() == """flowchart TD
    n0(["start"])
    n1["a"]
    n2{"pick (route)"}
    n3["b"]
    n4["c"]
    n5[["again (loop, max 2)"]]
    n6(["end"])
    n0 --> n1
    n1 --> n2
    n2 -->|"x"| n3
    n2 -->|"y"| n4
    n3 --> n5
    n4 --> n5
    n5 -.->|"until not met"| n5
    n5 --> n6
"""


def _parked_app(fail: bool) -> tuple[Any, str, Flow]:
    def pay(f: Any) -> str:
        if fail:
            raise RuntimeError("declined")
        return "paid"

    built = (flow("shop").loop("draft", lambda f, v: {"n": 1}, max_iterations=3,
                               until=lambda r, i: i == 2)
             .parallel("docs", {"a": lambda f: 1, "b": lambda f: 2})
             .step("pay", pay)
             .sleep("cool-off", timedelta(minutes=5))
             .step("ship", lambda f: "shipped"))
    registry = WorkflowRegistry()
    built.register(registry)
    app = open_test_app(registry=registry, clock=FakeClock())
    run = app.engine.trigger("shop", None).run_id
    run_to_completion(app.engine, run)
    return app, run, built


def _statuses(graph: dict[str, Any]) -> dict[str, str | None]:
    return {n["id"]: n["status"] for n in graph["nodes"]}


def test_the_step_journal_overlaid_marks_what_ran_and_failed() -> None:
    app, run, built = _parked_app(fail=True)
    try:
        marked = overlay(built.graph(), step_journal(app, run))
    finally:
        app.close()
    statuses = _statuses(marked)
    assert statuses["draft"] == "ran"  # its iterations draft#1, draft#2 mark the loop
    assert (statuses["docs"], statuses["docs/a"], statuses["docs/b"]) == ("ran", "ran", "ran")
    assert statuses["pay"] == "failed"
    assert statuses["cool-off"] is None and statuses["ship"] is None
    assert "classDef failed" in mermaid(marked) and "classDef ran" in mermaid(marked)


def test_the_history_overlaid_marks_waits_too() -> None:
    app, run, built = _parked_app(fail=False)
    try:
        history = app.engine.history(run)
    finally:
        app.close()
    statuses = _statuses(overlay(built.graph(), history_entries(history)))
    assert statuses["pay"] == "ran" and statuses["cool-off"] == "waiting"
    assert statuses["ship"] is None and statuses["__start__"] is None
    wire = [{"stepId": "pay", "status": "completed"}, {"stepId": "docs/a", "status": "retrying"}]
    partial = _statuses(overlay(built.graph(), wire))  # the HTTP journal's entries
    assert (partial["pay"], partial["docs"]) == ("ran", "waiting")
