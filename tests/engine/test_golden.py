"""Golden histories: exported runs replayed against current code (Temporal's replayer test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import Context, WorkflowRegistry
from ledgerflow.testing import FakeClock, Replayer, export_history, open_test_engine
from tests.engine.golden_workflows import registry

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("name", ["golden-order", "golden-saga"])
def test_golden_histories_replay_without_divergence(name: str) -> None:
    report = Replayer(registry).replay(GOLDEN / f"{name}.json")
    assert report.divergence is None
    assert report.replayed_ops >= 3


def test_replayer_reports_the_first_divergence() -> None:
    changed = WorkflowRegistry()

    @changed.workflow("order-fulfil", version="1")
    def reordered(ctx: Context, data: dict[str, Any]) -> Any:
        ctx.sleep("cool-off", __import__("datetime").timedelta(minutes=5))
        return ctx.step("reserve", lambda: None)

    report = Replayer(changed).replay(GOLDEN / "golden-order.json")
    assert report.divergence is not None
    assert "'cool-off'" in report.divergence and "'reserve'" in report.divergence


def test_replayer_reports_removed_steps_and_changed_results() -> None:
    changed = WorkflowRegistry()
    changed.register("refund-saga", lambda ctx, data: {"different": True})
    history = json.loads((GOLDEN / "golden-saga.json").read_text())
    report = Replayer(changed).replay(history)
    assert report.divergence is not None and "'hold'" in report.divergence

    @changed.workflow("order-fulfil", version="1")
    def other_result(ctx: Context, data: dict[str, Any]) -> Any:
        from tests.engine.golden_workflows import order_fulfil
        return {**order_fulfil(ctx, data), "extra": 1}

    report = Replayer(changed).replay(GOLDEN / "golden-order.json")
    assert report.divergence is not None and "'extra'" in report.divergence


def test_export_round_trips_through_the_replayer(tmp_path: Path) -> None:
    local = WorkflowRegistry()

    @local.workflow("ids")
    def ids(ctx: Context, data: Any) -> Any:
        return {"id": ctx.uuid(), "at": ctx.now().isoformat()}

    engine = open_test_engine(f"sqlite:///{tmp_path}/x.db", registry=local, clock=FakeClock())
    run = engine.trigger("ids", None).run_id
    engine.run_due()
    exported = export_history(engine, run)
    assert Replayer(local).replay(exported).ok


def test_an_async_workflows_golden_history_replays_without_divergence() -> None:
    from tests.engine.golden_async import registry as async_registry

    report = Replayer(async_registry).replay(GOLDEN / "golden-async.json")
    assert report.divergence is None
    assert report.replayed_ops == 4  # hold, charge, the token wait, the child


def test_a_history_does_not_say_whether_its_code_was_sync_or_async() -> None:
    """The sync order workflow's history replays against its async twin, unchanged."""
    from tests.engine.golden_async import registry as async_registry

    report = Replayer(async_registry).replay(GOLDEN / "golden-order.json")
    assert report.divergence is None and report.replayed_ops >= 3


def test_the_replayer_reports_an_async_workflows_divergence() -> None:
    changed = WorkflowRegistry()

    @changed.workflow("booking-async", version="1")
    async def renamed(ctx: Any, data: dict[str, Any]) -> Any:
        await ctx.step("hold", lambda: {"hold": 1})
        await ctx.step("charge-card", lambda: None)  # was "charge"
        return None

    report = Replayer(changed).replay(GOLDEN / "golden-async.json")
    assert report.divergence is not None
    assert "'charge-card'" in report.divergence and "'charge'" in report.divergence
