"""A step result (or a run result) larger than the store's event limit fails clearly:
the step fails with the store's own error (not retried; the workflow may catch it),
never a crashed worker nor a silent gap in the run's history."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Engine, StepFailed, WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore import EventStore
from ledgerflow.testing import FakeClock

LIMIT = 4_000


@pytest.fixture
def limited(any_engine: SAEngine, registry: WorkflowRegistry, clock: FakeClock) -> Engine:
    """An engine whose store refuses events over `LIMIT` bytes."""
    return Engine(EventStore(any_engine, clock=clock, max_event_bytes=LIMIT), registry,
                  clock=clock)


def test_a_step_result_over_the_limit_fails_the_step_and_the_workflow_may_catch_it(
        limited: Engine, registry: WorkflowRegistry) -> None:
    calls: list[int] = []

    def big() -> str:
        calls.append(1)
        return "x" * (LIMIT + 1)

    @registry.workflow("big-step")
    def big_step(ctx: Context, data: Any) -> Any:
        try:
            ctx.step("fetch", big, max_attempts=3)
        except StepFailed as failure:
            return {"failed": failure.step_id, "type": failure.error.type,
                    "message": failure.error.message}
        return "stored"

    run = limited.trigger("big-step").run_id
    assert limited.run_due().completed == 1
    state = limited.state(run)
    assert state.status is RunStatus.COMPLETED
    assert state.result["failed"] == "fetch" and state.result["type"] == "EventTooLarge"
    assert f"StepCompleted for stream {run!r}" in state.result["message"]
    assert f"over the event size limit of {LIMIT} bytes" in state.result["message"]
    assert calls == [1]  # not retried: the same result would be refused again
    [failed] = [r.event for r in limited.history(run) if isinstance(r.event, ev.StepFailed)]
    assert failed.final and failed.error.type == "EventTooLarge"
    assert not [r for r in limited.history(run) if r.type == "StepCompleted"]


def test_an_uncaught_oversized_step_or_run_result_fails_the_run(
        limited: Engine, registry: WorkflowRegistry) -> None:
    registry.register("big-branch", lambda ctx, data: ctx.parallel(
        "both", {"small": lambda: 1, "large": lambda: "y" * LIMIT}))
    registry.register("big-result", lambda ctx, data: "z" * LIMIT)
    branch = limited.trigger("big-branch").run_id
    result = limited.trigger("big-result").run_id
    assert limited.run_due().failed == 2
    failed = limited.state(branch)
    assert failed.status is RunStatus.FAILED and failed.error is not None
    assert failed.error.step_id == "both/large"
    assert failed.error.details["cause"]["type"] == "EventTooLarge"
    steps = {r.event.step_id: r.type for r in limited.history(branch)
             if isinstance(r.event, ev.StepCompleted | ev.StepFailed)}
    assert steps == {"both/small": "StepCompleted", "both/large": "StepFailed"}
    too_large = limited.state(result)
    assert too_large.status is RunStatus.FAILED and too_large.error is not None
    assert too_large.error.type == "EventTooLarge" and "RunCompleted" in \
        too_large.error.message
