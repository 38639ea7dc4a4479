"""The consumer inbox: each message's effect exactly once, across redeliveries."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.engine import Connection, Engine

from ledgerflow.eventstore import EventStore
from ledgerflow.outbox import KafkaPublisher, OutboxWriter, Relay
from ledgerflow.outbox.consumer import Inbox, InboxConsumer, InboxMessage
from tests.outbox._support import append_run, run_history, wait_until
from tests.outbox.conftest import effect_counts, record_effect


def _message(event_id: str) -> InboxMessage:
    value = f'{{"eventId": "{event_id}", "eventType": "RunStarted"}}'.encode()
    return InboxMessage("t", 0, 0, "run", value, {"idempotency-key": event_id})


def test_inbox_runs_a_handler_once_per_key(any_engine: Engine) -> None:
    inbox = Inbox(any_engine, "billing")
    calls: list[str] = []

    def handler(_conn: Connection, message: InboxMessage) -> None:
        calls.append(message.idempotency_key)

    assert inbox.process(_message("e-1"), handler)
    assert not inbox.process(_message("e-1"), handler)
    assert Inbox(any_engine, "shipping").process(_message("e-1"), handler)  # own inbox
    assert calls == ["e-1", "e-1"]


def test_a_failing_handler_leaves_no_inbox_record(any_engine: Engine) -> None:
    inbox = Inbox(any_engine, "billing")

    def broken(_conn: Connection, _message: InboxMessage) -> None:
        raise RuntimeError("downstream database constraint")

    with pytest.raises(RuntimeError):
        inbox.process(_message("e-2"), broken)
    assert not inbox.seen("e-2")  # rolled back with the effect: it will be retried
    assert inbox.process(_message("e-2"), lambda _c, _m: None)


def _consume_until(consumer: InboxConsumer, total: int, *, commit: bool) -> tuple[int, int]:
    handled = skipped = 0

    def done() -> bool:
        nonlocal handled, skipped
        stats = consumer.poll_once(timeout_ms=200, commit=commit)
        handled, skipped = handled + stats.handled, skipped + stats.skipped
        return handled + skipped >= total
    wait_until(done, what=f"{total} messages")
    return handled, skipped


def test_redelivery_after_a_skipped_commit_has_no_second_effect(
        downstream: Engine, kafka_bootstrap: str) -> None:
    topic = f"lf-inbox-{uuid.uuid4().hex[:10]}"
    store = EventStore(downstream, hooks=[OutboxWriter(topic=topic)])
    appended = [e.event_id for _ in range(2) for e in append_run(store, run_history())[1]]
    publisher = KafkaPublisher(kafka_bootstrap, timeout_s=10)
    try:
        relay = Relay(downstream, publisher)
        wait_until(lambda: relay.run_once().claimed == 0, what="the relay to drain")
    finally:
        publisher.close()
    config = {"bootstrap_servers": kafka_bootstrap, "group_id": f"g-{topic}",
              "session_timeout_ms": 2000, "heartbeat_interval_ms": 500}

    first = InboxConsumer(config, downstream, record_effect, topics=[topic])
    try:  # effects commit, the offset commit is skipped: as if it crashed right there
        assert _consume_until(first, len(appended), commit=False) == (len(appended), 0)
    finally:
        first.close()
    restarted = InboxConsumer(config, downstream, record_effect, topics=[topic])
    try:
        assert _consume_until(restarted, len(appended), commit=True) == (0, len(appended))
    finally:
        restarted.close()
    assert effect_counts(downstream) == dict.fromkeys(appended, 1)
