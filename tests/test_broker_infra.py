"""The test broker itself: real produce/consume round trips against Tansu."""

from __future__ import annotations

import uuid
from typing import Any

from kafka import KafkaProducer

from tests._broker import TansuBroker, _list_topics, create_topics, read_topic


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


def _send(bootstrap: str, topic: str, value: bytes) -> None:
    producer = _producer(bootstrap)
    try:
        producer.send(topic, key=b"k", value=value).get(timeout=5)
    finally:
        producer.close(timeout=5)


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

    records = read_topic(kafka_bootstrap, topic, 5, timeout_s=5.0)
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

    _send(tansu.bootstrap, topic, b"before-restart")
    before = read_topic(tansu.bootstrap, topic, 1, timeout_s=5.0)
    assert [r.value for r in before] == [b"before-restart"]

    old_pid, old_port = tansu.pid, tansu.port
    tansu.restart()
    assert tansu.port == old_port
    assert tansu.pid is not None and tansu.pid != old_pid
    assert tansu.bootstrap == kafka_bootstrap
    # Memory storage: the topic is gone with the old process.
    assert topic not in _list_topics(tansu.bootstrap)

    create_topics(tansu.bootstrap, [topic])
    _send(tansu.bootstrap, topic, b"after-restart")

    records = read_topic(tansu.bootstrap, topic, 1, timeout_s=5.0)
    assert [r.value for r in records] == [b"after-restart"]
    assert records[0].offset == 0
