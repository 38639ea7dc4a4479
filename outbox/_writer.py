"""`OutboxWriter`: the append hook that writes outbox rows in the append transaction.

The message value and headers are serialized here, once, and stored as text; the
relay sends them as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ledgerflow.domain import metadata as meta_keys
from ledgerflow.eventstore.backend import Batch, Position
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.outbox._schema import PENDING, outbox

DEFAULT_TOPIC = "ledgerflow.run-events"
CONTENT_TYPE = "application/json"

PRODUCER_MAX_REQUEST_SIZE = 1_048_576
"""kafka-python's default `max_request_size`: the producer refuses a larger record."""

ENVELOPE_ALLOWANCE = 8_192
"""What a message adds to an event's data and metadata (which the store counts, see
`eventstore._encode.event_size`), with room to spare. Measured: the envelope's other
fields (`envelope`: ids, type, versions, position, time, tenant), the headers
(`message_headers`: the run id twice more, the event id twice, the workflow id in
`ce_source`) and the key, with every id at 200 characters (the API's limit), plus
Kafka's record batch overhead (61 bytes of batch header and the record's varints),
come to 2,201 bytes (tests/outbox/test_writer.py measures it with kafka-python's own
estimate). The rest leaves room for headers added on the way: a dead-letter copy's
reasons, a `traceparent`."""

DEFAULT_MAX_EVENT_BYTES = PRODUCER_MAX_REQUEST_SIZE - ENVELOPE_ALLOWANCE
"""`LEDGERFLOW_MAX_EVENT_BYTES` by default (1,040,384): the largest event whose
message the producer still sends with its default `max_request_size`."""

Router = Callable[[RecordedEvent], Sequence[str]]
"""Chooses the topic(s) of an event; an empty sequence leaves the event out of the outbox."""

_INSERT = outbox.insert()


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def envelope(recorded: RecordedEvent) -> dict[str, Any]:
    """The message value: the event's data wrapped in its envelope (camelCase keys)."""
    meta = recorded.metadata
    return {
        "eventId": recorded.event_id,
        "eventType": recorded.type,
        "schemaVersion": recorded.schema_version,
        "runId": recorded.stream_id,
        "workflowId": meta.get(meta_keys.WORKFLOW_ID),
        "workflowVersion": meta.get(meta_keys.WORKFLOW_VERSION),
        "streamVersion": recorded.version,
        "position": recorded.position,
        "recordedAt": recorded.recorded_at.isoformat(),
        "tenant": meta.get(meta_keys.TENANT),
        "metadata": meta,
        "data": recorded.data,
    }


def message_headers(recorded: RecordedEvent, source: str) -> list[tuple[str, str]]:
    """Kafka headers: ledgerflow's own plus CloudEvents binary-mode `ce_*` attributes."""
    workflow = recorded.metadata.get(meta_keys.WORKFLOW_ID)
    return [
        ("idempotency-key", recorded.event_id),
        ("event-type", recorded.type),
        ("run-id", recorded.stream_id),
        ("stream-version", str(recorded.version)),
        ("position", str(recorded.position)),
        ("ce_specversion", "1.0"),
        ("ce_id", recorded.event_id),
        ("ce_type", f"ledgerflow.run.{recorded.type}"),
        ("ce_source", f"{source}/workflows/{workflow}" if workflow else source),
        ("ce_subject", recorded.stream_id),
        ("ce_time", recorded.recorded_at.isoformat()),
        ("content-type", CONTENT_TYPE),
        *_trace_headers(recorded.metadata),
    ]


def _trace_headers(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """The run's W3C `traceparent` (stored at trigger), so consumers continue its trace."""
    traceparent = metadata.get(meta_keys.TRACEPARENT)
    return [("traceparent", traceparent)] if isinstance(traceparent, str) else []


class OutboxWriter:
    """An `AppendHook`: inserts the outbox rows of the recorded events, in one statement.

    `EventStore(engine, hooks=[OutboxWriter()])`. Every event goes to `topic`, keyed
    by its run id (the stream id), unless `router` chooses other topics for it.
    """

    def __init__(self, topic: str = DEFAULT_TOPIC, source: str = "ledgerflow",
                 router: Router | None = None) -> None:
        self.topic = topic
        self.source = source
        self.router = router

    def rows(self, recorded: Sequence[RecordedEvent],
             staged: bool = False) -> list[dict[str, Any]]:
        """The outbox rows (as insert parameters) for `recorded`; `staged`: their
        positions are not known yet (see `staged`)."""
        rows: list[dict[str, Any]] = []
        default = (self.topic,)
        for event in recorded:
            topics = default if self.router is None else self.router(event)
            if not topics:
                continue
            payload: Any = _dumps(envelope(event))
            headers: Any = _dumps(message_headers(event, self.source))
            if staged:
                payload, headers = _positioned(event.event_id, payload, headers)
            for topic in topics:
                rows.append({
                    "event_id": event.event_id, "topic": topic, "key": event.stream_id,
                    "payload": payload, "headers": headers, "status": PENDING,
                    "attempts": 0, "next_attempt_at": event.recorded_at,
                    "created_at": event.recorded_at,
                })
        return rows

    def write(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        """The outbox insert for `recorded`, now (the store defers `batches` instead)."""
        backend_for(conn).execute(conn, _INSERT, self.rows(recorded))

    def batches(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> list[Batch]:
        """The outbox insert for `recorded`, for the store to send with the projections'."""
        return [(_INSERT, self.rows(recorded))]

    def staged(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> list[Batch]:
        """`batches` for events whose positions are not known yet: the position in the
        payload and the headers is filled in by the statement that appends them."""
        return [(_INSERT, self.rows(recorded, staged=True))]


_PAYLOAD_AT = '"position":0,'
_HEADER_AT = '["position","0"]'


def _positioned(event_id: str, payload: str, headers: str,
                ) -> tuple[Position, Position]:
    """Payload and headers of an event at position 0, as texts around its position.

    The first `"position":0,` of the payload is the envelope's own: the keys before it
    hold strings and numbers only (a quote inside a JSON string is escaped, so no
    string can hold the pattern), and the nested objects come after it; likewise the
    position header comes after string headers only."""
    head, found, tail = payload.partition(_PAYLOAD_AT)
    before, found_header, after = headers.partition(_HEADER_AT)
    assert found and found_header, "the envelope or headers lost their position field"
    return (Position(event_id, head + '"position":', "," + tail),
            Position(event_id, before + '["position","', '"]' + after))
