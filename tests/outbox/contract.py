"""The `Publisher` contract: what the relay relies on from wherever it sends messages.

Each backend module subclasses `PublisherContract` and provides the fixtures
`publisher` (a working one), `unreachable` (one whose destination cannot be
reached) and `read_back` (how a consumer of that destination reads a topic);
pytest does not collect the base. The relay (`outbox/_relay.py`) counts on:

* one outcome per message, in batch order: `None` once the destination holds the
  message, else the exception why not; `publish` itself does not raise, whatever
  happens at the destination;
* what is read back is what was sent: topic, key, value, and every header (the
  outbox's `idempotency-key`, `event-type`, `run-id`, `stream-version`,
  `position`, the CloudEvents `ce_*` and the dead-letter `*_dlt-*` ones) with
  its value, in order;
* messages of one key are read back in the order they were published;
* an empty value (a dead letter whose value was refused) reads back empty;
* `close` may be called more than once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from ledgerflow.domain.events import RunCompleted, StepCompleted
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import RecordedEvent
from ledgerflow.outbox import OutboundMessage, Publisher, envelope, message_headers


@dataclass(frozen=True)
class Received:
    """A message as a consumer of the destination reads it back."""

    topic: str
    key: str | None
    value: Any  # the JSON value sent, or the text of a value that is not JSON
    headers: list[tuple[str, str]]


def as_received(message: OutboundMessage) -> Received:
    """What reading `message` back must give."""
    return Received(message.topic, message.key, decoded(message.value),
                    [(name, raw.decode()) for name, raw in message.headers])


def decoded(value: bytes) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value.decode("utf-8", errors="replace")


ReadBack = Callable[[str, int], list[Received]]
"""`read_back(topic, expected)`: every message of `topic`, oldest first (waiting for
`expected` of them where the destination is asynchronous)."""


def event_message(topic: str, run_id: str, version: int, *,
                  event: Any = None) -> OutboundMessage:
    """An outbox message as the relay sends it: the envelope and the headers the
    `OutboxWriter` stores for a recorded event."""
    event = event or StepCompleted(step_id=f"step-{version}", result={"n": version})
    recorded = RecordedEvent(
        position=1000 + version, stream_id=run_id, version=version,
        event_id=str(uuid.uuid4()), type=type(event).__name__, schema_version=1,
        event=event, metadata=run_metadata("checkout", "1", "acme", correlation_id=run_id),
        recorded_at=datetime(2026, 1, 2, 3, 4, 5, version, tzinfo=UTC))
    value = json.dumps(envelope(recorded), ensure_ascii=False).encode()
    headers = [(name, text.encode()) for name, text in message_headers(recorded, "shop")]
    return OutboundMessage(topic, run_id, value, headers)


class PublisherContract:
    @pytest.fixture
    def publisher(self) -> Iterator[Publisher]:
        raise NotImplementedError

    @pytest.fixture
    def unreachable(self) -> Iterator[Publisher]:
        """A publisher whose destination cannot be reached."""
        raise NotImplementedError

    @pytest.fixture
    def read_back(self) -> ReadBack:
        raise NotImplementedError

    @pytest.fixture
    def topic(self) -> str:
        return f"contract-{uuid.uuid4().hex[:12]}"

    def test_a_message_reads_back_with_its_key_value_and_every_header(
            self, publisher: Publisher, read_back: ReadBack, topic: str) -> None:
        run = str(uuid.uuid4())
        message = event_message(topic, run, 7, event=RunCompleted(
            result={"text": "ünï€ \"quoted\"\ttab", "none": None, "list": [1, 2.5, True]}))
        dead_letter = OutboundMessage(topic, run, b"", [
            *message.headers, ("kafka_dlt-original-topic", b"runs"),
            ("kafka_dlt-exception-message", "zu groß".encode())])

        assert publisher.publish([message, dead_letter]) == [None, None]

        received = read_back(topic, 2)
        assert received == [as_received(message), as_received(dead_letter)]
        headers = dict(received[0].headers)
        assert {"idempotency-key", "event-type", "run-id", "stream-version", "position",
                "ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time",
                "ce_subject", "content-type"} <= set(headers)
        assert (headers["event-type"], headers["run-id"], headers["stream-version"],
                headers["position"]) == ("RunCompleted", run, "7", "1007")
        assert received[1].value == ""

    def test_a_batch_of_n_messages_gives_n_outcomes_and_n_records_in_key_order(
            self, publisher: Publisher, read_back: ReadBack, topic: str) -> None:
        runs = [str(uuid.uuid4()) for _ in range(3)]
        batch = [event_message(topic, runs[i % 3], i // 3 + 1) for i in range(30)]
        unkeyed = OutboundMessage(topic, None, b'{"ping": true}', [])
        batch.insert(10, unkeyed)

        outcomes = publisher.publish(batch)

        assert outcomes == [None] * len(batch)
        received = read_back(topic, len(batch))
        assert sorted(received, key=repr) == sorted(map(as_received, batch), key=repr)
        for key in [*runs, None]:
            assert [r for r in received if r.key == key] == \
                [as_received(m) for m in batch if m.key == key]

    def test_messages_go_to_the_topic_each_one_names(
            self, publisher: Publisher, read_back: ReadBack, topic: str) -> None:
        audit = f"{topic}.audit"
        run = str(uuid.uuid4())
        main, copy = event_message(topic, run, 1), event_message(audit, run, 1)

        assert publisher.publish([main, copy, event_message(topic, run, 2)]) == [None] * 3

        assert [r.value["streamVersion"] for r in read_back(topic, 2)] == [1, 2]
        assert read_back(audit, 1) == [as_received(copy)]

    def test_successive_batches_append_and_an_empty_batch_sends_nothing(
            self, publisher: Publisher, read_back: ReadBack, topic: str) -> None:
        run = str(uuid.uuid4())
        first, second = event_message(topic, run, 1), event_message(topic, run, 2)
        assert publisher.publish([first]) == [None]
        assert publisher.publish([]) == []
        assert publisher.publish([second]) == [None]
        assert read_back(topic, 2) == [as_received(first), as_received(second)]

    def test_an_unreachable_destination_fails_each_message_without_raising(
            self, unreachable: Publisher, topic: str) -> None:
        batch = [event_message(topic, str(uuid.uuid4()), 1) for _ in range(3)]

        outcomes = unreachable.publish(batch)

        assert len(outcomes) == len(batch)
        for outcome in outcomes:
            assert isinstance(outcome, Exception), outcome
            assert str(outcome) or repr(outcome)  # the relay stores it as last_error
        unreachable.close()

    def test_close_may_be_called_twice_after_use_or_none(
            self, publisher: Publisher, unreachable: Publisher, topic: str) -> None:
        assert publisher.publish([event_message(topic, str(uuid.uuid4()), 1)]) == [None]
        publisher.close()
        publisher.close()
        unreachable.close()  # never used
        unreachable.close()

