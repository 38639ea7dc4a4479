"""Consumer inbox: process each Kafka message's effect exactly once in your own database.

For every message, `InboxConsumer` opens a transaction on your engine, records the
message's idempotency key in the `inbox` table and calls your handler with that
transaction's connection. Both commit together, so a redelivered message (a
consumer that crashed before committing its offset, a relay that published twice)
finds its key already recorded and is skipped. Offsets are committed only after
the effects of the messages before them committed.

    def handle(conn, message):
        conn.execute(orders.insert().values(...))

    consumer = InboxConsumer({"bootstrap_servers": "...", "group_id": "billing"},
                             engine, handle, topics=["ledgerflow.run-events"])
    consumer.run(stop_event)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy.engine import Connection, Engine

from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.store import Clock, utcnow
from ledgerflow.outbox._schema import inbox

IDEMPOTENCY_HEADER = "idempotency-key"
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A consumed message: where it came from, its key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, str]

    @property
    def idempotency_key(self) -> str:
        """The `idempotency-key` header (the event id), else topic/partition/offset."""
        return self.headers.get(IDEMPOTENCY_HEADER) or \
            f"{self.topic}/{self.partition}/{self.offset}"

    def json(self) -> Any:
        """The value decoded as JSON (a ledgerflow message: envelope + `data`)."""
        return json.loads(self.value)

    @classmethod
    def from_record(cls, record: Any) -> InboxMessage:
        headers = {name: (raw or b"").decode("utf-8", errors="replace")
                   for name, raw in (record.headers or [])}
        key = record.key.decode() if record.key is not None else None
        return cls(record.topic, record.partition, record.offset, key,
                   record.value or b"", headers)


Handler = Callable[[Connection, InboxMessage], None]


@dataclass(frozen=True, slots=True)
class ConsumeStats:
    handled: int = 0
    skipped: int = 0


class Inbox:
    """The `inbox` table of one consumer name: record-if-new inside a transaction."""

    def __init__(self, engine: Engine, name: str, clock: Clock = utcnow,
                 tracer_provider: trace.TracerProvider | None = None) -> None:
        self.engine = engine
        self._tracer = trace.get_tracer("ledgerflow.outbox", tracer_provider=tracer_provider)
        self.name = name
        self.clock = clock
        self._insert = backend_for(engine).insert_or_ignore(inbox).returning(
            inbox.c.idempotency_key)

    def process(self, message: InboxMessage, handler: Handler) -> bool:
        """Run `handler` for `message` unless its key was processed; True if it ran.

        The work runs in a `ledgerflow.consume` span (OpenTelemetry API) whose parent is
        the message's `traceparent` header: the producing run's trace continues here."""
        parent = _PROPAGATOR.extract({k: v for k, v in message.headers.items()
                                      if k == "traceparent"})
        with self._tracer.start_as_current_span(
                "ledgerflow.consume", context=parent, kind=trace.SpanKind.CONSUMER,
                attributes={"messaging.destination.name": message.topic,
                            "ledgerflow.consumer": self.name}):
            return self._process(message, handler)

    def _process(self, message: InboxMessage, handler: Handler) -> bool:
        with self.engine.begin() as conn:
            inserted = conn.execute(self._insert, {
                "consumer": self.name, "idempotency_key": message.idempotency_key,
                "topic": message.topic, "partition": message.partition,
                "offset": message.offset, "processed_at": self.clock()})
            if inserted.first() is None:  # recorded before: its effect is committed
                return False
            handler(conn, message)
            return True

    def seen(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(
                inbox.c.consumer == self.name, inbox.c.idempotency_key == key)).first() \
                is not None


class InboxConsumer:
    """A kafka-python consumer loop that applies each message once through an `Inbox`.

    `consumer_config` goes to `KafkaConsumer` (bootstrap_servers, group_id, ...);
    auto-commit is turned off: offsets are committed after the batch's effects.
    Pass `topics` to subscribe (group management) or `partitions` to `assign()`.
    """

    def __init__(self, consumer_config: Mapping[str, Any], engine: Engine,
                 handler: Handler, *, topics: Iterable[str] = (),
                 partitions: Iterable[tuple[str, int]] = (), name: str | None = None,
                 clock: Clock = utcnow) -> None:
        from kafka import KafkaConsumer, TopicPartition

        config = {"auto_offset_reset": "earliest", "allow_auto_create_topics": False,
                  **consumer_config, "enable_auto_commit": False}
        inbox_name = name or config.get("group_id")
        if not inbox_name:
            raise ValueError("InboxConsumer needs a name or a group_id to key its inbox")
        self.inbox = Inbox(engine, str(inbox_name), clock)
        self.handler = handler
        self.commits = config.get("group_id") is not None
        self._consumer: Any = KafkaConsumer(**config)
        if partitions:
            self._consumer.assign([TopicPartition(t, p) for t, p in partitions])
        else:
            self._consumer.subscribe(list(topics))

    def poll_once(self, timeout_ms: int = 500, *, commit: bool = True) -> ConsumeStats:
        """Poll one batch, apply each message once, then commit the offsets."""
        batch = self._consumer.poll(timeout_ms=timeout_ms)
        handled = skipped = 0
        for records in batch.values():
            for record in records:
                if self.inbox.process(InboxMessage.from_record(record), self.handler):
                    handled += 1
                else:
                    skipped += 1
        if batch and commit and self.commits:
            self._consumer.commit()
        return ConsumeStats(handled, skipped)

    def run(self, stop_event: threading.Event, timeout_ms: int = 500) -> None:
        """Consume until `stop_event` is set."""
        while not stop_event.is_set():
            self.poll_once(timeout_ms)

    def close(self) -> None:
        self._consumer.close(autocommit=False)
