"""Outbox rows are written in the append transaction, with envelope and headers."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy.engine import Engine

from ledgerflow.domain.errors import ConcurrencyError
from ledgerflow.domain.events import RunStarted
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import EventStore, NewEvent, RecordedEvent, StreamAppend
from ledgerflow.outbox import DEFAULT_TOPIC, OutboxWriter, delivery
from tests.outbox._support import append_run, outbox_rows, run_history

CE_HEADERS = {"ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject",
              "content-type"}


def test_every_appended_event_gets_a_row_keyed_by_run(any_engine: Engine) -> None:
    store = EventStore(any_engine, hooks=[OutboxWriter()])
    run_id, recorded = append_run(store, run_history(steps=2), per_append=2)

    rows = outbox_rows(any_engine)
    assert [r.event_id for r in rows] == [e.event_id for e in recorded]
    assert {(r.topic, r.key, r.status, r.attempts) for r in rows} == \
        {(DEFAULT_TOPIC, run_id, "pending", 0)}


def test_payload_is_event_data_in_its_envelope(any_engine: Engine) -> None:
    store = EventStore(any_engine, hooks=[OutboxWriter()])
    run_id, recorded = append_run(store, run_history(steps=1))
    completed = recorded[-1]

    value = json.loads(outbox_rows(any_engine)[-1].payload)
    assert value["eventId"] == completed.event_id
    assert value["eventType"] == "RunCompleted"
    assert value["runId"] == run_id
    assert (value["workflowId"], value["workflowVersion"], value["tenant"]) == \
        ("checkout", "1", "acme")
    assert (value["streamVersion"], value["position"]) == (completed.version, completed.position)
    assert value["recordedAt"] == completed.recorded_at.isoformat()
    assert value["data"] == {"result": {"ok": True, "blob": ""}}


def test_headers_carry_idempotency_key_and_cloudevents(any_engine: Engine) -> None:
    store = EventStore(any_engine, hooks=[OutboxWriter(source="shop")])
    run_id, recorded = append_run(store, run_history(steps=0))
    started = recorded[1]

    headers = dict(json.loads(outbox_rows(any_engine)[1].headers))
    assert headers["idempotency-key"] == headers["ce_id"] == started.event_id
    assert headers["event-type"] == "RunStarted"
    assert headers["run-id"] == headers["ce_subject"] == run_id
    assert (headers["stream-version"], headers["position"]) == \
        (str(started.version), str(started.position))
    assert set(headers) >= CE_HEADERS
    assert headers["ce_source"] == "shop/workflows/checkout"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"


def test_a_rejected_append_leaves_no_outbox_row(any_engine: Engine) -> None:
    store = EventStore(any_engine, hooks=[OutboxWriter()])
    run_id, _ = append_run(store, run_history(steps=0))
    before = len(outbox_rows(any_engine))

    with pytest.raises(ConcurrencyError):
        store.append(StreamAppend(run_id, [NewEvent(RunStarted())], expected_version=1))
    with pytest.raises(ConcurrencyError), store.transaction() as tx:
        tx.append_deferred(StreamAppend(str(uuid.uuid4()), [NewEvent(RunStarted())], 0),
                           StreamAppend(run_id, [NewEvent(RunStarted())], expected_version=1))
    assert len(outbox_rows(any_engine)) == before


def test_deferred_appends_write_the_rows_an_eager_append_writes(any_engine: Engine) -> None:
    """`append_deferred` (on PostgreSQL one statement, positions computed in SQL): the
    payload and headers hold the events' own positions, byte for byte as `append`
    writes them."""
    writer = OutboxWriter()
    store = EventStore(any_engine, hooks=[writer])
    append_run(store, run_history(steps=0))  # positions are not 1, 2 ...
    run, other = str(uuid.uuid4()), str(uuid.uuid4())
    meta = run_metadata("checkout", "1", "acme", correlation_id=run)
    history = [NewEvent(e, metadata=meta) for e in run_history(steps=1)]
    with store.transaction() as tx:
        first = tx.append_deferred(StreamAppend(run, history[:2], 0),
                                   StreamAppend(other, [NewEvent(RunStarted())], 0))
    with store.transaction() as tx:
        second = tx.append_deferred(StreamAppend(run, history[2:], 2))
    recorded = [*first.recorded, *second.recorded]
    assert [r.type for r in recorded] == [
        "RunCreated", "RunStarted", "RunStarted", "StepCompleted", "RunCompleted"]
    rows = {row.event_id: row for row in outbox_rows(any_engine)}
    for event in recorded:
        [expected] = writer.rows([event])
        stored = rows[event.event_id]
        assert (stored.payload, stored.headers) == (expected["payload"], expected["headers"])
        assert json.loads(stored.payload)["position"] == event.position


def test_router_fans_out_or_skips(any_engine: Engine) -> None:
    def route(event: RecordedEvent) -> list[str]:
        if event.type == "RunStarted":
            return []
        if event.type == "RunCompleted":
            return ["runs.main", "runs.audit"]
        return ["runs.main"]

    store = EventStore(any_engine, hooks=[OutboxWriter(router=route)])
    _, recorded = append_run(store, run_history(steps=1))

    rows = outbox_rows(any_engine)
    by_type: dict[str, list[str]] = {}
    for row in rows:
        by_type.setdefault(dict(json.loads(row.headers))["event-type"], []).append(row.topic)
    assert by_type == {"RunCreated": ["runs.main"], "StepCompleted": ["runs.main"],
                       "RunCompleted": ["runs.main", "runs.audit"]}
    completed = [r for r in rows if r.event_id == recorded[-1].event_id]
    assert completed[0].payload == completed[1].payload


def test_the_default_event_limit_leaves_room_for_the_envelope_and_headers(
        sqlite_engine: Engine) -> None:
    """`DEFAULT_MAX_EVENT_BYTES` is derived honestly: an event at exactly the limit, with
    every id at 200 characters, makes a message (envelope, headers, key) that
    kafka-python's own size estimate puts under its default `max_request_size`; one
    byte more is refused at the append, and nothing is written."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    from ledgerflow.domain.errors import EventTooLarge
    from ledgerflow.domain.events import RunCreated
    from ledgerflow.outbox._writer import (
        DEFAULT_MAX_EVENT_BYTES,
        ENVELOPE_ALLOWANCE,
        PRODUCER_MAX_REQUEST_SIZE,
    )

    store = EventStore(sqlite_engine, hooks=[OutboxWriter()],
                       max_event_bytes=DEFAULT_MAX_EVENT_BYTES)
    long_id = "x" * 200
    meta = run_metadata(long_id, "v" * 50, long_id, correlation_id=long_id, actor=long_id,
                        idempotency_key=long_id)

    def event(size: int) -> NewEvent:
        empty = RunCreated(workflow_id=long_id, workflow_version="v" * 50, input="")
        base = len(empty.model_dump_json()) + len(json.dumps(meta, separators=(",", ":")))
        return NewEvent(empty.model_copy(update={"input": "a" * (size - base)}),
                        metadata=meta)

    with pytest.raises(EventTooLarge, match=f"over the event size limit of "
                                            f"{DEFAULT_MAX_EVENT_BYTES} bytes"):
        store.append(StreamAppend("y" * 200, [event(DEFAULT_MAX_EVENT_BYTES + 1)], 0))
    assert outbox_rows(sqlite_engine) == []
    store.append(StreamAppend(long_id, [event(DEFAULT_MAX_EVENT_BYTES)], 0))
    [row] = outbox_rows(sqlite_engine)
    headers = [(name, value.encode()) for name, value in json.loads(row.headers)]
    estimate = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        row.key.encode(), row.payload.encode(), headers)
    assert estimate <= PRODUCER_MAX_REQUEST_SIZE
    assert estimate - DEFAULT_MAX_EVENT_BYTES <= ENVELOPE_ALLOWANCE // 3  # here: 2,115


def test_delivery_states_of_a_runs_events_on_either_database(any_engine: Engine) -> None:
    store = EventStore(any_engine, hooks=[OutboxWriter()])
    _, recorded = append_run(store, run_history(steps=2))
    ids = [e.event_id for e in recorded]
    with any_engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE outbox SET status = 'published' WHERE event_id = '{ids[0]}'")
        found = delivery(conn, DEFAULT_TOPIC, [*ids, str(uuid.uuid4())])
        assert delivery(conn, "another.topic", ids) == {}
        assert delivery(conn, DEFAULT_TOPIC, []) == {}
    assert found == {ids[0]: "published", **{i: "pending" for i in ids[1:]}}
