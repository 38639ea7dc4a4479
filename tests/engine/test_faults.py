"""Fault points are an object built at the edge, not module state read from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Engine, Ledgerflow, Settings, WorkflowRegistry
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore import EventStore
from ledgerflow.outbox import PUBLISHED_POINT
from ledgerflow.runtime.faults import FaultPoints, InjectedFault
from ledgerflow.testing import FakeClock


def _registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()

    @registry.workflow("one-step")
    def one_step(ctx: Context, data: object) -> object:
        return ctx.step("only", lambda: "done")

    return registry


def test_the_setting_arms_the_points_it_names() -> None:
    points = Settings(faults="step_executed=exit:77, run_claimed , x=kill").fault_points()
    assert points.armed == {"step_executed", "run_claimed", "x"}
    assert Settings(faults=None).fault_points().armed == frozenset()


@pytest.mark.parametrize("spec", ["a=explode", "a=exit:often", "=raise"])
def test_a_malformed_setting_is_refused_at_the_edge(spec: str) -> None:
    with pytest.raises(ValidationError, match="LEDGERFLOW_FAULTS"):
        Settings(faults=spec)


def test_the_environment_arms_nothing_below_the_edge(
        sqlite_engine: SAEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine built without the edge's settings ignores `LEDGERFLOW_FAULTS`."""
    monkeypatch.setenv("LEDGERFLOW_FAULTS", "run_claimed=raise,step_executed=raise")
    clock = FakeClock()
    engine = Engine(EventStore(sqlite_engine, clock=clock), _registry(), clock=clock)
    run = engine.trigger("one-step", None).run_id
    assert engine.run_due().completed == 1
    assert engine.state(run).status is RunStatus.COMPLETED


def test_each_engine_has_its_own_points(sqlite_engine: SAEngine) -> None:
    clock, registry = FakeClock(), _registry()
    armed, calm = FaultPoints(), FaultPoints()
    armed.arm("step_executed")
    crashing = Engine(EventStore(sqlite_engine, clock=clock), registry, clock=clock,
                      faults=armed)
    steady = Engine(EventStore(sqlite_engine, clock=clock), registry, clock=clock,
                    faults=calm)
    first = crashing.trigger("one-step", None).run_id
    with pytest.raises(InjectedFault) as raised:
        crashing.run_due()
    assert raised.value.name == "step_executed"
    assert armed.armed == frozenset()  # an in-process raise fires once
    second = steady.trigger("one-step", None).run_id
    assert steady.run_due().completed == 1
    assert steady.state(second).status is RunStatus.COMPLETED
    assert steady.state(first).status is RunStatus.RUNNING  # still leased to the crash


def test_ledgerflow_open_gives_the_settings_points_to_engine_and_relay(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/lf.db",
                        sink_path=f"{tmp_path}/events.jsonl", kafka_bootstrap=None,
                        faults=f"run_claimed=raise,{PUBLISHED_POINT}=raise")
    lf = Ledgerflow.open(settings, registry=_registry())
    try:
        assert lf.faults is lf.engine.runtime.faults
        lf.engine.trigger("one-step", None)
        with pytest.raises(InjectedFault, match="run_claimed"):
            lf.engine.run_due()
        relay = lf.relay()
        with pytest.raises(InjectedFault, match=PUBLISHED_POINT):
            relay.run_once()
        assert relay.run_once().published == 2  # the batch was not marked: sent again
        relay.publisher.close()
    finally:
        lf.close()
