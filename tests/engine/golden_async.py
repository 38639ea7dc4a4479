"""Async workflows whose exported histories are kept under tests/golden/, and the async
twin of `golden_workflows.order_fulfil` (it must replay the sync workflow's history: a
history does not say whether its code was sync or async).

Regenerate golden-async.json (only on purpose: it pins today's history format) with
`python -m tests.engine.golden_async tests/golden`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from ledgerflow import AsyncContext, StepFailed, WorkflowRegistry
from ledgerflow.testing import FakeClock, export_history, open_test_engine, run_to_completion

registry = WorkflowRegistry()


async def _reserve(order: int) -> dict[str, str]:
    await asyncio.sleep(0)
    return {"reservation": f"R-{order}"}


async def _invoice() -> str:
    await asyncio.sleep(0)
    return "INV-1"


@registry.workflow("order-fulfil", version="1")
async def order_fulfil(ctx: AsyncContext, data: dict[str, Any]) -> dict[str, Any]:
    reservation = await ctx.step("reserve", _reserve, data["order"])
    await ctx.sleep("cool-off", timedelta(minutes=5))
    approval = await ctx.wait_for_signal("approval", timeout=timedelta(hours=1))
    stamp = ctx.now().isoformat()
    docs = await ctx.parallel("docs", {"invoice": _invoice, "email": lambda: {"sent": True}})
    return {"reservation": reservation, "approval": approval, "stamp": stamp, "docs": docs}


async def _decline() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("card declined")


async def _release(hold: dict[str, int]) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"released": hold["hold"]}


@registry.workflow("booking-async", version="1")
async def booking(ctx: AsyncContext, data: dict[str, Any]) -> dict[str, Any]:
    hold = await ctx.step("hold", lambda: {"hold": 1}, compensate=_release)
    try:
        await ctx.step("charge", _decline, max_attempts=2, initial_delay=timedelta(seconds=30))
    except StepFailed:
        token = await ctx.wait_for_token("manual-payment")
        child = await ctx.child("receipt", "order-fulfil", {"order": data["order"]})
        return {"hold": hold, "token": token, "child": child["reservation"]}
    return {"unreachable": True}


def generate(out: Path) -> None:
    clock = FakeClock()
    engine = open_test_engine(registry=registry, clock=clock)
    run = engine.trigger("booking-async", {"order": 7}, run_id="golden-async").run_id
    run_to_completion(engine, run)
    clock.advance(timedelta(seconds=31))
    state = run_to_completion(engine, run)
    assert state.waitpoint is not None and state.waitpoint.token_id is not None
    engine.resolve_token(run, state.waitpoint.token_id, {"paid": "by phone"})
    run_to_completion(engine, run)
    (child,) = engine.state(run).children
    clock.advance(timedelta(minutes=6))
    run_to_completion(engine, child)
    engine.signal(child, "approval", {"by": "ops"})
    state = run_to_completion(engine, run)
    assert state.status.value == "completed", state
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{run}.json").write_text(
        json.dumps(export_history(engine, run), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    generate(Path(sys.argv[1]))
