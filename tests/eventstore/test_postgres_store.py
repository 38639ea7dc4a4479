"""The store contract on PostgreSQL (psycopg 3)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from tests.eventstore.contract import IdempotencyContract, StoreContract


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
    from eventstore import EventStore, StreamAppend
    from tests.eventstore.contract import created, sid

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


def test_a_held_connection_the_server_dropped_is_replaced(pg_engine: Engine) -> None:
    from domain.errors import StoreUnavailable
    from eventstore import EventStore, StreamAppend
    from tests.eventstore.contract import created, sid

    store = EventStore(pg_engine)
    with store.held_connection():
        with store.transaction() as tx:
            tx.append(StreamAppend(sid(), [created()], 0))
            pid = tx.conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with pg_engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        lost = sid()
        with pytest.raises(StoreUnavailable), store.transaction() as tx:
            tx.append(StreamAppend(lost, [created()], 0))
        kept = sid()
        with store.transaction() as tx:  # the same held slot, on a new connection
            tx.append(StreamAppend(kept, [created()], 0))
    assert store.stream_version(lost) == 0 and store.stream_version(kept) == 1
