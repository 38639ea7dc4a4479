"""The store contract on PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore, StreamAppend
from tests.eventstore.contract import (
    IdempotencyContract,
    PositionLog,
    StoreContract,
    as_logged,
    completed_step,
    created,
    hook_log_created,
    key_row,
    logged,
    one_statement_transactions,
    record_statements,
    sid,
)


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def engine(self, pg_engine: Engine) -> Engine:
        return pg_engine


class TestPostgresIdempotency(IdempotencyContract):
    @pytest.fixture
    def engine(self, pg_engine: Engine) -> Engine:
        return pg_engine


def test_a_nested_transaction_on_a_held_connection_is_a_transaction_of_its_own(
        pg_engine: Engine) -> None:
    """A hook or step that appends while the thread's held transaction is open must
    not join it: its commit would commit the outer work, and the outer rollback
    would not undo it."""
    from ledgerflow.eventstore import EventStore, StreamAppend

    store = EventStore(pg_engine)
    outer, inner = sid(), sid()
    with store.held_connection():
        with pytest.raises(ZeroDivisionError), store.transaction() as tx:
            tx.append(StreamAppend(outer, [created()], 0))
            store.append(StreamAppend(inner, [created()], 0))
            raise ZeroDivisionError
        assert store.stream_version(outer) == 0 and store.stream_version(inner) == 1
        store.append(StreamAppend(outer, [created()], 0))  # the held connection goes on
    assert store.stream_version(outer) == 1


@pytest.mark.parametrize("deferred", [False, True], ids=["append", "append_deferred"])
def test_a_held_connection_the_server_dropped_is_replaced(pg_engine: Engine,
                                                         deferred: bool) -> None:
    from ledgerflow.domain.errors import StoreUnavailable
    from ledgerflow.eventstore import EventStore, StreamAppend
    from ledgerflow.eventstore.store import Transaction

    def append(tx: Transaction, stream: str) -> None:
        (tx.append_deferred if deferred else tx.append)(StreamAppend(stream, [created()], 0))

    store = EventStore(pg_engine)
    with store.held_connection():
        with store.transaction() as tx:
            tx.append(StreamAppend(sid(), [created()], 0))
            pid = tx.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with pg_engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        lost = sid()
        with pytest.raises(StoreUnavailable), store.transaction() as tx:
            append(tx, lost)
        kept = sid()
        with store.transaction() as tx:  # the same held slot, on a new connection
            append(tx, kept)
    assert store.stream_version(lost) == 0 and store.stream_version(kept) == 1


@pytest.fixture
def logging_store(pg_engine: Engine) -> Iterator[EventStore]:
    with hook_log_created(pg_engine):
        yield EventStore(pg_engine, hooks=[PositionLog()])


def test_a_transaction_of_deferred_appends_and_writes_is_one_statement(
        logging_store: EventStore, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """BEGIN, append, hook rows + deferred writes, COMMIT: one statement in autocommit,
    on a held connection and on a pooled one; what cannot go as one falls back."""
    from ledgerflow.eventstore.schema import idempotency_keys

    store = logging_store
    sent = record_statements(monkeypatch)
    run = one_statement_transactions(store, sent)
    sent.clear()
    with store.held_connection(), store.transaction() as tx:  # one table written twice
        tx.append_deferred(StreamAppend(run, [completed_step("s4")], 4))
        tx.defer(idempotency_keys.insert(), [key_row("k2")])
        tx.defer(idempotency_keys.insert(), [key_row("k3")])
    assert len(sent) > 1
    monkeypatch.undo()
    assert [r.version for r in store.read_stream(run)] == [1, 2, 3, 4, 5]
    assert logged(pg_engine) == as_logged(store.read_stream(run))


def test_a_schema_without_the_version_check_function_asks_for_an_upgrade(
        pg_engine: Engine) -> None:
    import sqlalchemy as sa

    from ledgerflow.domain.errors import StoreUnavailable
    from ledgerflow.eventstore import EventStore, StreamAppend
    from ledgerflow.eventstore.schema import VERSION_CONFLICT_FUNCTION, events

    store = EventStore(pg_engine)
    run = sid()
    with pg_engine.begin() as conn:
        conn.execute(sa.text("DROP FUNCTION ledgerflow_version_conflict"))
    try:
        with pytest.raises(StoreUnavailable, match="ledgerflow db upgrade"), \
                store.transaction() as tx:
            tx.append_deferred(StreamAppend(run, [created()], 0))
        assert store.stream_version(run) == 0
    finally:
        with pg_engine.begin() as conn:
            VERSION_CONFLICT_FUNCTION(events, conn)
    store.append(StreamAppend(run, [created()], 0))
    assert store.stream_version(run) == 1
