"""`eventstore.fastpath` (the PostgreSQL backend's executor): the hot statements write
exactly what Core would write; through `Backend.execute`/`execute_all`, on both
backends alike.

The tables are the tests' own, shaped like the ones the hot path writes (a journal
keyed by run and step with JSON columns, a message table ordered by an identity id),
so the store's tests need neither the messages nor the projections.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import backend_for, fastpath
from ledgerflow.eventstore.schema import PositionType, UTCDateTime
from tests.eventstore.contract import record_statements

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

_tables = sa.MetaData()
_JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
journal = sa.Table(
    "test_fastpath_journal", _tables,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("step_id", sa.String(200), primary_key=True),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("result", _JSON, nullable=True),
    sa.Column("error", _JSON, nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.Column("first_position", sa.BigInteger, nullable=False),
)
messages = sa.Table(
    "test_fastpath_messages", _tables,
    sa.Column("id", PositionType, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("topic", sa.String(249), nullable=False),
    sa.Column("key", sa.String(200), nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)


def _with_tables(engine: Engine) -> Iterator[Engine]:
    _tables.drop_all(engine)
    _tables.create_all(engine)
    yield engine
    _tables.drop_all(engine)


@pytest.fixture
def any_db(any_engine: Engine) -> Iterator[Engine]:
    """Each backend, with the tests' tables made empty."""
    yield from _with_tables(any_engine)


@pytest.fixture
def pg_db(pg_engine: Engine) -> Iterator[Engine]:
    yield from _with_tables(pg_engine)


def _journal_row(step: str, **values: Any) -> dict[str, Any]:
    return {"run_id": "run-1", "step_id": step, "status": "completed", "attempt": 1,
            "result": {"n": 1}, "error": None, "started_at": T0,
            "completed_at": T0 + timedelta(seconds=1), "first_position": 1, **values}


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(journal).order_by(journal.c.step_id))]


def test_execute_all_writes_every_batch_in_order(any_db: Engine) -> None:
    at = sa.bindparam("p_at", type_=journal.c.completed_at.type)
    set_status = (sa.update(journal)
                     .where(journal.c.step_id == sa.bindparam("p_step"))
                     .values(status=sa.bindparam("p_status"), completed_at=at))
    with any_db.begin() as conn:
        backend_for(conn).execute_all(conn, [
            (journal.insert(), [_journal_row("a")]),
            (journal.insert(), [_journal_row("b", result=None)])])
    with any_db.begin() as conn:  # same table twice: must run one after the other
        backend_for(conn).execute_all(conn, [
            (set_status, [{"p_step": "a", "p_status": "failed", "p_at": T0}]),
            (set_status, [{"p_step": "b", "p_status": "retrying", "p_at": None}])])
    rows = _rows(any_db)
    assert [(r[1], r[2], r[4], r[7]) for r in rows] == [
        ("a", "failed", {"n": 1}, T0), ("b", "retrying", None, None)]


