"""The publisher contract on Kafka (the session's Tansu broker), and what only a
broker does: refuse one message, which then holds back the later ones of its key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import errors as kafka_errors

from ledgerflow.outbox import KafkaPublisher, NotAttempted, OutboundMessage, Publisher
from tests._broker import free_port, read_topic
from tests.outbox.contract import (
    PublisherContract,
    ReadBack,
    Received,
    as_received,
    decoded,
    event_message,
)


def _received(record: Any) -> Received:
    return Received(record.topic, None if record.key is None else record.key.decode(),
                    decoded(record.value or b""),
                    [(name, raw.decode()) for name, raw in record.headers])


class TestKafkaPublisher(PublisherContract):
    @pytest.fixture
    def publisher(self, kafka_bootstrap: str) -> Iterator[KafkaPublisher]:
        kafka = KafkaPublisher(kafka_bootstrap, client_id="ledgerflow-contract",
                               timeout_s=10)
        yield kafka
        kafka.close()

    @pytest.fixture
    def unreachable(self) -> Iterator[Publisher]:
        kafka = KafkaPublisher(f"127.0.0.1:{free_port()}", timeout_s=1)
        yield kafka
        kafka.close()

    @pytest.fixture
    def read_back(self, kafka_bootstrap: str) -> ReadBack:
        def read(topic: str, expected: int) -> list[Received]:
            return [_received(r) for r in read_topic(kafka_bootstrap, topic, expected)]
        return read

    def test_a_refused_message_holds_back_its_key_and_other_keys_flow(
            self, publisher: KafkaPublisher, read_back: ReadBack, topic: str) -> None:
        run, other = str(uuid.uuid4()), str(uuid.uuid4())
        big = OutboundMessage(topic, run, b"x" * 2_000_000, [])  # over max_request_size
        after, passing = event_message(topic, run, 2), event_message(topic, other, 1)

        outcomes = publisher.publish([big, after, passing])

        assert isinstance(outcomes[0], kafka_errors.MessageSizeTooLargeError)
        assert isinstance(outcomes[1], NotAttempted)
        assert outcomes[2] is None
        assert read_back(topic, 1) == [as_received(passing)]
        assert publisher.publish([after]) == [None]  # the producer is still sound
        assert read_back(topic, 2) == [as_received(passing), as_received(after)]
