"""Fixtures of the projection tests: a store with the inline projections on each backend."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore
from ledgerflow.projections import InlineProjections
from ledgerflow.projections._schema import run_status_counts, run_tags, run_views, step_journal
from tests.projections._gen import TickingClock


@pytest.fixture
def store(any_engine: Engine) -> EventStore:
    """The store as the product wires it: inline projections in every append."""
    return EventStore(any_engine, hooks=[InlineProjections()], clock=TickingClock())


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the read models, in primary-key order."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in (run_views, run_tags, step_journal, run_status_counts):
            order = [c for c in table.primary_key.columns]
            found[table.name] = [tuple(row) for row in
                                 conn.execute(sa.select(table).order_by(*order))]
    return found
