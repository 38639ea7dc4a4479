"""Append-only event store on SQLAlchemy Core (PostgreSQL via psycopg 3, SQLite)."""

from ledgerflow.eventstore.backend import Backend, Batch, Position
from ledgerflow.eventstore.chain import StoredEvent, Verdict, verify
from ledgerflow.eventstore.database import DEFAULT_URL, backend_for, create_engine, normalize_url
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
    FunctionHook,
    GlobalReader,
    PendingAppend,
    StreamReader,
    Transaction,
    utcnow,
)

__all__ = [
    "DEFAULT_URL",
    "MIGRATIONS",
    "Acquired",
    "AppendHook",
    "Backend",
    "Batch",
    "Clock",
    "EventStore",
    "FunctionHook",
    "GlobalReader",
    "IdempotencyInProgress",
    "IdempotencyKey",
    "IdempotencyKeys",
    "InProgress",
    "JSONType",
    "Migration",
    "NewEvent",
    "Outcome",
    "PendingAppend",
    "Position",
    "RecordedEvent",
    "Replay",
    "StoredEvent",
    "StreamAppend",
    "StreamReader",
    "Transaction",
    "UTCDateTime",
    "Verdict",
    "backend_for",
    "create_engine",
    "metadata",
    "new_id",
    "normalize_url",
    "run_once",
    "upgrade",
    "utcnow",
    "verify",
]
