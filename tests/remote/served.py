"""The workflows a test handler serves (`uvicorn tests.remote.handler_app:app`). Side
effects are appended, one JSON line each, to the file `LEDGERFLOW_TEST_EFFECTS` names,
so a test counts what ran where (the handler is another process)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import threading
import time
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

import ledgerflow
from ledgerflow import AsyncContext, Context, WorkflowRegistry, current_step

registry = WorkflowRegistry()
_lock = threading.Lock()


def effect(what: str, **fields: Any) -> None:
    """Note that `what` ran (in the effects file)."""
    path = os.environ.get("LEDGERFLOW_TEST_EFFECTS")
    if path:
        with _lock, open(path, "a") as out:
            out.write(json.dumps({"effect": what, **fields}) + "\n")


def noted(what: str, value: Any, **fields: Any) -> Any:
    """`effect(what)`, then `value`: a step that leaves a trace."""
    effect(what, **fields)
    return value


@registry.workflow("booking")
def booking(ctx: Context, order: dict[str, Any]) -> dict[str, Any]:
    """Reserve, charge, confirm."""
    seat = ctx.step("reserve", noted, "reserve", f"seat-{order['id']}")
    paid = ctx.step("charge", noted, "charge", order["amount"])
    ctx.stream("progress", {"done": 2})
    note = ctx.step("confirm", noted, "confirm", "ok")
    return {"seat": seat, "paid": paid, "note": note, "when": ctx.now().year > 2000}


_flaky_calls: dict[str, int] = {}


def flaky(key: str, failures: int) -> str:
    count = _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    effect("flaky", key=key, call=count)
    if count <= failures:
        raise ConnectionError(f"flaky {key}: call {count}")
    return f"{key} ok after {count}"


@registry.workflow("retries")
def retries(ctx: Context, data: dict[str, Any]) -> str:
    return str(ctx.step("flaky", flaky, data["key"], data["failures"], max_attempts=3,
                        initial_delay=timedelta(milliseconds=300)))


@registry.workflow("doomed")
def doomed(ctx: Context, data: Any) -> str:
    return str(ctx.step("never", flaky, "doomed", 99, max_attempts=2,
                        initial_delay=timedelta(0)))


@registry.workflow("waits")
def waits(ctx: Context, data: Any) -> dict[str, Any]:
    ctx.sleep("nap", timedelta(milliseconds=500))
    approved = ctx.wait_for_signal("approve")
    try:
        late = ctx.wait_for_signal("never", timeout=timedelta(milliseconds=300))
    except ledgerflow.WaitTimeout:
        late = "timed out"
    return {"approved": approved, "late": late}


def _slow(seconds: float) -> str:
    info = current_step()
    effect("slow", attempt=info.attempt)
    info.cancelled.wait(seconds)
    return "slept"


@registry.workflow("timeouts")
def timeouts(ctx: Context, data: Any) -> str:
    try:
        return str(ctx.step("slow", _slow, 5.0, timeout=timedelta(milliseconds=200),
                            timeout_grace=timedelta(milliseconds=100)))
    except ledgerflow.StepFailed as error:
        return f"gave up: {error.error.type}"


@registry.workflow("fanout")
def fanout(ctx: Context, data: Any) -> dict[str, Any]:
    return ctx.parallel("legs", {name: functools.partial(noted, "leg", name.upper(), name=name)
                                 for name in ("a", "b", "c")})


@registry.workflow("parent")
def parent(ctx: Context, data: Any) -> Any:
    first = ctx.step("first", lambda: 1)
    child = ctx.child("kid", "booking", {"id": "k", "amount": 3})
    return {"first": first, "child": child}


@registry.workflow("saga")
def saga(ctx: Context, data: Any) -> Any:
    ctx.step("book", noted, "book", "b1",
             compensate=lambda r: noted("unbook", "undone", result=r))
    ctx.step("pay", noted, "pay", "p1",
             compensate=lambda r: noted("refund", "refunded", result=r))
    if data.get("fail"):
        ctx.step("ship", flaky, "ship", 99)
    ctx.wait_for_signal("go")
    return "shipped"


def _patient(seconds: float) -> str:
    info = current_step()
    effect("patient-start")
    noticed = info.cancelled.wait(seconds)
    effect("patient-end", cancelled=noticed)
    return "waited"


@registry.workflow("patient")
def patient(ctx: Context, data: Any) -> str:
    return str(ctx.step("wait", _patient, data["seconds"]))


async def _async_reserve(sku: str) -> str:
    await asyncio.sleep(0.01)
    effect("async-reserve")
    return f"reserved {sku}"


@registry.workflow("asyncbook")
async def asyncbook(ctx: AsyncContext, data: dict[str, Any]) -> dict[str, Any]:
    seat = await ctx.step("reserve", _async_reserve, data["sku"])
    await ctx.sleep("nap", timedelta(milliseconds=200))
    paid = await ctx.step("charge", noted, "async-charge", data["amount"])
    return {"seat": seat, "paid": paid}


def _stubborn(seconds: float) -> str:
    time.sleep(seconds)  # does not look at current_step().cancelled
    effect("stubborn-returned")
    return "too late"


@registry.workflow("late")
def late(ctx: Context, data: Any) -> str:
    with contextlib.suppress(ledgerflow.StepFailed):
        ctx.step("stubborn", _stubborn, 0.8, timeout=timedelta(milliseconds=200),
                 timeout_grace=timedelta(milliseconds=100))
    ctx.sleep("after", timedelta(seconds=1.5))  # the next request takes the late result
    return "done"


def _long(seconds: float) -> str:
    effect("long-start")
    time.sleep(seconds)
    return "done"


@registry.workflow("slowpoke")
def slowpoke(ctx: Context, data: Any) -> str:
    ctx.step("before", noted, "before", 1)
    ctx.step("long", _long, data["seconds"], max_attempts=2,
             initial_delay=timedelta(milliseconds=100))  # a lost request is an attempt
    return "finished"


def _drowsy(key: str, seconds: float, times: int) -> str:
    """Sleeps `seconds` on its first `times` calls with `key`, then returns at once."""
    count = _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    effect("drowsy", key=key, call=count, attempt=current_step().attempt)
    if count <= times:
        time.sleep(seconds)
    return f"{key} awake after {count}"


@registry.workflow("drowsy")
def drowsy(ctx: Context, data: dict[str, Any]) -> str:
    ctx.step("first", noted, "drowsy-first", data["key"])
    return str(ctx.step("doze", _drowsy, data["key"], data["seconds"], data["times"],
                        max_attempts=3, initial_delay=timedelta(milliseconds=200)))



def _streams_until_told(key: str) -> str:
    """Streams a chunk, waits until the test writes `<effects>.go-<key>`, streams another."""
    step = current_step()
    step.stream("tokens", {"token": "first"})
    flag = f"{os.environ.get('LEDGERFLOW_TEST_EFFECTS', '')}.go-{key}"
    deadline = time.monotonic() + 30
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.02)
    step.stream("tokens", {"token": "second"})
    return "told" if os.path.exists(flag) else "never told"


@registry.workflow("live")
def live(ctx: Context, data: dict[str, Any]) -> str:
    return str(ctx.step("speak", _streams_until_told, data["key"]))


def _chatty_drowsy(key: str, seconds: float, times: int) -> str:
    """Streams a chunk, then sleeps `seconds` on its first `times` calls with `key`."""
    current_step().stream("tokens", {"token": f"attempt {current_step().attempt}"})
    return _drowsy(key, seconds, times)


@registry.workflow("chatty-drowsy")
def chatty_drowsy(ctx: Context, data: dict[str, Any]) -> str:
    return str(ctx.step("doze", _chatty_drowsy, data["key"], data["seconds"], data["times"],
                        max_attempts=3, initial_delay=timedelta(milliseconds=200)))


class Order(BaseModel):
    id: int
    amount: float


@registry.workflow("typed-order", input=Order)
def typed_order(ctx: Context, order: Order) -> dict[str, Any]:
    return {"id": order.id, "amount": order.amount}


async def _async_streams_until_told(key: str) -> str:
    """As `_streams_until_told`, as an `async def` step on the handler's loop."""
    step = current_step()
    step.stream("tokens", {"token": "first"})
    flag = f"{os.environ.get('LEDGERFLOW_TEST_EFFECTS', '')}.go-{key}"
    deadline = time.monotonic() + 30
    while not os.path.exists(flag) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    step.stream("tokens", {"token": "second"})
    return "told" if os.path.exists(flag) else "never told"


@registry.workflow("async-live")
async def async_live(ctx: AsyncContext, data: dict[str, Any]) -> str:
    return str(await ctx.step("speak", _async_streams_until_told, data["key"]))
