"""Engine fixtures: a fresh registry, a fake clock and an engine per backend."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Engine, WorkflowRegistry
from ledgerflow.eventstore import EventStore
from ledgerflow.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> WorkflowRegistry:
    return WorkflowRegistry()


@pytest.fixture
def engine(any_engine: SAEngine, registry: WorkflowRegistry,
           clock: FakeClock) -> Engine:
    """An engine on each backend with a fake clock."""
    return Engine(EventStore(any_engine, clock=clock), registry, clock=clock)
