"""Transactional outbox relayed to Kafka: outbox rows written in the append
transaction, a relay with retries, back-off and a dead-letter topic, and a consumer
inbox for downstream services.

    store = EventStore(engine, hooks=[OutboxWriter()])
    relay = Relay(engine, publisher_from_settings(settings))
    relay.run_forever(stop_event)
"""

from ledgerflow.outbox._admin import (
    DeadLetter,
    OutboxStatus,
    TopicLag,
    dead_letters,
    purge_published,
    replay_dead,
    status,
)
from ledgerflow.outbox._publishers import (
    JsonlSinkPublisher,
    KafkaPublisher,
    NotAttempted,
    OutboundMessage,
    Outcome,
    Publisher,
    publisher_from_settings,
)
from ledgerflow.outbox._relay import PUBLISHED_POINT, FaultPoint, Relay, RelayStats, claim
from ledgerflow.outbox._schema import DEAD, MIGRATIONS, PENDING, PUBLISHED, inbox, outbox
from ledgerflow.outbox._writer import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_TOPIC,
    OutboxWriter,
    Router,
    envelope,
    message_headers,
)

__all__ = [
    "DEAD", "DEFAULT_MAX_EVENT_BYTES", "DEFAULT_TOPIC", "MIGRATIONS", "PENDING", "PUBLISHED",
    "PUBLISHED_POINT",
    "DeadLetter", "FaultPoint", "JsonlSinkPublisher", "KafkaPublisher", "NotAttempted",
    "OutboundMessage",
    "OutboxStatus", "OutboxWriter", "Outcome", "Publisher", "Relay", "RelayStats", "Router",
    "TopicLag", "claim", "dead_letters", "envelope", "inbox", "message_headers", "outbox",
    "publisher_from_settings", "purge_published", "replay_dead", "status",
]
