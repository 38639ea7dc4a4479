"""`@workflow(..., input=Model, output=Model)`: bad input is refused at the trigger
(before anything is appended) with pydantic's errors; the function receives the model
instance on every execution, replays included; the store keeps the JSON as given."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from ledgerflow import Context, Engine, InvalidInput, WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.testing import Replayer, export_history


class Line(BaseModel):
    sku: str
    qty: int = Field(gt=0)


class Order(BaseModel):
    order_id: str
    lines: list[Line]
    note: str = ""


class Receipt(BaseModel):
    order_id: str
    items: int


def place(ctx: Context, order: Order) -> Receipt:
    """Place an order: one step per run."""
    assert isinstance(order, Order), f"got {type(order).__name__}"
    count = ctx.step("count", lambda: sum(line.qty for line in order.lines))
    return Receipt(order_id=order.order_id, items=count)


@pytest.fixture
def typed(registry: WorkflowRegistry) -> WorkflowRegistry:
    registry.register("place", place, input=Order, output=Receipt)
    return registry


GOOD = {"order_id": "o-1", "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}


def test_bad_input_is_refused_before_anything_is_appended(engine: Engine,
                                                          typed: WorkflowRegistry) -> None:
    bad = {"order_id": "o-2", "lines": [{"sku": "a", "qty": 0}, {"qty": "x"}]}
    with pytest.raises(InvalidInput) as info:
        engine.trigger("place", bad, run_id="o-2")
    assert [(e["loc"], e["type"]) for e in info.value.errors] == [
        (["input", "lines", 0, "qty"], "greater_than"),
        (["input", "lines", 1, "sku"], "missing"),
        (["input", "lines", 1, "qty"], "int_parsing")]
    assert info.value.lines()[0].startswith("input.lines.0.qty: Input should be greater")
    assert info.value.http_status == 422 and "'place@1' does not validate" in str(info.value)
    assert engine.store.stream_version("o-2") == 0 and engine.store.max_position() == 0


def test_the_workflow_gets_the_model_and_the_store_keeps_the_json(
        engine: Engine, typed: WorkflowRegistry) -> None:
    from_dict = engine.trigger("place", GOOD).run_id
    from_model = engine.trigger("place", Order.model_validate(GOOD)).run_id
    assert engine.run_due().completed == 2
    for run_id in (from_dict, from_model):
        assert engine.state(run_id).result == {"order_id": "o-1", "items": 3}
    [created] = [r.event for r in engine.history(from_dict)[:1]]
    assert isinstance(created, ev.RunCreated) and created.input == GOOD  # as given
    assert engine.history(from_model)[0].event.input == {**GOOD, "note": ""}  # type: ignore[attr-defined]
    report = Replayer(typed).replay(export_history(engine, from_dict))
    assert report.ok, report.divergence


def test_rerun_and_resume_validate_new_input(engine: Engine, typed: WorkflowRegistry) -> None:
    run_id = engine.trigger("place", GOOD).run_id
    engine.run_due()
    with pytest.raises(InvalidInput, match="order_id"):
        engine.rerun(run_id, input={"lines": []})
    assert engine.state(engine.rerun(run_id)).input == GOOD


def test_an_output_the_model_refuses_fails_the_run(engine: Engine,
                                                   registry: WorkflowRegistry) -> None:
    def wrong(ctx: Context, data: Any) -> Any:
        return {"order_id": 1}

    registry.register("wrong", wrong, output=Receipt)
    run_id = engine.trigger("wrong").run_id
    engine.run_due()
    state = engine.state(run_id)
    assert state.status is RunStatus.FAILED and state.error is not None
    assert state.error.type == "ValidationError" and "items" in state.error.message


def test_describe_lists_versions_description_and_schemas(typed: WorkflowRegistry) -> None:
    typed.register("plain", lambda ctx, data: data)
    typed.register("place", place, version="2", input=Order)
    described = {w.name: w.to_wire() for w in typed.describe()}
    assert described["place"]["versions"] == ["1", "2"]
    assert described["place"]["description"] == "Place an order: one step per run."
    schema = described["place"]["inputSchema"]
    assert schema["title"] == "Order" and schema["required"] == ["order_id", "lines"]
    assert described["place"]["outputSchema"] is None  # version 2 declares none
    assert described["plain"]["inputSchema"] is None
    assert (described["plain"]["queue"], described["plain"]["schedule"]) == ("default", None)
    assert described["plain"]["kind"] == "code"
    with pytest.raises(TypeError, match="pydantic model"):
        typed.register("bad", place, input=dict)  # type: ignore[arg-type]
