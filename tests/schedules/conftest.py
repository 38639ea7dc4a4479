"""Schedule fixtures: a fake clock, a registry with a quick and a waiting workflow, and
the schedules, a scheduler and an engine over one store per backend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Engine, Scheduler, Schedules, WorkflowRegistry
from ledgerflow.domain import schedules as sch
from ledgerflow.eventstore import EventStore
from ledgerflow.testing import FakeClock

START = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def quick(ctx: Context, data: Any) -> Any:
    return data


def waiting(ctx: Context, data: Any) -> Any:
    return ctx.wait_for_signal("go")


def make_registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()
    registry.register("quick", quick)
    registry.register("waiting", waiting)
    return registry


@dataclass
class Rig:
    clock: FakeClock
    store: EventStore
    engine: Engine
    schedules: Schedules
    scheduler: Scheduler

    def spec(self, **fields: Any) -> sch.ScheduleSpec:
        fields.setdefault("workflow_id", "quick")
        return sch.ScheduleSpec(**fields)

    def fired(self, schedule_id: str) -> list[sch.ScheduleFired]:
        return [r.event for r in self.store.read_stream(sch.stream_id(schedule_id))
                if isinstance(r.event, sch.ScheduleFired)]

    def events(self, schedule_id: str) -> list[Any]:
        return [r.event for r in self.store.read_stream(sch.stream_id(schedule_id))]


def make_rig(db: SAEngine, clock: FakeClock) -> Rig:
    store = EventStore(db, clock=clock)
    registry = make_registry()
    schedules = Schedules(store, registry, clock)
    return Rig(clock, store, Engine(store, registry, clock=clock), schedules,
               Scheduler(schedules))


@pytest.fixture
def rig(any_engine: SAEngine) -> Rig:
    return make_rig(any_engine, FakeClock(START))
