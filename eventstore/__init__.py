"""Append-only event store on SQLAlchemy Core (PostgreSQL via psycopg 3, SQLite)."""

from ledgerflow.eventstore.database import DEFAULT_URL, create_engine, normalize_url
from ledgerflow.eventstore.idempotency import (
    Acquired,
    IdempotencyInProgress,
    IdempotencyKey,
    IdempotencyKeys,
    InProgress,
    Outcome,
    Replay,
    run_once,
)
from ledgerflow.eventstore.migrations import MIGRATIONS, Migration, upgrade
from ledgerflow.eventstore.records import NewEvent, RecordedEvent, StreamAppend, new_id
from ledgerflow.eventstore.schema import JSONType, UTCDateTime, metadata
from ledgerflow.eventstore.store import (
    AppendHook,
    Clock,
    EventStore,
    GlobalReader,
    PendingAppend,
    StreamReader,
    Transaction,
    utcnow,
)

__all__ = [
    "DEFAULT_URL", "MIGRATIONS", "Acquired", "AppendHook", "Clock", "EventStore",
    "GlobalReader", "IdempotencyInProgress", "IdempotencyKey", "IdempotencyKeys",
    "InProgress", "JSONType", "Migration", "NewEvent", "Outcome", "PendingAppend",
    "RecordedEvent", "Replay", "StreamAppend", "StreamReader", "Transaction", "UTCDateTime",
    "create_engine", "metadata", "new_id", "normalize_url", "run_once", "upgrade", "utcnow",
]
