"""`eventstore.fastpath` (the PostgreSQL backend's executor): the hot statements write
exactly what Core would write; through `Backend.execute`/`execute_all`, on both
backends alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import backend_for, fastpath
from ledgerflow.outbox._schema import outbox
from ledgerflow.projections._schema import step_journal

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _journal_row(step: str, **values: Any) -> dict[str, Any]:
    return {"run_id": "run-1", "step_id": step, "status": "completed", "attempt": 1,
            "result": {"n": 1}, "error": None, "started_at": T0,
            "completed_at": T0 + timedelta(seconds=1), "first_position": 1, **values}


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(step_journal).order_by(step_journal.c.step_id))]


def _record_statements(monkeypatch: pytest.MonkeyPatch, method: str = "execute") -> list[str]:
    """The SQL of every `psycopg.Cursor.<method>` call from now on (until
    monkeypatch.undo)."""
    sent: list[str] = []
    original = getattr(psycopg.Cursor, method)

    def recorded(cur: psycopg.Cursor[Any], sql: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(sql))
        return original(cur, sql, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, method, recorded)
    return sent


def test_execute_all_writes_every_batch_in_order(any_engine: Engine) -> None:
    at = sa.bindparam("p_at", type_=step_journal.c.completed_at.type)
    set_status = (sa.update(step_journal)
                     .where(step_journal.c.step_id == sa.bindparam("p_step"))
                     .values(status=sa.bindparam("p_status"), completed_at=at))
    with any_engine.begin() as conn:
        backend_for(conn).execute_all(conn, [
            (step_journal.insert(), [_journal_row("a")]),
            (step_journal.insert(), [_journal_row("b", result=None)])])
    with any_engine.begin() as conn:  # same table twice: must run one after the other
        backend_for(conn).execute_all(conn, [
            (set_status, [{"p_step": "a", "p_status": "failed", "p_at": T0}]),
            (set_status, [{"p_step": "b", "p_status": "retrying", "p_at": None}])])
    rows = _rows(any_engine)
    assert [(r[1], r[2], r[4], r[7]) for r in rows] == [
        ("a", "failed", {"n": 1}, T0), ("b", "retrying", None, None)]


def test_execute_all_combines_distinct_tables_into_one_statement(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:

    out = {"event_id": "e" * 36, "topic": "t", "key": "run-1", "payload": '{"x":1}',
           "headers": "[]", "status": "pending", "attempts": 0, "next_attempt_at": T0,
           "created_at": T0}
    sent = _record_statements(monkeypatch)
    with pg_engine.begin() as conn:
        fastpath.execute_all(conn, [(step_journal.insert(), [_journal_row("a")]),
                                    (outbox.insert(), [out])])
    monkeypatch.undo()
    assert len(sent) == 1 and sent[0].startswith("WITH s0 AS (INSERT INTO step_journal")
    assert [(r[1], r[4], r[6]) for r in _rows(pg_engine)] == [("a", {"n": 1}, T0)]
    with pg_engine.connect() as conn:
        stored = conn.execute(sa.select(outbox.c.event_id, outbox.c.payload,
                                        outbox.c.next_attempt_at)).all()
    assert [tuple(r) for r in stored] == [("e" * 36, '{"x":1}', T0)]


def test_several_rows_of_an_insert_keep_their_order(any_engine: Engine) -> None:
    """The outbox relays by id: rows inserted together get ids in the rows' order."""
    rows = [{"event_id": f"{index:036d}", "topic": "t", "key": "run-1",
             "payload": f'{{"n":{index}}}', "headers": "[]", "status": "pending",
             "attempts": 0, "next_attempt_at": T0 + timedelta(seconds=index),
             "created_at": T0} for index in (3, 1, 2)]
    with any_engine.begin() as conn:
        backend_for(conn).execute(conn, outbox.insert(), rows)
    with any_engine.connect() as conn:
        stored = conn.execute(sa.select(outbox.c.payload, outbox.c.next_attempt_at)
                              .order_by(outbox.c.id)).all()
    assert [tuple(r) for r in stored] == [
        ('{"n":3}', T0 + timedelta(seconds=3)), ('{"n":1}', T0 + timedelta(seconds=1)),
        ('{"n":2}', T0 + timedelta(seconds=2))]


