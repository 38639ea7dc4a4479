"""Which publish failures count toward a row's `max_attempts`: poison or outage.

A failure is about the message (poison) or about the destination (an outage).
Only poison will fail again however long the relay waits, so only poison counts
toward `max_attempts` and can make a row dead. An outage (the broker is down,
slow, electing a leader, or the connection broke) only delays rows: they wait
with a capped back-off for as long as it lasts, and none goes dead because of it.

Poison: the record is too large (`MessageSizeTooLargeError`,
`RecordListTooLargeError`), the topic is invalid (`InvalidTopicError`) or refused by
policy (`PolicyViolationError`, `InvalidPartitionsError`,
`InvalidReplicationFactorError`), the client may not write to it (any
`AuthorizationError`, e.g. `TopicAuthorizationFailedError`), the broker rejects the
record (`InvalidRecordError`, `CorruptRecordError`, `InvalidTimestampError`,
`UnsupportedForMessageFormatError`), and any error raised by a publisher that is
neither a Kafka error nor an `OSError` (a serializer's `TypeError`, a custom
publisher's own exception). A message a publisher did not attempt (`NotAttempted`)
did not fail at all.

Outage: every other Kafka error: the retriable ones (`KafkaTimeoutError`, which
is also what a broker that cannot be reached at all raises,
`KafkaConnectionError`, `NotLeaderForPartitionError`, `RequestTimedOutError`,
`NodeNotReadyError`, `NotEnoughReplicasError`, ...) and the producer-state errors
a rebuilt producer clears (`UnknownProducerIdError`, `OutOfOrderSequenceNumberError`,
...), plus `OSError` (connection refused or reset, a full disk under the JSON-lines
sink). `UnknownTopicOrPartitionError` is an outage too: topics are created
explicitly (broker auto-create is off), and a topic that is missing (a broker
restarted empty) is created again when the producer is rebuilt; a topic that
cannot be created fails with one of the poison errors above.
"""

from __future__ import annotations

from kafka import errors as kafka_errors

from ledgerflow.outbox._publishers import NotAttempted

POISON_KAFKA_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.PolicyViolationError,
    kafka_errors.InvalidPartitionsError,
    kafka_errors.InvalidReplicationFactorError,
    kafka_errors.AuthorizationError,
    kafka_errors.InvalidRecordError,
    kafka_errors.CorruptRecordError,
    kafka_errors.InvalidTimestampError,
    kafka_errors.UnsupportedForMessageFormatError,
)
"""Kafka errors about the message or its topic: sending it again fails again."""


def is_poison(exc: BaseException) -> bool:
    """True when `exc` will happen again on every attempt (it counts toward
    `max_attempts`); False for an outage, which only delays the row."""
    if isinstance(exc, POISON_KAFKA_ERRORS):
        return True
    return not isinstance(exc, kafka_errors.KafkaError | OSError | NotAttempted)
