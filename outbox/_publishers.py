"""Where the relay sends messages: a Kafka broker, or a JSON-lines file (the embedded default).

A `Publisher` sends a batch and reports, per message, whether the broker acknowledged
it (`None`) or the exception that stopped it. The relay marks rows from that report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kafka import KafkaAdminClient, KafkaProducer
from kafka import errors as kafka_errors
from kafka.admin import NewTopic
from kafka.net.compat import KafkaNetClient

log = logging.getLogger("ledgerflow.outbox.publisher")


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message as it goes to the broker."""

    topic: str
    key: str | None
    value: bytes
    headers: list[tuple[str, bytes]]


Outcome = BaseException | None
"""`None` when the broker acknowledged the message, else why it was not."""


class NotAttempted(Exception):
    """Not sent: an earlier message of the same topic and key failed in this batch."""


class Publisher(Protocol):
    """Sends a batch and waits for the broker; one outcome per message, in order.

    Messages of one (topic, key) are sent in batch order; after one of them fails
    at send time, the later ones of that key are not sent (`NotAttempted`).
    """

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]: ...

    def close(self) -> None: ...


class SettingsLike(Protocol):
    kafka_bootstrap: str | None
    sink_path: str
    outbox_publish_timeout: float


def publisher_from_settings(settings: SettingsLike) -> Publisher:
    """Kafka when `LEDGERFLOW_KAFKA_BOOTSTRAP` is set, else the JSON-lines sink."""
    if settings.kafka_bootstrap:
        return KafkaPublisher(settings.kafka_bootstrap,
                              timeout_s=settings.outbox_publish_timeout)
    return JsonlSinkPublisher(settings.sink_path)


# Errors that concern one record only: the producer itself is still sound.
_RECORD_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    TypeError,
    ValueError,
)


class KafkaPublisher:
    """kafka-python producer with `acks="all"` and idempotence; creates topics explicitly.

    The producer is built lazily and rebuilt after any failure that is not about a
    single record: after a broker restart an idempotent producer holds a producer id
    the new broker does not know, and never recovers on its own. Topics are created
    with the admin client before the first send to them (never by broker auto-create);
    a rebuilt producer checks them again, since a restarted broker may have lost them.

    `timeout_s` (`LEDGERFLOW_OUTBOX_PUBLISH_TIMEOUT`) bounds one attempt: connecting
    (`bootstrap_timeout_ms`), waiting for metadata or buffer space (`max_block_ms`),
    each request (`request_timeout_ms`), and the wait for the broker's
    acknowledgement of a batch (its flush). A message not acknowledged by then fails
    with `KafkaTimeoutError` and is sent again later (the producer is rebuilt).
    """

    def __init__(self, bootstrap: str, *, client_id: str = "ledgerflow-relay",
                 timeout_s: float = 30.0, partitions: int = 1,
                 producer_config: Mapping[str, Any] | None = None) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.timeout_s = timeout_s
        self.partitions = partitions
        self.producer_config = dict(producer_config or {})
        self.rebuilds = 0
        self._producer: Any = None
        self._topics: set[str] = set()
        self._lock = threading.Lock()

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        with self._lock:
            try:
                producer = self._ready({m.topic for m in messages})
            except Exception as exc:
                self._reset()
                return [exc] * len(messages)
            outcomes = self._send_all(producer, messages)
            if any(o is not None and not isinstance(o, _RECORD_ERRORS) for o in outcomes):
                self._reset()
            return outcomes

    def _send_all(self, producer: Any, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        """Send each message and wait, until the publish timeout, for the acknowledgements.

        A send that fails for a reason beyond its record (no metadata within
        `max_block_ms`: the broker is unreachable) fails every message after it the
        same way, so that one attempt waits for the broker once, not once per message.
        """
        deadline = time.monotonic() + self.timeout_s
        pending: list[Any] = []
        refused: set[tuple[str, str]] = set()
        broken: BaseException | None = None
        for m in messages:
            if broken is not None or (m.key is not None and (m.topic, m.key) in refused):
                pending.append(broken or NotAttempted(f"an earlier message of key {m.key} "
                                                      "failed"))
                continue
            try:
                pending.append(producer.send(m.topic, value=m.value, headers=m.headers,
                                             key=None if m.key is None else m.key.encode()))
            except Exception as exc:
                pending.append(exc)
                if not isinstance(exc, _RECORD_ERRORS):
                    broken = exc
                elif m.key is not None:
                    refused.add((m.topic, m.key))
        with contextlib.suppress(kafka_errors.KafkaTimeoutError):
            producer.flush(timeout=max(0.0, deadline - time.monotonic()))
        return [self._outcome(p) for p in pending]

    def _outcome(self, sent: Any) -> Outcome:
        if isinstance(sent, BaseException):
            return sent
        if sent.succeeded():
            return None
        if sent.failed():
            exc: BaseException = sent.exception
            return exc
        timeout: BaseException = kafka_errors.KafkaTimeoutError(
            f"not acknowledged by {self.bootstrap} within {self.timeout_s:g}s")
        return timeout

    def _ready(self, topics: set[str]) -> Any:
        if self._producer is None:
            self._producer = self._build()
            self.rebuilds += 1
        missing = topics - self._topics
        if missing:
            self._create_topics(missing)
            self._topics |= missing
        return self._producer

    def _build(self) -> Any:
        timeout_ms = int(self.timeout_s * 1000)
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap, "client_id": self.client_id,
            "acks": "all", "enable_idempotence": True,
            "allow_auto_create_topics": False, "linger_ms": 5,
            "request_timeout_ms": timeout_ms, "max_block_ms": timeout_ms,
            "bootstrap_timeout_ms": timeout_ms,
            "delivery_timeout_ms": timeout_ms + 1000,
        }
        config.update(self.producer_config)
        return KafkaProducer(**config)

    def _create_topics(self, topics: set[str]) -> None:
        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            for name in sorted(topics - existing):
                # one topic per request: a batch fails whole if one topic exists already
                with contextlib.suppress(kafka_errors.TopicAlreadyExistsError):
                    admin.create_topics([NewTopic(name, self.partitions, 1)])
        finally:
            admin.close()

    def _admin(self) -> Any:
        """An admin client; one that cannot reach the broker leaves no thread behind
        (kafka-python does not close the network client of an admin client whose
        bootstrap failed: its I/O thread would live on, one per failed attempt)."""
        timeout_ms = int(self.timeout_s * 1000)
        made: list[Any] = []

        def client(**config: Any) -> Any:
            made.append(KafkaNetClient(**config))
            return made[-1]

        try:
            return KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                    client_id=f"{self.client_id}-admin", kafka_client=client,
                                    request_timeout_ms=timeout_ms,
                                    bootstrap_timeout_ms=timeout_ms)
        except Exception:
            for net in made:
                net.close()
            raise

    def _reset(self) -> None:
        producer, self._producer = self._producer, None
        self._topics.clear()
        if producer is not None:
            abandon(producer, self.timeout_s)

    def close(self) -> None:
        """Send what is buffered (waiting up to the publish timeout), then end the producer."""
        with self._lock:
            producer, self._producer = self._producer, None
            if producer is None:
                return
            try:
                producer.close(timeout=self.timeout_s)
            except kafka_errors.KafkaTimeoutError:  # unacknowledged records: give them up
                abandon(producer, self.timeout_s)


