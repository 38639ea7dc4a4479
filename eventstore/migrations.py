"""Numbered, append-only schema migrations with a version table.

Each component (event store, projections, outbox, engine) owns a list of
`Migration`s numbered 1..n. A migration states its DDL as released, as literal
SQL per dialect (DBOS keeps each migration as its own SQL): one built from
today's `Table` objects would silently change when a table does. Never edit a
released migration; add one. The `Table`s (`eventstore.schema` and the modules
that add to its `metadata`) stay the one description of today's schema, and a
test proves a database migrated to head matches them.

A migration concerns only the dialects it has SQL for: `upgrade` applies, and
records in `schema_migrations`, only those that concern the database's dialect
(eventstore 2, the PostgreSQL version-check function, is not listed on SQLite).
A database upgraded by an earlier ledgerflow may have recorded such a migration
as applied although it did nothing there; `upgrade` forgets that record (see
`_forget_foreign`), so an old and a fresh database record the same history.

`upgrade` applies the missing migrations in order, each in its own transaction,
under a lock that lets two migrators run at once safely (`Backend.serialize`: on
PostgreSQL a transaction-scoped advisory lock, on SQLite the database write lock
taken by `BEGIN IMMEDIATE`). The dialect names that key a migration's SQL are the
backends' names (`backend_for(bind).name`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.eventstore import _ddl
from ledgerflow.eventstore.chain import StoredEvent
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.schema import events, schema_migrations

MIGRATION_LOCK_KEY = 0x1ED6E7F1  # advisory lock id, any constant unique to ledgerflow

POSTGRESQL = "postgresql"
SQLITE = "sqlite"

_VERSION_TABLE = {POSTGRESQL: _ddl.VERSION_TABLE_POSTGRESQL, SQLITE: _ddl.VERSION_TABLE_SQLITE}
_NO_PARAMETERS = {"no_parameters": True}  # the DBAPI sees the SQL as written: no % escaping


@dataclass(frozen=True)
class Migration:
    """One schema step of a component, as released: its statements per dialect name
    ("postgresql", "sqlite"). The dialects it has SQL for are the ones it concerns."""

    component: str
    version: int
    description: str
    sql: Mapping[str, Sequence[str]]
    backfill: Callable[[Connection], None] | None = None
    """Data the statements cannot compute, written after them in the same transaction."""

    @property
    def dialects(self) -> frozenset[str]:
        return frozenset(self.sql)

    def apply(self, conn: Connection) -> None:
        """Run this migration's statements for `conn`'s dialect, in order."""
        for statement in self.sql[backend_for(conn).name]:
            conn.exec_driver_sql(statement, execution_options=_NO_PARAMETERS)
        if self.backfill is not None:
            self.backfill(conn)


_COLUMNS = ("position, stream_id, version, event_id, type, schema_version, data, metadata,"
            " recorded_at, hash")
_TYPED = [events.c[name] for name in StoredEvent._fields]
_FIRST_ROWS = sa.text(
    f"SELECT {_COLUMNS} FROM events ORDER BY stream_id, version LIMIT :limit").columns(*_TYPED)
_NEXT_ROWS = sa.text(
    f"SELECT {_COLUMNS} FROM events WHERE stream_id > :sid OR (stream_id = :sid AND"
    " version > :version) ORDER BY stream_id, version LIMIT :limit").columns(*_TYPED)
_SET_HASH = sa.text("UPDATE events SET hash = :hash WHERE position = :position")
_FILL_BATCH = 1000


def fill_chain(conn: Connection) -> None:
    """Eventstore 3's backfill: the hash of every stored event (`eventstore.chain`),
    each stream chained in version order as it stands, read in pages."""
    last: StoredEvent | None = None
    previous = ""
    while True:
        if last is None:
            page = conn.execute(_FIRST_ROWS, {"limit": _FILL_BATCH}).all()
        else:
            page = conn.execute(_NEXT_ROWS, {"sid": last.stream_id, "version": last.version,
                                             "limit": _FILL_BATCH}).all()
        if not page:
            return
        hashes = []
        for row in page:
            event = StoredEvent(*row)
            if last is None or last.stream_id != event.stream_id:
                previous = ""
            previous = event.expected_hash(previous)
            hashes.append({"hash": previous, "position": event.position})
            last = event
        conn.execute(_SET_HASH, hashes)


def concerning(migrations: Sequence[Migration], dialect: str) -> list[Migration]:
    """The migrations that concern `dialect`, in order."""
    return [m for m in migrations if dialect in m.dialects]


def _lock(conn: Connection) -> None:
    backend = backend_for(conn)  # refuses a database ledgerflow does not run on
    backend.serialize(conn, MIGRATION_LOCK_KEY)
    conn.exec_driver_sql(_VERSION_TABLE[backend.name], execution_options=_NO_PARAMETERS)


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


def pending(engine: Engine, migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations of `migrations` that concern `engine`'s dialect and are not applied."""
    with engine.connect() as conn:
        done: set[tuple[str, int]] = set()
        if sa.inspect(conn).has_table("schema_migrations"):
            done = {(c, int(v)) for c, v in conn.execute(
                sa.select(schema_migrations.c.component, schema_migrations.c.version))}
    return [m for m in concerning(migrations, backend_for(engine).name)
            if (m.component, m.version) not in done]


def upgrade(engine: Engine, migrations: Sequence[Migration]) -> list[Migration]:
    """Apply the migrations not yet applied that concern `engine`'s dialect, in the
    order given (components in dependency order, each numbered 1..n).

    Returns the migrations this call applied; a second call returns [].
    """
    _check_numbering(migrations)
    dialect = backend_for(engine).name
    with engine.begin() as conn:
        _lock(conn)
        _forget_foreign(conn, [m for m in migrations if dialect not in m.dialects])
    applied: list[Migration] = []
    for migration in concerning(migrations, dialect):
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


def _forget_foreign(conn: Connection, foreign: Sequence[Migration]) -> None:
    """Delete the version rows of migrations that do not concern this dialect.

    Before migrations declared their dialects, a PostgreSQL-only one was recorded on
    SQLite too, having done nothing there (eventstore 2). Its row claims a schema
    this database never had, and would make it look newer than a fresh one."""
    for migration in foreign:
        conn.execute(schema_migrations.delete().where(
            schema_migrations.c.component == migration.component,
            schema_migrations.c.version == migration.version))


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
    Migration("eventstore", 1, "events, idempotency keys",
              {POSTGRESQL: _ddl.V1_POSTGRESQL, SQLITE: _ddl.V1_SQLITE}),
    Migration("eventstore", 2, "PostgreSQL: ledgerflow_version_conflict() for one-statement "
              "appends", {POSTGRESQL: _ddl.V2_POSTGRESQL}),
    Migration("eventstore", 3, "events.hash: every stream's hash chain (tamper-evident audit)",
              {POSTGRESQL: _ddl.V3_POSTGRESQL, SQLITE: _ddl.V3_SQLITE}, fill_chain),
]
"""The event store's own migrations."""
