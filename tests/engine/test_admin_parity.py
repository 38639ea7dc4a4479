"""Admin parity: `rerun_safety="unsafe"` workflows need a confirmed rerun, and a parent
that ran elsewhere can be resumed here from explicit seeds; both backends."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerflow import Context, Engine, WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import RerunNotConfirmed, UnknownRun
from ledgerflow.domain.lifecycle import RunStatus


def _charge(ctx: Context, data: Any) -> Any:
    return ctx.step("charge", lambda: {"charged": data["amount"]})


def test_an_unsafe_workflow_reruns_only_when_confirmed(engine: Engine,
                                                       registry: WorkflowRegistry) -> None:
    registry.register("charge", _charge, rerun_safety="unsafe")
    registry.register("safe-charge", _charge)
    run = engine.trigger("charge", {"amount": 5}).run_id
    engine.run_due()
    events_before = len(engine.store.read_all(0, 10_000))
    with pytest.raises(RerunNotConfirmed) as refused:
        engine.rerun(run)
    assert refused.value.http_status == 409 and "rerun_safety='unsafe'" in str(refused.value)
    assert refused.value.details()["reason"] == "rerun_safety=unsafe"
    assert len(engine.store.read_all(0, 10_000)) == events_before  # nothing appended
    again = engine.rerun(run, confirm=True)
    assert engine.state(again).status is RunStatus.PENDING
    safe = engine.trigger("safe-charge", {"amount": 1}).run_id
    assert engine.rerun(safe)  # the default needs no confirmation
    assert registry.describe()[0].rerun_safety == "unsafe"
    with pytest.raises(ValueError, match="rerun_safety"):
        registry.register("typo", _charge, rerun_safety="maybe")  # type: ignore[arg-type]


def test_a_parent_stored_elsewhere_is_resumed_from_its_seeds(engine: Engine,
                                                             registry: WorkflowRegistry) -> None:
    ran: list[str] = []

    def effect(name: str, result: str) -> str:
        ran.append(name)
        return result

    @registry.workflow("two-steps")
    def two(ctx: Context, data: Any) -> Any:
        first = ctx.step("first", effect, "first", "fresh")
        second = ctx.step("second", effect, "second", f"after {first}")
        return {"first": first, "second": second}

    with pytest.raises(UnknownRun):  # without all three, an unknown parent is unknown
        engine.resume("ran-in-staging", workflow_id="two-steps", resume_from_step="second")
    new = engine.resume("ran-in-staging", workflow_id="two-steps", resume_from_step="second",
                        seed_results={"first": "seeded"}, input={"n": 1},
                        tenant_meta={"tenantId": "acme"})
    created = engine.history(new)[0].event
    assert isinstance(created, ev.RunCreated)
    assert (created.resumed_from, created.resume_from_step, created.seed_results) == (
        "ran-in-staging", "second", {"first": "seeded"})
    assert created.input == {"n": 1} and created.tenant_meta == {"tenantId": "acme"}
    engine.run_due()
    state = engine.state(new)
    assert state.status is RunStatus.COMPLETED
    assert state.result == {"first": "seeded", "second": "after seeded"}
    assert ran == ["second"]  # the seeded step did not run
