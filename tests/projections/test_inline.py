"""`InlineProjections` with a projection that cannot say its writes beforehand: it is
applied in the append transaction (the slow way), with the others, never skipped."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy import Table
from sqlalchemy.engine import Connection, Engine

from ledgerflow.domain import events as ev
from ledgerflow.eventstore import Batch, EventStore, NewEvent, RecordedEvent, StreamAppend
from ledgerflow.projections import InlineProjections, RunViews, StepJournal, Tables
from tests.projections.conftest import snapshot


class Reading:
    """A projection that reads as it writes: no batches, no staged batches; it notes
    the events it was applied to."""

    name = "reading"
    version = 1
    inline = True
    tables: tuple[Table, ...] = ()

    def __init__(self) -> None:
        self.applied: list[str] = []

    def apply(self, conn: Connection, events: Sequence[RecordedEvent], tables: Tables) -> None:
        self.applied.extend(r.event_id for r in events)

    def batches(self, conn: Connection, events: Sequence[RecordedEvent],
                tables: Tables) -> list[Batch] | None:
        return None

    def staged_batches(self, conn: Connection, events: Sequence[RecordedEvent],
                       tables: Tables) -> list[Batch] | None:
        return None


@pytest.mark.parametrize("deferred", [False, True], ids=["append", "append_deferred"])
def test_a_projection_without_batches_is_applied_with_the_others(
        any_engine: Engine, deferred: bool) -> None:
    reading = Reading()
    store = EventStore(any_engine, hooks=[InlineProjections(
        [RunViews(), reading, StepJournal()])])
    run = str(uuid.uuid4())
    events = [NewEvent(ev.RunCreated(workflow_id="w", workflow_version="1", input={})),
              NewEvent(ev.StepCompleted(step_id="a", result=1))]
    with store.transaction() as tx:
        (tx.append_deferred if deferred else tx.append)(StreamAppend(run, events, 0))
    assert reading.applied == [r.event_id for r in store.read_stream(run)]
    rows = snapshot(any_engine)
    assert [(r[0], r[2]) for r in rows["run_views"]] == [(run, "1")]
    assert [(r[0], r[1]) for r in rows["step_journal"]] == [(run, "a")]
