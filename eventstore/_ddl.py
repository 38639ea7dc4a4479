"""The event store's DDL as released, per migration and per dialect.

These strings are history, not the current model: they were taken from a database
that the code of their release created (`pg_dump -s`, SQLite `.schema`, SQLAlchemy's
`CreateTable` compiled per dialect) and must never change. A later schema is a new
migration with its own constants. Today's tables are the `Table`s of
`eventstore.schema`; a test proves that a database migrated to head matches them.

Each constant is a tuple of statements run one by one, as written (no parameters:
a `%` is a `%`).
"""

from __future__ import annotations

VERSION_TABLE_POSTGRESQL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component VARCHAR(50) NOT NULL,
    version INTEGER NOT NULL,
    description TEXT NOT NULL,
    applied_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (component, version)
)"""
"""The version table every migration is recorded in (created before the first one)."""

VERSION_TABLE_SQLITE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component VARCHAR(50) NOT NULL,
    version INTEGER NOT NULL,
    description TEXT NOT NULL,
    applied_at DATETIME NOT NULL,
    PRIMARY KEY (component, version)
)"""

# ----------------------------------------------- 1: events, idempotency keys

V1_POSTGRESQL = (
    """
CREATE TABLE events (
    position BIGSERIAL NOT NULL,
    stream_id VARCHAR(200) NOT NULL,
    version INTEGER NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    type VARCHAR(120) NOT NULL,
    schema_version SMALLINT NOT NULL,
    data JSONB NOT NULL,
    metadata JSONB NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (position),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
    UNIQUE (event_id)
)""",
    """
CREATE TABLE idempotency_keys (
    scope VARCHAR(100) NOT NULL,
    key VARCHAR(255) NOT NULL,
    fingerprint VARCHAR(128) NOT NULL,
    status VARCHAR(20) NOT NULL,
    result JSONB,
    locked_until TIMESTAMP WITH TIME ZONE,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (scope, key)
)""",
    "CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at)",
)

V1_SQLITE = (
    """
CREATE TABLE events (
    position INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    stream_id VARCHAR(200) NOT NULL,
    version INTEGER NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    type VARCHAR(120) NOT NULL,
    schema_version SMALLINT NOT NULL,
    data JSON NOT NULL,
    metadata JSON NOT NULL,
    recorded_at DATETIME NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
    UNIQUE (event_id)
)""",
    """
CREATE TABLE idempotency_keys (
    scope VARCHAR(100) NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    fingerprint VARCHAR(128) NOT NULL,
    status VARCHAR(20) NOT NULL,
    result JSON,
    locked_until DATETIME,
    expires_at DATETIME NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (scope, "key")
)""",
    "CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at)",
)

# ------------------- 2: PostgreSQL only, the version check of one-statement appends

VERSION_CONFLICT_FUNCTION = """
CREATE OR REPLACE FUNCTION ledgerflow_version_conflict(stream text, expected integer,
                                                       actual integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stream % is at version %, not at the expected %', stream, actual,
        expected USING ERRCODE = 'LF409';
END
$$"""
"""Aborts a one-statement append whose stream is not at its expected version (see
`eventstore.postgres.insert_head`); SQLSTATE LF409 is `schema.VERSION_CONFLICT`."""

V2_POSTGRESQL = (VERSION_CONFLICT_FUNCTION,)

# ------------------------------------------- 3: the hash chain of every stream

CHAIN_STEP_FUNCTION = """
CREATE OR REPLACE FUNCTION ledgerflow_chain_step(state text, part bytea, head text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(COALESCE(state, head), 'UTF8') || part), 'hex')
$$"""
"""One link of a stream's hash chain: sha256(previous hash ‖ canonical event), the
previous hash being the aggregate's state, or `head` at a stream's first new row."""

CHAIN_AGGREGATE = """
CREATE OR REPLACE AGGREGATE ledgerflow_chain(bytea, text) (
    SFUNC = ledgerflow_chain_step, STYPE = text
)"""
"""The hashes of a stream's new events, as a window over them in version order (see
`eventstore.pg_append`)."""

V3_POSTGRESQL = (
    "ALTER TABLE events ADD COLUMN hash VARCHAR(64)",
    CHAIN_STEP_FUNCTION,
    CHAIN_AGGREGATE,
)
"""Followed by the backfill of `eventstore.migrations` (the hashes of existing events)."""

V3_SQLITE = ("ALTER TABLE events ADD COLUMN hash VARCHAR(64)",)
