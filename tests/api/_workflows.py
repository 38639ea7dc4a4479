"""Small workflows the API and CLI tests drive (importable by `--workflows`)."""

from __future__ import annotations

from typing import Any

from ledgerflow import Context, WorkflowRegistry, workflow


class Declined(Exception):
    pass


def greet(ctx: Context, name: Any) -> str:
    """One step."""
    result: str = ctx.step("greet", lambda: f"hello {name}")
    return result


def waiter(ctx: Context, _input: Any) -> dict[str, Any]:
    """Waits for a signal, an external event, then a token."""
    go = ctx.wait_for_signal("go")
    paid = ctx.wait_for_event("payment.settled")
    note = ctx.wait_for_token("manual-check")
    return {"go": go, "paid": paid, "note": note}


def fragile(ctx: Context, data: Any) -> dict[str, Any]:
    """Two steps; the second fails unless the input says `ok`."""
    first = ctx.step("first", lambda: {"n": 1})

    def second() -> str:
        if not (isinstance(data, dict) and data.get("ok")):
            raise Declined("card declined")
        return "paid"

    return {"first": first, "second": ctx.step("second", second)}


def booking(ctx: Context, _input: Any) -> Any:
    """Holds a seat (released if the run is undone), then waits for a signal."""
    held = ctx.step("hold", lambda: {"seat": "12A"},
                    compensate=lambda seat: {"released": seat["seat"]})
    ctx.wait_for_signal("confirm")
    return held


def parent(ctx: Context, _input: Any) -> Any:
    """Starts a `greet` child."""
    return ctx.child("kid", "greet", "child")


WORKFLOWS = {"greet": greet, "waiter": waiter, "fragile": fragile, "parent": parent,
             "booking": booking}


def registry() -> WorkflowRegistry:
    """A fresh registry holding the test workflows."""
    reg = WorkflowRegistry()
    for name, fn in WORKFLOWS.items():
        reg.register(name, fn)
    return reg


for _name, _fn in WORKFLOWS.items():  # for `--workflows tests.api._workflows`
    workflow(_name)(_fn)