def abandon(producer: Any, timeout_s: float) -> None:
    """End a producer at once, failing the records it still holds (the relay sends
    them again, through a new producer), so that its network thread and connections end.

    kafka-python's `close(timeout=0)` flushes before it stops the network thread and
    raises `KafkaTimeoutError` from that flush while records are unacknowledged:
    the thread would live on (one more per broker outage) and the producer's
    `__del__` would later print "Exception ignored ... KafkaTimeoutError". So the
    sender is force-closed first, as `close()` itself does once its flush returns:
    it fails every unfinished batch at once, and `close()` then finds nothing to wait for.
    """
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
    try:
        producer.close(timeout=timeout_s)
    except Exception:
        log.warning("an abandoned Kafka producer did not close cleanly", exc_info=True)


class JsonlSinkPublisher:
    """Appends each message as one JSON line to a file; durable (fsync) before it answers.

    Used when no broker is configured, so an embedded ledgerflow relays through the
    same machinery (claims, retries, dead letters) as a production one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        lines = [json.dumps(_as_json(m), ensure_ascii=False, separators=(",", ":")) + "\n"
                 for m in messages]
        try:
            with self._lock, open(self.path, "a", encoding="utf-8") as sink:
                sink.write("".join(lines))
                sink.flush()
                os.fsync(sink.fileno())
        except OSError as exc:
            return [exc] * len(messages)
        return [None] * len(messages)

    def close(self) -> None:
        """Nothing to release: the file is opened per batch."""


def _as_json(message: OutboundMessage) -> dict[str, Any]:
    try:
        value: Any = json.loads(message.value)
    except ValueError:
        value = message.value.decode("utf-8", errors="replace")
    return {"topic": message.topic, "key": message.key, "value": value,
            "headers": {name: raw.decode("utf-8", errors="replace")
                        for name, raw in message.headers}}
