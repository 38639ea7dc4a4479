"""A serverless host has no scheduler loop: its `tick()` fires the due schedules, one
run per fire time however many hosts tick at once; both backends, fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Every, Ledgerflow, Settings, WorkflowRegistry
from ledgerflow.domain import schedules as sch
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.testing import FakeClock
from tests.schedules.conftest import START


def _registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()

    @registry.workflow("echo")
    def echo(ctx: Context, data: Any) -> Any:
        return ctx.step("echo", lambda: data)

    @registry.workflow("nightly", schedule=Every(timedelta(minutes=1), input="declared"))
    def nightly(ctx: Context, data: Any) -> Any:
        return data

    return registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def hosts(any_engine: SAEngine, tmp_path: Path, clock: FakeClock) -> Iterator[list[Ledgerflow]]:
    """Two serverless hosts (apps on their own pools) over one store."""
    url = any_engine.url.render_as_string(hide_password=False)
    apps = [Ledgerflow.open(Settings(database_url=url, sink_path=str(tmp_path / f"{i}.jsonl")),
                            registry=_registry(), clock=clock, upgrade=False)
            for i in range(2)]
    yield apps
    for app in apps:
        app.close()


def fired(app: Ledgerflow, schedule_id: str) -> list[str]:
    return [r.event.run_id for r in app.store.read_stream(sch.stream_id(schedule_id))
            if isinstance(r.event, sch.ScheduleFired)]


def test_tick_fires_due_schedules_once_per_fire_time_and_executes_their_runs(
        hosts: list[Ledgerflow], clock: FakeClock) -> None:
    first, second = hosts
    assert first.schedules is not None
    first.schedules.create("s", sch.ScheduleSpec(workflow_id="echo", input="hi",
                                                 every_seconds=10, overlap="allow"))
    assert first.tick().fired == 0  # created at :00, first fire at :10
    for _ in range(3):
        clock.advance(timedelta(seconds=10))
        results = [host.tick() for host in (second, first, second)]  # hosts race
        assert sum(r.fired for r in results) == 1
    runs = [sch.run_id("s", START + timedelta(seconds=s)) for s in (10, 20, 30)]
    assert fired(first, "s") == runs
    for run in runs:
        state = first.engine.state(run)
        assert (state.status, state.result) == (RunStatus.COMPLETED, "hi")


def test_the_first_tick_declares_the_registrys_schedules(
        hosts: list[Ledgerflow], clock: FakeClock) -> None:
    host = hosts[0]
    assert host.schedules is not None
    assert host.tick().fired == 0
    assert [s.schedule_id for s in host.schedules.list_schedules()] == ["nightly"]
    clock.advance(timedelta(minutes=1))
    result = host.tick()
    assert (result.fired, result.completed) == (1, 1)
    run = sch.run_id("nightly", START + timedelta(minutes=1))
    assert host.engine.state(run).result == "declared"
