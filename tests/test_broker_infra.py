"""The test broker itself: real produce/consume round trips against Tansu."""

from __future__ import annotations

import time
import uuid
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests._broker import TansuBroker, _list_topics, create_topics


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _producer(bootstrap: str) -> Any:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        allow_auto_create_topics=False,
        request_timeout_ms=5000,
        max_block_ms=5000,
    )


def _read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 5.0) -> list[Any]:
    """Read partition 0 from the beginning until ``expected`` records or timeout.

    Reads a little past ``expected`` so that extra records would be noticed.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        auto_offset_reset="earliest",
        request_timeout_ms=5000,
    )
    records: list[Any] = []
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for part_records in batch.values():
                records.extend(part_records)
            if len(records) >= expected:
                # One more short poll: anything else here is a bug.
                for part_records in consumer.poll(timeout_ms=300).values():
                    records.extend(part_records)
                break
    finally:
        consumer.close()
    return records


def test_produce_and_consume_roundtrip(kafka_bootstrap: str) -> None:
    topic = _topic("infra-roundtrip")
    create_topics(kafka_bootstrap, [topic])

    producer = _producer(kafka_bootstrap)
    try:
        for i in range(5):
            future = producer.send(
                topic,
                key=b"run-42",
                value=f"event-{i}".encode(),
                headers=[("event_type", b"RunStarted"), ("seq", str(i).encode())],
            )
            metadata = future.get(timeout=5)
            assert metadata.topic == topic
            assert metadata.partition == 0
        producer.flush(timeout=5)
    finally:
        producer.close(timeout=5)

    records = _read_all(kafka_bootstrap, topic, expected=5)
    assert [r.key for r in records] == [b"run-42"] * 5
    assert [r.value for r in records] == [f"event-{i}".encode() for i in range(5)]
    assert [list(r.headers) for r in records] == [
        [("event_type", b"RunStarted"), ("seq", str(i).encode())] for i in range(5)
    ]
    offsets = [r.offset for r in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == 5


def test_restart_empties_storage(tansu: TansuBroker, kafka_bootstrap: str) -> None:
    assert tansu.bootstrap == kafka_bootstrap
    topic = _topic("infra-restart")
    create_topics(tansu.bootstrap, [topic])

    producer = _producer(tansu.bootstrap)
    try:
        producer.send(topic, key=b"k", value=b"before-restart").get(timeout=5)
    finally:
        producer.close(timeout=5)
    assert [r.value for r in _read_all(tansu.bootstrap, topic, expected=1)] == [b"before-restart"]

    old_pid, old_port = tansu.pid, tansu.port
    tansu.restart()
    assert tansu.port == old_port
    assert tansu.pid is not None and tansu.pid != old_pid
    assert tansu.bootstrap == kafka_bootstrap
    # Memory storage: the topic is gone with the old process.
    assert topic not in _list_topics(tansu.bootstrap)

    create_topics(tansu.bootstrap, [topic])
    producer = _producer(tansu.bootstrap)
    try:
        producer.send(topic, key=b"k", value=b"after-restart").get(timeout=5)
    finally:
        producer.close(timeout=5)

    records = _read_all(tansu.bootstrap, topic, expected=1)
    assert [r.value for r in records] == [b"after-restart"]
    assert records[0].offset == 0