def test_execute_all_combines_multi_row_inserts_and_one_row_writes(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outbox rows of a two-event append + a projection row + an update: one statement."""
    def out(index: int) -> dict[str, Any]:
        return {"event_id": f"m{index:035d}", "topic": "t", "key": "run-m",
                "payload": f'{{"n":{index}}}', "headers": "[]", "status": "pending",
                "attempts": 0, "next_attempt_at": T0 + timedelta(seconds=index),
                "created_at": T0}

    with pg_engine.begin() as conn:
        fastpath.execute(conn, step_journal.insert(), [_journal_row("m", run_id="run-m")])
    set_status = (sa.update(step_journal)
                  .where(step_journal.c.run_id == sa.bindparam("p_run"))
                  .values(status=sa.bindparam("p_status")))
    sent = _record_statements(monkeypatch)
    with pg_engine.begin() as conn:
        fastpath.execute_all(conn, [(outbox.insert(), [out(2), out(1), out(3)]),
                                    (set_status, [{"p_run": "run-m", "p_status": "failed"}])])
    monkeypatch.undo()
    assert len(sent) == 1 and sent[0].startswith("WITH s0 AS (INSERT INTO outbox")
    with pg_engine.connect() as conn:
        stored = conn.execute(sa.select(outbox.c.payload, outbox.c.next_attempt_at)
                              .where(outbox.c.key == "run-m").order_by(outbox.c.id)).all()
        status = conn.execute(sa.select(step_journal.c.status)
                              .where(step_journal.c.run_id == "run-m")).scalar_one()
    assert [tuple(r) for r in stored] == [
        ('{"n":2}', T0 + timedelta(seconds=2)), ('{"n":1}', T0 + timedelta(seconds=1)),
        ('{"n":3}', T0 + timedelta(seconds=3))]
    assert status == "failed"


def test_many_rows_of_a_plain_insert_go_by_copy_with_the_same_values(
        pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild's batches: COPY instead of one INSERT per row, same rows, same order."""
    tricky = ["tab\there", "new\nline", "back\\slash", "quote'\"", "ünï€", "", "\\N", None]
    rows = [{"event_id": f"{index:036d}", "topic": "t", "key": tricky[index % len(tricky)],
             "payload": json.dumps({"n": index, "s": tricky[index % 7]}),
             "headers": "[]", "status": "pending", "attempts": index,
             "next_attempt_at": T0 + timedelta(microseconds=index),
             "created_at": T0} for index in (range(99, -1, -1))]
    sent = _record_statements(monkeypatch)
    copied = _record_statements(monkeypatch, "copy")
    with pg_engine.begin() as conn:
        fastpath.execute(conn, outbox.insert(), rows)
    monkeypatch.undo()
    assert sent == [] and len(copied) == 1 and copied[0].startswith("COPY outbox (")
    with pg_engine.connect() as conn:
        stored = conn.execute(sa.select(outbox.c.event_id, outbox.c.key, outbox.c.payload,
                                        outbox.c.attempts, outbox.c.next_attempt_at)
                              .order_by(outbox.c.id)).all()
    assert [tuple(r) for r in stored] == [
        (r["event_id"], r["key"], r["payload"], r["attempts"], r["next_attempt_at"])
        for r in rows]


def test_copy_takes_json_columns_as_the_insert_does(pg_engine: Engine) -> None:
    def journal_row(index: int) -> dict[str, Any]:
        return _journal_row(f"s{index:03d}", result={"text": "a\tb\\c\n\"d\"", "n": index,
                                                     "none": None},
                            error=None if index % 2 else {"type": "E", "message": "x"})

    with pg_engine.begin() as conn:
        fastpath.execute(conn, step_journal.insert(), [journal_row(i) for i in range(70)])
    rows = _rows(pg_engine)
    assert len(rows) == 70
    assert rows[5][4] == {"text": "a\tb\\c\n\"d\"", "n": 5, "none": None}
    assert rows[5][5] is None and rows[4][5] == {"type": "E", "message": "x"}
