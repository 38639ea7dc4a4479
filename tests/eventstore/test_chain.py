"""The hash chain: every append hashes its events into their streams' chains, on both
databases alike, and `verify` finds and locates what SQL behind the store's back
changed (an edited event, a deleted one, versions swapped, the tail cut off)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.domain import events as ev
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend, verify
from ledgerflow.eventstore.chain import chain, verify_each
from ledgerflow.eventstore.migrations import fill_chain


def _step(n: int, result: object = None) -> NewEvent:
    return NewEvent(ev.StepCompleted(step_id=f"s{n}", result=result or {"n": n}, attempt=1),
                    metadata={"actor": "test", "n": n})


def _history(store: EventStore) -> None:
    store.append(StreamAppend("a", [_step(1), _step(2)], 0))
    store.append(StreamAppend("a", [_step(3)], 2), StreamAppend("b", [_step(1)], 0))
    store.append(StreamAppend("a", [_step(4, {"f": 100000.0, "g": 1e20, "h": 0.1,
                                              "u": "é ✓", "neg": -0.0})], None))
    with store.transaction() as tx:  # the one-statement path on PostgreSQL
        tx.append_deferred(StreamAppend("a", [_step(5), _step(6)], 4))
    store.append(StreamAppend("b", [_step(2)], 1))


def _sql(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement))


def test_every_append_path_writes_the_chain_verify_recomputes(any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    rows = store.stored_stream("a")
    assert [r.version for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r.hash for r in rows] == chain(rows)  # the database's hashes are Python's
    assert len({r.hash for r in rows}) == 6
    verdict = verify("a", rows)
    assert (verdict.verified, verdict.events, verdict.head) == (True, 6, rows[-1].hash)
    assert verify("b", store.stored_stream("b")).verified


def test_an_edited_event_is_found_at_its_version(any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    data = ("'{\"step_id\": \"s3\", \"result\": {\"n\": 33}, \"attempt\": 1}'")
    _sql(any_engine, f"UPDATE events SET data = {data} WHERE stream_id = 'a' AND version = 3")
    verdict = verify("a", store.stored_stream("a"))
    assert (verdict.verified, verdict.first_bad_version) == (False, 3)
    assert verdict.reason is not None and "does not match its hash" in verdict.reason
    assert verify("b", store.stored_stream("b")).verified  # other streams are untouched


def test_a_deleted_event_is_found_where_it_is_missing(any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    _sql(any_engine, "DELETE FROM events WHERE stream_id = 'a' AND version = 2")
    verdict = verify("a", store.stored_stream("a"))
    assert (verdict.verified, verdict.first_bad_version) == (False, 2)
    assert verdict.reason is not None and "version 2 is missing" in verdict.reason


def test_a_deleted_and_renumbered_history_breaks_the_chain(any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    _sql(any_engine, "DELETE FROM events WHERE stream_id = 'a' AND version = 2")
    for version in (3, 4, 5, 6):
        _sql(any_engine, f"UPDATE events SET version = {version - 1} "
                         f"WHERE stream_id = 'a' AND version = {version}")
    verdict = verify("a", store.stored_stream("a"))
    assert (verdict.verified, verdict.first_bad_version) == (False, 2)


def test_swapped_versions_are_found_at_the_first_of_them(any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    _sql(any_engine, "UPDATE events SET version = 100 WHERE stream_id = 'a' AND version = 2")
    _sql(any_engine, "UPDATE events SET version = 2 WHERE stream_id = 'a' AND version = 3")
    _sql(any_engine, "UPDATE events SET version = 3 WHERE stream_id = 'a' AND version = 100")
    verdict = verify("a", store.stored_stream("a"))
    assert (verdict.verified, verdict.first_bad_version) == (False, 2)


def test_a_cut_tail_is_found_against_the_version_the_stream_reached(
        any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    _sql(any_engine, "DELETE FROM events WHERE stream_id = 'a' AND version = 6")
    rows = store.stored_stream("a")
    assert verify("a", rows).verified  # the chain alone cannot tell
    verdict = verify("a", rows, last_version=6)
    assert (verdict.verified, verdict.first_bad_version) == (False, 6)


def test_a_removed_hash_is_found(any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    _sql(any_engine, "UPDATE events SET hash = NULL WHERE stream_id = 'b' AND version = 1")
    verdict = verify("b", store.stored_stream("b"))
    assert (verdict.verified, verdict.first_bad_version) == (False, 1)


def test_the_migration_backfill_gives_existing_events_the_chain_appends_give(
        any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    before = {s: store.stored_stream(s) for s in ("a", "b")}
    _sql(any_engine, "UPDATE events SET hash = NULL")
    with any_engine.begin() as conn:
        fill_chain(conn)
    assert {s: store.stored_stream(s) for s in ("a", "b")} == before
    store.append(StreamAppend("a", [_step(7)], 6))  # appends go on from the filled head
    assert verify("a", store.stored_stream("a")).verified


def test_the_whole_store_is_verified_in_pages(any_engine: Engine) -> None:
    store = EventStore(any_engine)
    _history(store)
    _sql(any_engine, "DELETE FROM events WHERE stream_id = 'a' AND version = 5")
    verdicts = {v.stream_id: v for v in verify_each(store.iter_stored(batch=2))}
    assert set(verdicts) == {"a", "b"}
    assert (verdicts["a"].verified, verdicts["a"].first_bad_version) == (False, 5)
    assert (verdicts["b"].verified, verdicts["b"].events) == (True, 2)
