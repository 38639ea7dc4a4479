"""`ledgerflow.testing` wires the projections and the outbox exactly as the product does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Ledgerflow, WorkflowRegistry
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.outbox import PENDING, PUBLISHED, message_headers
from ledgerflow.projections import queries
from ledgerflow.runtime.faults import FaultPoints, InjectedFault
from ledgerflow.testing import (
    FakeClock,
    open_test_app,
    open_test_engine,
    outbox_rows,
    relay_to_sink,
    run_to_completion,
    run_view,
    step_journal,
)


def _registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()

    @registry.workflow("nap-then-pay")
    def nap_then_pay(ctx: Context, data: dict[str, int]) -> dict[str, int]:
        reserved = ctx.step("reserve", lambda: {"seats": data["seats"]})
        ctx.sleep("cool-off", timedelta(minutes=5))
        paid = ctx.step("pay", lambda: {"amount": 10 * reserved["seats"]})
        return {"seats": reserved["seats"], "amount": paid["amount"]}

    return registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> Iterator[Ledgerflow]:
    lf = open_test_app(registry=_registry(), clock=clock)
    yield lf
    lf.close()


def test_run_views_and_journal_follow_the_run(app: Ledgerflow, clock: FakeClock) -> None:
    run = app.engine.trigger("nap-then-pay", {"seats": 2}, tags=["vip"]).run_id
    assert run_view(app, run).status == "pending"
    run_to_completion(app.engine, run)
    parked = run_view(app, run).to_wire()
    assert parked["status"] == "suspended" and parked["waitpoint"]["name"] == "cool-off"
    assert parked["wakeAt"] == (clock() + timedelta(minutes=5)).isoformat()
    clock.advance(timedelta(minutes=5))
    assert run_to_completion(app.engine, run).status is RunStatus.COMPLETED
    done = run_view(app, run)
    assert (done.status, done.result, done.tags) == (
        "completed", {"seats": 2, "amount": 20}, ["vip"])
    assert [(e.step_id, e.status, e.attempt) for e in step_journal(app, run)] == [
        ("reserve", "completed", 1), ("pay", "completed", 1)]


def test_the_outbox_holds_one_row_per_event_with_the_products_headers(
        app: Ledgerflow, clock: FakeClock) -> None:
    run = app.engine.trigger("nap-then-pay", {"seats": 1}).run_id
    run_to_completion(app.engine, run)
    clock.advance(timedelta(minutes=5))
    run_to_completion(app.engine, run)
    history = app.engine.history(run)
    rows = outbox_rows(app)
    assert [r["event_id"] for r in rows] == [e.event_id for e in history]
    for row, recorded in zip(rows, history, strict=True):
        assert (row["topic"], row["key"], row["status"]) == (app.settings.topic, run, PENDING)
        assert row["headers"] == dict(message_headers(recorded, "ledgerflow"))
        assert row["payload"]["eventType"] == recorded.type
        assert row["payload"]["streamVersion"] == recorded.version

    sent = relay_to_sink(app)
    assert [m["headers"]["idempotency-key"] for m in sent] == [e.event_id for e in history]
    assert {(m["topic"], m["key"]) for m in sent} == {(app.settings.topic, run)}
    assert [m["value"]["eventType"] for m in sent][-1] == "RunCompleted"
    assert {r["status"] for r in outbox_rows(app)} == {PUBLISHED}
    assert relay_to_sink(app) == []  # nothing is sent twice


def test_open_test_engine_is_the_same_wiring(sqlite_url: str, sqlite_engine: SAEngine) -> None:
    clock = FakeClock()
    engine = open_test_engine(sqlite_url, registry=_registry(), clock=clock)
    run = engine.trigger("nap-then-pay", {"seats": 3}).run_id
    run_to_completion(engine, run)
    with sqlite_engine.connect() as conn:
        record = queries.get_run(conn, run)
    assert record is not None and record.status == "suspended"


def test_fault_points_reach_the_apps_engine() -> None:
    faults = FaultPoints()
    faults.arm("step_executed")
    app = open_test_app(registry=_registry(), faults=faults)
    try:
        run = app.engine.trigger("nap-then-pay", {"seats": 1}).run_id
        with pytest.raises(InjectedFault):
            app.engine.run_due()
        assert step_journal(app, run) == []  # the step ran, its completion never committed
    finally:
        app.close()
