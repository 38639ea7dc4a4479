"""Transactional outbox relayed to Kafka: outbox rows written in the append
transaction, a relay with retries, back-off and a dead-letter topic, and a consumer
inbox for downstream services.

    store = EventStore(engine, hooks=[OutboxWriter()])
    relay = Relay(engine, publisher_from_settings(settings))
    relay.run_forever(stop_event)

Only failures that will happen again (poison) count toward a row's attempts; a broker
outage only delays rows (`is_poison`). A dead row holds the later rows of its run
until it is replayed or discarded (`on_dead="hold"`), or lets them pass (`"skip"`).
"""

from ledgerflow.outbox._admin import (
    DeadLetter,
    OutboxStatus,
    TopicLag,
    dead_letters,
    delivery,
    discard_dead,
    replay_dead,
    status,
)
from ledgerflow.outbox._errors import is_poison
from ledgerflow.outbox._publishers import (
    JsonlSinkPublisher,
    KafkaPublisher,
    NotAttempted,
    OutboundMessage,
    Outcome,
    Publisher,
    publisher_from_settings,
)
from ledgerflow.outbox._relay import (
    HOLD,
    ON_DEAD,
    PUBLISHED_POINT,
    SKIP,
    FaultPoint,
    Relay,
    RelayStats,
    claim,
)
from ledgerflow.outbox._retention import DEFAULT_RETENTION, purge_published
from ledgerflow.outbox._schema import DEAD, DISCARDED, MIGRATIONS, PENDING, PUBLISHED, inbox, outbox
from ledgerflow.outbox._writer import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_TOPIC,
    OutboxWriter,
    Router,
    envelope,
    message_headers,
)

__all__ = [
    "DEAD", "DEFAULT_MAX_EVENT_BYTES", "DEFAULT_RETENTION", "DEFAULT_TOPIC", "DISCARDED",
    "HOLD", "MIGRATIONS", "ON_DEAD", "PENDING", "PUBLISHED", "PUBLISHED_POINT", "SKIP",
    "DeadLetter", "FaultPoint", "JsonlSinkPublisher", "KafkaPublisher", "NotAttempted",
    "OutboundMessage",
    "OutboxStatus", "OutboxWriter", "Outcome", "Publisher", "Relay", "RelayStats", "Router",
    "TopicLag", "claim", "dead_letters", "delivery", "discard_dead", "envelope", "inbox",
    "is_poison", "message_headers", "outbox", "publisher_from_settings", "purge_published",
    "replay_dead", "status",
]
