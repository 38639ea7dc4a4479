"""Inline projections in a deferred append (`Transaction.append_deferred`; on PostgreSQL
written in the append's own statement, positions computed in SQL): the read models
get the rows an eager append writes, and a step boundary of the product's wiring
(projections, outbox, idempotency key, notice) is one statement."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.domain.errors import ConcurrencyError
from ledgerflow.eventstore import EventStore, StreamAppend
from ledgerflow.outbox import OutboxWriter
from ledgerflow.projections import InlineProjections
from ledgerflow.projections._schema import run_views, step_journal
from tests.eventstore.contract import (
    completed_step,
    created,
    one_statement_transactions,
    record_statements,
    sid,
    started,
)
from tests.projections.conftest import snapshot


def test_deferred_appends_project_the_events_own_positions_and_versions(
        store: EventStore, any_engine: Engine) -> None:
    run, other = sid(), sid()
    store.append(StreamAppend(sid(), [created()], 0))  # positions are not 1, 2 ...
    with store.transaction() as tx:
        tx.append_deferred(StreamAppend(run, [created(), started()], 0))
        tx.append_deferred(StreamAppend(other, [created()], 0))
    with store.transaction() as tx:
        step = tx.append_deferred(StreamAppend(run, [completed_step("a")], 2))
    with any_engine.connect() as conn:
        journal = conn.execute(sa.select(step_journal.c.first_position)
                               .where(step_journal.c.run_id == run)).scalar_one()
        views = {r.run_id: (r.version, r.status) for r in conn.execute(sa.select(run_views))}
    assert journal == step.recorded[0].position
    assert (views[run], views[other]) == ((3, "running"), (1, "pending"))


def test_a_deferred_append_off_its_expected_version_projects_nothing(
        store: EventStore, any_engine: Engine) -> None:
    run = sid()
    store.append(StreamAppend(run, [created()], 0))
    before = snapshot(any_engine)
    with pytest.raises(ConcurrencyError), store.transaction() as tx:
        tx.append_deferred(StreamAppend(sid(), [created()], 0))
        tx.append_deferred(StreamAppend(run, [started()], 5))
    assert snapshot(any_engine) == before


def test_a_step_boundary_with_projections_and_outbox_is_one_statement(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """BEGIN, append, projection + outbox rows + deferred writes, COMMIT: one statement
    in autocommit, on a held connection and on a pooled one; a transaction whose
    projection rows update one table twice falls back to several."""
    store = EventStore(pg_engine, hooks=[InlineProjections(), OutboxWriter()])
    sent = record_statements(monkeypatch)
    run = one_statement_transactions(store, sent)
    sent.clear()
    with store.held_connection(), store.transaction() as tx:  # run_views updated twice
        tx.append_deferred(StreamAppend(run, [completed_step("s4")], 4))
        tx.append_deferred(StreamAppend(sid(), [created()], 0))
    assert len(sent) > 1
    monkeypatch.undo()
    assert [r.version for r in store.read_stream(run)] == [1, 2, 3, 4, 5]
