"""Numbered, append-only schema migrations with a version table.

Each component (event store, projections, outbox, engine) owns a list of
`Migration`s numbered 1..n. `upgrade` applies the missing ones in order, each in
its own transaction, under a lock that lets two migrators run at once safely:
on PostgreSQL a transaction-scoped advisory lock, on SQLite the database write
lock taken by `BEGIN IMMEDIATE`. Never edit a released migration; add one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.eventstore.database import is_postgres
from ledgerflow.eventstore.schema import (
    VERSION_CONFLICT_FUNCTION,
    events,
    metadata,
    schema_migrations,
)

MIGRATION_LOCK_KEY = 0x1ED6E7F1  # advisory lock id, any constant unique to ledgerflow


@dataclass(frozen=True)
class Migration:
    """One schema step of a component."""

    component: str
    version: int
    description: str
    apply: Callable[[Connection], None]


def create_tables(*names: str) -> Callable[[Connection], None]:
    """A migration step that creates the named tables (and their indexes) from `metadata`."""

    def apply(conn: Connection) -> None:
        metadata.create_all(conn, tables=[metadata.tables[name] for name in names])

    return apply


def _lock(conn: Connection) -> None:
    if is_postgres(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    schema_migrations.create(conn, checkfirst=True)


def applied_versions(engine: Engine) -> dict[str, int]:
    """The highest applied version of each component (empty before any upgrade)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("schema_migrations"):
            return {}
        rows = conn.execute(
            sa.select(schema_migrations.c.component, sa.func.max(schema_migrations.c.version))
            .group_by(schema_migrations.c.component)
        )
        return {component: int(version) for component, version in rows}


def upgrade(engine: Engine, migrations: Sequence[Migration]) -> list[Migration]:
    """Apply the migrations not yet applied, in (component order given, version) order.

    Returns the migrations this call applied; a second call returns [].
    """
    _check_numbering(migrations)
    applied: list[Migration] = []
    for migration in migrations:
        with engine.begin() as conn:
            _lock(conn)
            done = conn.execute(
                sa.select(schema_migrations.c.version).where(
                    schema_migrations.c.component == migration.component,
                    schema_migrations.c.version == migration.version,
                )
            ).first()
            if done is not None:
                continue
            migration.apply(conn)
            conn.execute(
                schema_migrations.insert().values(
                    component=migration.component,
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
            applied.append(migration)
    return applied


def _check_numbering(migrations: Sequence[Migration]) -> None:
    by_component: dict[str, list[int]] = {}
    for migration in migrations:
        by_component.setdefault(migration.component, []).append(migration.version)
    for component, versions in by_component.items():
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(
                f"migrations of {component!r} must be numbered 1..n in order, got {versions}"
            )


MIGRATIONS: list[Migration] = [
    Migration("eventstore", 1, "events, idempotency keys", create_tables("events",
                                                                           "idempotency_keys")),
    Migration("eventstore", 2, "PostgreSQL: ledgerflow_version_conflict() for one-statement "
              "appends", lambda conn: VERSION_CONFLICT_FUNCTION(events, conn)),
]
"""The event store's own migrations."""