def test_execute_all_combines_distinct_tables_into_one_statement(
        pg_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:

    out = {"event_id": "e" * 36, "topic": "t", "key": "run-1", "payload": '{"x":1}',
           "headers": "[]", "status": "pending", "attempts": 0, "next_attempt_at": T0,
           "created_at": T0}
    sent = record_statements(monkeypatch)
    with pg_db.begin() as conn:
        fastpath.execute_all(conn, [(journal.insert(), [_journal_row("a")]),
                                    (messages.insert(), [out])])
    monkeypatch.undo()
    assert len(sent) == 1 and sent[0].startswith("WITH s0 AS (INSERT INTO test_fastpath_journal")
    assert [(r[1], r[4], r[6]) for r in _rows(pg_db)] == [("a", {"n": 1}, T0)]
    with pg_db.connect() as conn:
        stored = conn.execute(sa.select(messages.c.event_id, messages.c.payload,
                                        messages.c.next_attempt_at)).all()
    assert [tuple(r) for r in stored] == [("e" * 36, '{"x":1}', T0)]


def test_several_rows_of_an_insert_keep_their_order(any_db: Engine) -> None:
    """Rows inserted together get ids in the rows' order (the outbox relays by id)."""
    rows = [{"event_id": f"{index:036d}", "topic": "t", "key": "run-1",
             "payload": f'{{"n":{index}}}', "headers": "[]", "status": "pending",
             "attempts": 0, "next_attempt_at": T0 + timedelta(seconds=index),
             "created_at": T0} for index in (3, 1, 2)]
    with any_db.begin() as conn:
        backend_for(conn).execute(conn, messages.insert(), rows)
    with any_db.connect() as conn:
        stored = conn.execute(sa.select(messages.c.payload, messages.c.next_attempt_at)
                              .order_by(messages.c.id)).all()
    assert [tuple(r) for r in stored] == [
        ('{"n":3}', T0 + timedelta(seconds=3)), ('{"n":1}', T0 + timedelta(seconds=1)),
        ('{"n":2}', T0 + timedelta(seconds=2))]


def test_execute_all_combines_multi_row_inserts_and_one_row_writes(
        pg_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outbox rows of a two-event append + a projection row + an update: one statement."""
    def out(index: int) -> dict[str, Any]:
        return {"event_id": f"m{index:035d}", "topic": "t", "key": "run-m",
                "payload": f'{{"n":{index}}}', "headers": "[]", "status": "pending",
                "attempts": 0, "next_attempt_at": T0 + timedelta(seconds=index),
                "created_at": T0}

    with pg_db.begin() as conn:
        fastpath.execute(conn, journal.insert(), [_journal_row("m", run_id="run-m")])
    set_status = (sa.update(journal)
                  .where(journal.c.run_id == sa.bindparam("p_run"))
                  .values(status=sa.bindparam("p_status")))
    sent = record_statements(monkeypatch)
    with pg_db.begin() as conn:
        fastpath.execute_all(conn, [(messages.insert(), [out(2), out(1), out(3)]),
                                    (set_status, [{"p_run": "run-m", "p_status": "failed"}])])
    monkeypatch.undo()
    assert len(sent) == 1 and sent[0].startswith("WITH s0 AS (INSERT INTO test_fastpath_messages")
    with pg_db.connect() as conn:
        stored = conn.execute(sa.select(messages.c.payload, messages.c.next_attempt_at)
                              .where(messages.c.key == "run-m").order_by(messages.c.id)).all()
        status = conn.execute(sa.select(journal.c.status)
                              .where(journal.c.run_id == "run-m")).scalar_one()
    assert [tuple(r) for r in stored] == [
        ('{"n":2}', T0 + timedelta(seconds=2)), ('{"n":1}', T0 + timedelta(seconds=1)),
        ('{"n":3}', T0 + timedelta(seconds=3))]
    assert status == "failed"


def test_many_rows_of_a_plain_insert_go_by_copy_with_the_same_values(
        pg_db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild's batches: COPY instead of one INSERT per row, same rows, same order."""
    tricky = ["tab\there", "new\nline", "back\\slash", "quote'\"", "ünï€", "", "\\N", None]
    rows = [{"event_id": f"{index:036d}", "topic": "t", "key": tricky[index % len(tricky)],
             "payload": json.dumps({"n": index, "s": tricky[index % 7]}),
             "headers": "[]", "status": "pending", "attempts": index,
             "next_attempt_at": T0 + timedelta(microseconds=index),
             "created_at": T0} for index in (range(99, -1, -1))]
    sent = record_statements(monkeypatch)
    copied = record_statements(monkeypatch, "copy")
    with pg_db.begin() as conn:
        fastpath.execute(conn, messages.insert(), rows)
    monkeypatch.undo()
    assert sent == [] and len(copied) == 1 and copied[0].startswith("COPY test_fastpath_messages (")
    with pg_db.connect() as conn:
        stored = conn.execute(sa.select(messages.c.event_id, messages.c.key, messages.c.payload,
                                        messages.c.attempts, messages.c.next_attempt_at)
                              .order_by(messages.c.id)).all()
    assert [tuple(r) for r in stored] == [
        (r["event_id"], r["key"], r["payload"], r["attempts"], r["next_attempt_at"])
        for r in rows]


def test_copy_takes_json_columns_as_the_insert_does(pg_db: Engine) -> None:
    def journal_row(index: int) -> dict[str, Any]:
        return _journal_row(f"s{index:03d}", result={"text": "a\tb\\c\n\"d\"", "n": index,
                                                     "none": None},
                            error=None if index % 2 else {"type": "E", "message": "x"})

    with pg_db.begin() as conn:
        fastpath.execute(conn, journal.insert(), [journal_row(i) for i in range(70)])
    rows = _rows(pg_db)
    assert len(rows) == 70
    assert rows[5][4] == {"text": "a\tb\\c\n\"d\"", "n": 5, "none": None}
    assert rows[5][5] is None and rows[4][5] == {"type": "E", "message": "x"}


def test_compiled_sql_is_remembered_within_a_bound() -> None:
    """A process that builds many stores does not keep every statement it compiled."""
    from ledgerflow.eventstore.fastpath import _Memo

    memo: _Memo[int, str] = _Memo(maxsize=8)
    for n in range(100):
        assert memo.remember(n, str(n)) == str(n)
        assert memo.get(n) == str(n)
    assert len(memo) <= 8
    assert 99 in memo and 0 not in memo
