"""The backend port: one adapter per database, chosen in one place; what the store does
through it (reads inside a transaction, hooks that cannot batch or stage)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import cast

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.eventstore import (
    Batch,
    EventStore,
    RecordedEvent,
    StreamAppend,
    backend_for,
    new_id,
)
from ledgerflow.eventstore import postgres as pg_adapter
from ledgerflow.eventstore import sqlite as sqlite_adapter
from ledgerflow.eventstore.schema import idempotency_keys as keys
from tests.eventstore.contract import created, key_row, record_statements, started


def _keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(keys.c.key)).scalars())


class KeyHook:
    """An append hook writing one `idempotency_keys` row per event (key = event id),
    able to batch and to stage, or not, as told; it notes what the store asked of it."""

    def __init__(self, *, batches: bool, staged: bool) -> None:
        self.can_batch, self.can_stage = batches, staged
        self.calls: list[str] = []
        self.seen_before_write: set[str] = set()

    def _batch(self, recorded: Sequence[RecordedEvent]) -> list[Batch]:
        return [(keys.insert(), [key_row(r.event_id) for r in recorded])]

    def write(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        self.calls.append("write")
        self.seen_before_write |= set(conn.execute(sa.select(keys.c.key)).scalars())
        backend_for(conn).execute_all(conn, self._batch(recorded))

    def batches(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> list[Batch] | None:
        self.calls.append("batches")
        return self._batch(recorded) if self.can_batch else None

    def staged(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> list[Batch] | None:
        self.calls.append("staged")
        return self._batch(recorded) if self.can_stage else None


def test_the_chooser_gives_each_database_its_adapter(any_engine: Engine) -> None:
    expected = pg_adapter.BACKEND if any_engine.dialect.name == "postgresql" \
        else sqlite_adapter.BACKEND
    store = EventStore(any_engine)
    with any_engine.connect() as conn:
        assert backend_for(any_engine) is backend_for(conn) is store.backend is expected
    assert store.backend.name == any_engine.dialect.name
    assert store.backend.notifies is (expected is pg_adapter.BACKEND)


def test_the_chooser_refuses_a_database_ledgerflow_does_not_run_on() -> None:
    oracle = cast(Engine, SimpleNamespace(dialect=SimpleNamespace(name="oracle")))
    with pytest.raises(ValueError, match="PostgreSQL or SQLite, not on 'oracle'"):
        backend_for(oracle)


def test_a_transaction_reads_its_own_uncommitted_appends(any_engine: Engine) -> None:
    store = EventStore(any_engine)
    run, other = new_id(), new_id()
    store.append(StreamAppend(other, [created()], 0))
    before = store.max_position()
    with store.transaction() as tx:
        tx.append(StreamAppend(run, [created()], 0))
        deferred = tx.append_deferred(StreamAppend(run, [started()], 1))
        inside = tx.read_stream(run)
        tail = tx.read_all(before, 10)
        assert store.read_stream(run) == []  # not committed: others do not see it
    assert [(r.version, r.type) for r in inside] == [(1, "RunCreated"), (2, "RunStarted")]
    assert inside == store.read_stream(run)
    assert inside[1] == deferred.recorded[0]
    assert tail == inside
    assert [r.version for r in store.read_stream(run, from_version=2)] == [2]
    assert store.count_events() == 3 and store.count_events(before) == 2


def test_a_hook_that_cannot_batch_is_written_now_with_the_deferred_writes_before_it(
        any_engine: Engine) -> None:
    hook = KeyHook(batches=False, staged=False)
    store = EventStore(any_engine, hooks=[hook])
    with store.transaction() as tx:
        tx.defer(keys.insert(), [key_row("deferred-first")])
        recorded = tx.append(StreamAppend(new_id(), [created(), started()], 0))
    assert hook.calls == ["batches", "write"]
    assert hook.seen_before_write == {"deferred-first"}
    assert _keys(any_engine) == {"deferred-first", *(r.event_id for r in recorded)}


def test_a_hook_that_batches_is_deferred_not_written_at_once(any_engine: Engine) -> None:
    hook = KeyHook(batches=True, staged=False)
    store = EventStore(any_engine, hooks=[hook])
    with store.transaction() as tx:
        recorded = tx.append(StreamAppend(new_id(), [created()], 0))
        assert "write" not in hook.calls
    assert _keys(any_engine) == {recorded[0].event_id}


@pytest.mark.parametrize("stages", [True, False], ids=["staged", "not-staged"])
def test_a_deferred_append_writes_every_hooks_rows_whether_it_stages_or_not(
        any_engine: Engine, stages: bool) -> None:
    hook = KeyHook(batches=True, staged=stages)
    store = EventStore(any_engine, hooks=[hook])
    with store.transaction() as tx:
        pending = tx.append_deferred(StreamAppend(new_id(), [created(), started()], 0))
    assert _keys(any_engine) == {r.event_id for r in pending.recorded}
    assert len(pending.recorded) == 2


def test_a_hook_that_cannot_stage_costs_the_one_statement_not_its_rows(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: with every hook staging, a transaction of deferred appends is one
    statement; one hook that cannot makes it the ordinary append, rows and all."""
    sent = record_statements(monkeypatch)
    for stages, statements in ((True, 1), (False, 2)):  # else: the append, the hook's rows
        hook = KeyHook(batches=True, staged=stages)
        store = EventStore(pg_engine, hooks=[hook])
        sent.clear()
        with store.held_connection(), store.transaction() as tx:
            pending = tx.append_deferred(StreamAppend(new_id(), [created()], 0))
        assert hook.calls == (["staged"] if stages else ["staged", "batches"])
        assert len(sent) == statements, sent
        assert pending.recorded[0].event_id in _keys(pg_engine)
