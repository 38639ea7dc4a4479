"""The read-model tables, on the one shared `eventstore.schema.metadata`.

These `Table`s are the canonical (live) tables. A rebuild creates shadow copies
named `<table>__next` (see `projections._tables.shadow`), fills them by replay and
swaps them in by rename; the shadows never live in `metadata`, so the migration
test compares the upgraded database with exactly these definitions.

JSON columns use `none_as_null=True`: a Python `None` is stored as SQL NULL, the
same as a column an upsert left out, so a row built event by event (inline)
and a row built from a whole batch (rebuild) are identical in the database.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from ledgerflow.eventstore.schema import UTCDateTime, metadata


class _JSONText(TypeDecorator[Any]):
    """JSON as TEXT for SQLite: a column declared JSON has NUMERIC affinity there,
    which would turn a stored `0` or `1.5` document into a number."""

    impl = Text()
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


NullableJSON = _JSONText().with_variant(JSONB(none_as_null=True), "postgresql")
"""TEXT holding JSON on SQLite, JSONB on PostgreSQL; `None` is SQL NULL."""

run_views = Table(
    "run_views",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("workflow_id", String(200), nullable=False),
    Column("workflow_version", String(50), nullable=False),
    Column("status", String(20), nullable=False),
    Column("input", NullableJSON, nullable=True),
    Column("result", NullableJSON, nullable=True),
    Column("error", NullableJSON, nullable=True),
    Column("waitpoint", NullableJSON, nullable=True),
    Column("wake_at", UTCDateTime(), nullable=True),
    Column("timeout_at", UTCDateTime(), nullable=True),
    Column("parent_run_id", String(200), nullable=True),
    Column("parent_step_id", String(200), nullable=True),
    Column("children", NullableJSON, nullable=False),
    Column("tenant_id", String(200), nullable=True),
    Column("tenant_meta", NullableJSON, nullable=False),
    Column("tags", NullableJSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("version", Integer, nullable=False),
    # projections 2: lineage, outcome of a failed run's rollback, queue and priority
    Column("resumed_from", String(200), nullable=True),
    Column("rerun_of", String(200), nullable=True),
    Column("compensation", String(30), nullable=True),
    Column("queue", String(200), nullable=True),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    # Keyset pagination is newest first on (created_at, run_id); every list
    # filter has an index that ends with those two columns (scanned backwards).
    Index("run_views_created", "created_at", "run_id"),
    Index("run_views_status_created", "status", "created_at", "run_id"),
    Index("run_views_workflow_created", "workflow_id", "created_at", "run_id"),
    Index("run_views_tenant_created", "tenant_id", "created_at", "run_id"),
    Index("run_views_parent_created", "parent_run_id", "created_at", "run_id"),
    Index("run_views_resumed_created", "resumed_from", "created_at", "run_id"),
    Index("run_views_rerun_created", "rerun_of", "created_at", "run_id"),
    Index("run_views_compensation_created", "compensation", "created_at", "run_id"),
    # Run id prefixes (`queries.resolve_run_id`): LIKE 'prefix%' under any collation.
    # PostgreSQL only: SQLite matches a prefix on the primary key's index.
    Index("run_views_id_prefix", "run_id", postgresql_ops={"run_id": "varchar_pattern_ops"})
    .ddl_if(dialect="postgresql"),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("run_tags_tag_created", "tag", "created_at", "run_id"),
)
"""One row per (run, tag): tags are fixed at RunCreated; `created_at` copies the
run's so a tag list pages on one index."""

step_journal = Table(
    "step_journal",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("step_id", String(200), primary_key=True),
    Column("status", String(30), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("result", NullableJSON, nullable=True),
    Column("error", NullableJSON, nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("completed_at", UTCDateTime(), nullable=True),
    Column("first_position", BigInteger, nullable=False),  # journal order: first event's
)

run_status_counts = Table(
    "run_status_counts",
    metadata,
    Column("status", String(20), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("runs", BigInteger, nullable=False),
)
"""Finished runs per terminal status, in shards (`projections._counts`): a run's
terminal event adds 1 to one (status, shard) row, so the count is read in O(1)
whatever the history, and concurrent workers rarely update the same row."""

projection_checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("table_generation", Integer, nullable=False),
    Column("rebuild_owner", String(64), nullable=True),
    Column("rebuild_until", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)
"""Per projection: the code version its live tables were built by, the position
they reflect (catch-up mode; for inline projections the position of the last
rebuild's swap), how many times they were swapped, and the rebuild lease."""
