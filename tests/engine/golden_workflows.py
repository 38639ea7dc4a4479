"""Workflows whose exported histories are kept under tests/golden/.

Regenerate (only on purpose: the files pin today's history format) with
`python -m tests.engine.golden_workflows tests/golden`.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from ledgerflow import Context, StepFailed, WorkflowRegistry
from ledgerflow.testing import FakeClock, export_history, open_test_engine, run_to_completion

registry = WorkflowRegistry()


@registry.workflow("order-fulfil", version="1")
def order_fulfil(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    reservation = ctx.step("reserve", lambda: {"reservation": f"R-{data['order']}"})
    ctx.sleep("cool-off", timedelta(minutes=5))
    approval = ctx.wait_for_signal("approval", timeout=timedelta(hours=1))
    stamp = ctx.now().isoformat()
    docs = ctx.parallel("docs", {"invoice": lambda: "INV-1", "email": lambda: {"sent": True}})
    return {"reservation": reservation, "approval": approval, "stamp": stamp, "docs": docs}


@registry.workflow("refund-saga", version="1")
def refund_saga(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    ctx.step("hold", lambda: {"hold": 1}, compensate=lambda r: {"released": r["hold"]})
    try:
        ctx.step("charge", _decline, max_attempts=2, initial_delay=timedelta(seconds=30))
    except StepFailed:
        ctx.step("refund", lambda: {"refunded": data["amount"]},
                 compensate=lambda r: {"reverted": True})
        ctx.step("notify", _decline)
    return {"unreachable": True}


def _decline() -> None:
    raise RuntimeError("card declined")


def generate(out: Path) -> None:
    clock = FakeClock()
    engine = open_test_engine(registry=registry, clock=clock)
    order = engine.trigger("order-fulfil", {"order": 42}, run_id="golden-order",
                           tenant_meta={"tenantId": "acme"}).run_id
    run_to_completion(engine, order)
    clock.advance(timedelta(minutes=6))
    run_to_completion(engine, order)
    engine.signal(order, "approval", {"by": "ops"})
    run_to_completion(engine, order)
    saga = engine.trigger("refund-saga", {"amount": 10}, run_id="golden-saga").run_id
    run_to_completion(engine, saga)
    clock.advance(timedelta(seconds=31))
    run_to_completion(engine, saga)
    out.mkdir(parents=True, exist_ok=True)
    for run_id in (order, saga):
        (out / f"{run_id}.json").write_text(
            json.dumps(export_history(engine, run_id), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    generate(Path(sys.argv[1]))
