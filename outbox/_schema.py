"""The outbox's tables and migrations (defined on the shared `eventstore.schema.metadata`).

`outbox` holds one row per (event, topic), written in the append transaction.
`payload` and `headers` are stored as the exact JSON text the relay sends (built
once, at append), so the relay never re-encodes an event.

`attempts` counts failed publish attempts that will fail again (poison, not
outages); a row goes dead when it reaches the relay's `max_attempts`. `status` is
pending, published, dead, or discarded (a dead row given up).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint, text

from ledgerflow.eventstore.migrations import POSTGRESQL, SQLITE, Migration
from ledgerflow.eventstore.schema import PositionType, UTCDateTime, metadata
from ledgerflow.outbox import _ddl

PENDING = "pending"
PUBLISHED = "published"
DEAD = "dead"
DISCARDED = "discarded"
"""A dead row an operator gave up on (`dlq discard`): never sent, and it holds no key."""

_PENDING_ONLY: dict[str, Any] = {"postgresql_where": text("status = 'pending'"),
                 "sqlite_where": text("status = 'pending'")}

outbox = Table(
    "outbox",
    metadata,
    Column("id", PositionType, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("topic", String(249), nullable=False),
    Column("key", String(200), nullable=True),
    Column("payload", Text, nullable=False),
    Column("headers", Text, nullable=False),
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("first_attempt_at", UTCDateTime(), nullable=True),
    Column("last_attempt_at", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("error_class", String(200), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("published_at", UTCDateTime(), nullable=True),
    UniqueConstraint("topic", "event_id", name="outbox_topic_event_id_key"),
    # The claim scans pending rows in id order and checks, per row, for an earlier
    # pending row of the same (topic, key): both lookups are on partial indexes.
    Index("outbox_pending_id", "id", **_PENDING_ONLY),
    Index("outbox_pending_key", "topic", "key", "id", **_PENDING_ONLY),
    Index("outbox_status_published_at", "status", "published_at"),
    sqlite_autoincrement=True,
)

inbox = Table(
    "inbox",
    metadata,
    Column("consumer", String(200), primary_key=True),
    Column("idempotency_key", String(200), primary_key=True),
    Column("topic", String(249), nullable=True),
    Column("partition", Integer, nullable=True),
    Column("offset", PositionType, nullable=True),
    Column("processed_at", UTCDateTime(), nullable=False),
)
"""A downstream consumer's record of the messages whose effects it committed."""

MIGRATIONS: list[Migration] = [
    Migration("outbox", 1, "outbox rows and consumer inbox",
              {POSTGRESQL: _ddl.V1_POSTGRESQL, SQLITE: _ddl.V1_SQLITE}),
]
