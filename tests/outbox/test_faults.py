"""Fault tests against the real broker: broker loss, and a relay killed mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore
from ledgerflow.outbox import PUBLISHED_POINT, KafkaPublisher, OutboxWriter, Relay
from ledgerflow.outbox.consumer import InboxConsumer
from tests._broker import TansuBroker, read_topic
from tests.outbox._support import (
    append_run,
    header,
    outbox_rows,
    run_history,
    status_counts,
    wait_until,
)
from tests.outbox.conftest import effect_counts, record_effect

ROOT = Path(__file__).resolve().parents[2]


def _topic() -> str:
    return f"lf-fault-{uuid.uuid4().hex[:10]}"


def _append_runs(store: EventStore, n: int) -> list[str]:
    return [e.event_id for _ in range(n) for e in append_run(store, run_history(steps=1))[1]]


def test_broker_lost_and_replaced_nothing_is_lost(pg_engine: Engine,
                                                  tansu: TansuBroker) -> None:
    topic = _topic()
    store = EventStore(pg_engine, hooks=[OutboxWriter(topic=topic)])
    publisher = KafkaPublisher(tansu.bootstrap, timeout_s=2)
    relay = Relay(pg_engine, publisher, max_attempts=1000, base_delay=0.05, max_delay=0.5,
                  idle_wait=0.02)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,))
    thread.start()
    try:
        before = _append_runs(store, 3)
        wait_until(lambda: status_counts(pg_engine) == {"published": len(before)},
                   what="the first runs to be published")
        seen_before = read_topic(tansu.bootstrap, topic, len(before))

        tansu.stop()
        during = _append_runs(store, 3)  # runs keep completing while the broker is gone
        wait_until(lambda: any(r.last_error and r.first_attempt_at < r.last_attempt_at
                               for r in outbox_rows(pg_engine)),
                   what="attempts to fail while the broker is gone")
        tansu.start()  # a fresh, empty broker on the same port
        wait_until(lambda: status_counts(pg_engine) == {"published": len(before + during)},
                   timeout_s=90, what="the relay to recover and publish the rest")
        seen_after = read_topic(tansu.bootstrap, topic, len(during))
    finally:
        stop.set()
        thread.join(timeout=60)
        publisher.close()

    delivered = {header(r, "idempotency-key") for r in seen_before + seen_after}
    assert set(before + during) <= delivered
    retried = [r for r in outbox_rows(pg_engine) if r.event_id in during]
    assert any(r.last_error for r in retried)
    assert all(r.attempts == 0 for r in retried)  # an outage counts no attempt
    assert all(r.first_attempt_at <= r.last_attempt_at for r in retried)
    assert publisher.rebuilds >= 2  # the producer was rebuilt, the relay never restarted


def test_relay_killed_between_publish_and_mark_redelivers_once_in_effect(
        downstream: Engine, pg_url: str, kafka_bootstrap: str) -> None:
    topic = _topic()
    store = EventStore(downstream, hooks=[OutboxWriter(topic=topic)])
    appended = _append_runs(store, 2)

    crashed = subprocess.run(
        [sys.executable, "-m", "tests.outbox._relay_process", pg_url, kafka_bootstrap],
        cwd=ROOT, env={**os.environ, "LEDGERFLOW_FAULTS": f"{PUBLISHED_POINT}=kill"},
        timeout=120, capture_output=True)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]
    assert status_counts(downstream) == {"pending": len(appended)}  # marks never committed
    in_flight = read_topic(kafka_bootstrap, topic, len(appended))  # acknowledged, not marked
    assert sorted(header(r, "idempotency-key") for r in in_flight) == sorted(appended)

    publisher = KafkaPublisher(kafka_bootstrap, timeout_s=10)
    try:
        relay = Relay(downstream, publisher)  # a restarted relay sends that batch again
        wait_until(lambda: relay.run_once().claimed == 0, what="the relay to drain")
    finally:
        publisher.close()
    records = read_topic(kafka_bootstrap, topic, len(appended) + len(in_flight))
    again = [header(r, "idempotency-key") for r in in_flight]
    assert sorted(header(r, "idempotency-key") for r in records) == sorted(appended + again)

    consumer = InboxConsumer({"bootstrap_servers": kafka_bootstrap, "group_id": None},
                             downstream, record_effect, partitions=[(topic, 0)],
                             name="billing")
    handled = skipped = 0
    try:
        def consumed_all() -> bool:
            nonlocal handled, skipped
            stats = consumer.poll_once(timeout_ms=200)
            handled, skipped = handled + stats.handled, skipped + stats.skipped
            return handled + skipped >= len(records)
        wait_until(consumed_all, what="the consumer to read every copy")
    finally:
        consumer.close()
    assert (handled, skipped) == (len(appended), len(in_flight))
    assert effect_counts(downstream) == dict.fromkeys(appended, 1)
