"""The one source of truth for ledgerflow's tables.

Every package defines its tables on `metadata` here (the event store's own tables
are below; projections, outbox and the engine add theirs in their own modules).
These `Table`s describe today's schema and are what queries use. Migrations do not
build tables from them: each states its DDL as released (see `eventstore.migrations`),
and a test proves that a database migrated to head matches these definitions, so
a change here without a new migration fails that test.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from ledgerflow.eventstore import _ddl

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both backends (SQLite stores it naive).

    Its dialect checks stay outside the backend adapters (eventstore/backend.py) on
    purpose: this is SQLAlchemy's own per-dialect type mechanism, which hands the
    dialect to `process_bind_param` / `bind_processor` when it compiles a statement;
    a column type cannot hold a backend of its own.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: ledgerflow stores aware UTC times")
        return value.astimezone(UTC) if dialect.name != "sqlite" else \
            value.astimezone(UTC).replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On PostgreSQL one plain function (binds run ~30 times per workflow; the
        generic TypeDecorator chain around `process_bind_param` cost twice as much)."""
        if dialect.name == "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> datetime | None:
            if value is None or value.tzinfo is UTC:
                return value
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r}: ledgerflow stores aware UTC times")
            return value.astimezone(UTC)

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSON on SQLite, JSONB on PostgreSQL."""

PositionType = BigInteger().with_variant(Integer(), "sqlite")
"""SQLite only auto-increments an INTEGER PRIMARY KEY."""

events = Table(
    "events",
    metadata,
    Column("position", PositionType, primary_key=True, autoincrement=True),
    Column("stream_id", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(120), nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("data", JSONType, nullable=False),
    Column("metadata", JSONType, nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Column("hash", String(64), nullable=True),  # eventstore.chain; NULL only if tampered
    UniqueConstraint("stream_id", "version", name="events_stream_version_key"),
    sqlite_autoincrement=True,
)

VERSION_CONFLICT = "LF409"
"""SQLSTATE of `ledgerflow_version_conflict`: a stream was not at its expected version."""

VERSION_CONFLICT_FUNCTION = DDL(
    _ddl.VERSION_CONFLICT_FUNCTION.replace("%", "%%")  # DDL formats with %
).execute_if(dialect="postgresql")  # type: ignore[no-untyped-call]
"""PostgreSQL: the function that aborts a one-statement append whose stream is not at
its expected version (see `eventstore.postgres.insert_head`), as eventstore migration 2
released it; created with `events` when `metadata` creates the tables."""

sa_event.listen(events, "after_create", VERSION_CONFLICT_FUNCTION)
for _chain_ddl in (_ddl.CHAIN_STEP_FUNCTION, _ddl.CHAIN_AGGREGATE):
    # PostgreSQL: the hash chain's aggregate (eventstore migration 3), as released.
    _chain = DDL(_chain_ddl.replace("%", "%%"))  # type: ignore[no-untyped-call]
    sa_event.listen(events, "after_create",
                    _chain.execute_if(dialect="postgresql"))

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(100), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(128), nullable=False),
    Column("status", String(20), nullable=False),  # in_progress | completed
    Column("result", JSONType, nullable=True),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("idempotency_keys_expires_at", "expires_at"),
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("component", String(50), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("description", Text, nullable=False),
    Column("applied_at", UTCDateTime(), nullable=False),
)
