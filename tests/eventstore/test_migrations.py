"""Migrations, on both backends: each states its DDL as released, a database at head
is the `Table` metadata, a database made by the first migrations upgrades to the
same schema as a fresh one, a migration runs only where its dialect is, and two
migrators can race."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import create_engine
from ledgerflow.eventstore.database import create_database, drop_database
from ledgerflow.eventstore.migrations import (
    Migration,
    applied_versions,
    concerning,
    pending,
    upgrade,
)
from ledgerflow.eventstore.schema import metadata
from ledgerflow.migrations import all_migrations, upgrade_all
from tests._concurrency import at_once
from tests.conftest import PG_SERVER

NewDatabase = Callable[[], Engine]


@pytest.fixture(params=["sqlite", "postgres"])
def new_database(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[NewDatabase]:
    """Makes empty databases of one backend; all are dropped after the test."""
    made: list[tuple[Engine, str | None]] = []

    def new() -> Engine:
        if request.param == "sqlite":
            engine = create_engine(f"sqlite:///{tmp_path}/db{len(made)}.db")
            made.append((engine, None))
            return engine
        name = f"lf_mig_{uuid.uuid4().hex[:10]}"
        engine = create_engine(create_database(PG_SERVER, name))
        made.append((engine, name))
        return engine

    yield new
    for engine, name in made:
        engine.dispose()
        if name is not None:
            drop_database(PG_SERVER, name)


@pytest.fixture
def empty_engine(new_database: NewDatabase) -> Engine:
    return new_database()


# ------------------------------------------------------------------ the schema as found


def schema_of(engine: Engine) -> dict[str, Any]:
    """Everything the database says about its schema: per table the columns (type as
    the dialect spells it, nullability, default), primary key, unique, check and
    foreign-key constraints and indexes (with their WHERE), all with their names; on
    PostgreSQL also the sequences behind columns and the functions; on SQLite which
    tables AUTOINCREMENT."""
    inspector = sa.inspect(engine)
    found: dict[str, Any] = {name: _table(engine, inspector, name)
                             for name in sorted(inspector.get_table_names())}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            found["<functions>"] = sorted(tuple(r) for r in conn.execute(sa.text(
                "SELECT p.proname, pg_get_function_arguments(p.oid), "
                "pg_get_function_result(p.oid), p.prosrc FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'")))
            found["<sequences>"] = sorted(tuple(r) for r in conn.execute(sa.text(
                "SELECT sequencename, data_type::text, start_value, increment_by, max_value, "
                "cache_size, cycle FROM pg_sequences WHERE schemaname = 'public'")))
        else:
            found["<autoincrement>"] = sorted(conn.execute(sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND sql LIKE '%AUTOINCREMENT%'")).scalars())
    return found


def _table(engine: Engine, inspector: sa.Inspector, table: str) -> dict[str, Any]:
    dialect = engine.dialect
    where = f"{dialect.name}_where"
    return {
        "columns": [(c["name"], c["type"].compile(dialect=dialect), bool(c["nullable"]),
                     c.get("default"), c.get("identity"), _serial(engine, table, c["name"]))
                    for c in inspector.get_columns(table)],
        "pk": (inspector.get_pk_constraint(table).get("name"),
               inspector.get_pk_constraint(table)["constrained_columns"]),
        "unique": sorted((u["name"] or "", u["column_names"])
                         for u in inspector.get_unique_constraints(table)),
        "check": sorted((c["name"] or "", str(c["sqltext"]))
                        for c in inspector.get_check_constraints(table)),
        "foreign": sorted((f["name"] or "", f["constrained_columns"], f["referred_table"],
                           f["referred_columns"]) for f in inspector.get_foreign_keys(table)),
        "indexes": sorted((i["name"] or "", [str(c) for c in i["column_names"]],
                           bool(i["unique"]), str(i.get("dialect_options", {}).get(where)))
                          for i in inspector.get_indexes(table)),
    }


def _serial(engine: Engine, table: str, column: str) -> str | None:
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        found: str | None = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                         {"t": table, "c": column}).scalar()
        return found


def recorded(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return sorted((c, int(v)) for c, v in conn.execute(sa.text(
            "SELECT component, version FROM schema_migrations")))


# ---------------------------------------------------------------------------- tests


def test_a_database_at_head_is_the_table_metadata(new_database: NewDatabase) -> None:
    """The `Table`s are today's schema: a database the migrations took to head equals
    one `metadata.create_all` made. Editing a Table without a migration fails here."""
    all_migrations()  # imports every package, so `metadata` holds every table
    migrated, from_tables = new_database(), new_database()
    upgrade_all(migrated)
    metadata.create_all(from_tables)
    expected = schema_of(from_tables)
    assert set(expected) >= {"events", "idempotency_keys", "run_views", "outbox", "run_queue"}
    assert schema_of(migrated) == expected


def test_a_database_at_migration_1_upgrades_to_the_schema_of_a_fresh_head(
        new_database: NewDatabase) -> None:
    old, fresh = new_database(), new_database()
    first = [m for m in all_migrations() if m.version == 1]
    assert {m.component for m in first} == {"eventstore", "projections", "outbox", "engine"}
    assert upgrade(old, first) == concerning(first, old.dialect.name)
    later = upgrade_all(old)
    assert later and all(m.version > 1 for m in later)
    upgrade_all(fresh)
    assert schema_of(old) == schema_of(fresh)
    assert recorded(old) == recorded(fresh)
    assert pending(old, all_migrations()) == pending(fresh, all_migrations()) == []


def test_a_migration_runs_and_is_recorded_only_where_its_dialect_is(
        empty_engine: Engine) -> None:
    first = upgrade_all(empty_engine)
    postgres = empty_engine.dialect.name == "postgresql"
    assert [m.version for m in first if m.component == "eventstore"] == \
        ([1, 2, 3] if postgres else [1, 3])
    assert upgrade_all(empty_engine) == []
    assert applied_versions(empty_engine)["eventstore"] == 3
    with empty_engine.connect() as conn:
        function = conn.execute(sa.text(
            "SELECT count(*) FROM pg_proc WHERE proname = 'ledgerflow_version_conflict'"
            if postgres else "SELECT 0")).scalar_one()
    assert function == (1 if postgres else 0)


def test_trigger_keys_in_run_keys_survive_the_upgrade_that_drops_it(
        empty_engine: Engine) -> None:
    """engine 2 moves run_keys (engine 1) into idempotency_keys: the same key with the
    same content still returns its run, other content is still a conflict."""
    from ledgerflow import Engine as Workflows
    from ledgerflow import WorkflowRegistry
    from ledgerflow.domain import events as ev
    from ledgerflow.domain.errors import IdempotencyConflict
    from ledgerflow.eventstore import EventStore
    from ledgerflow.runtime.runs import fingerprint

    upgrade(empty_engine, [m for m in all_migrations() if m.version == 1])
    created = ev.RunCreated(workflow_id="w", workflow_version="1", input={"x": 1})
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with empty_engine.begin() as conn:
        conn.execute(sa.text(
            'INSERT INTO run_keys ("key", run_id, fingerprint, created_at) '
            "VALUES ('order-1', 'run-from-before', :fp, :at)"),
            {"fp": fingerprint(created),
             "at": at.replace(tzinfo=None) if empty_engine.dialect.name == "sqlite" else at})
    assert ("engine", 2) in [(m.component, m.version) for m in upgrade_all(empty_engine)]
    assert "run_keys" not in sa.inspect(empty_engine).get_table_names()
    registry = WorkflowRegistry()
    registry.register("w", lambda ctx, data: data)
    engine = Workflows(EventStore(empty_engine), registry)
    again = engine.trigger("w", {"x": 1}, idempotency_key="order-1")
    assert (again.run_id, again.created) == ("run-from-before", False)
    with pytest.raises(IdempotencyConflict):
        engine.trigger("w", {"x": 2}, idempotency_key="order-1")
    assert engine.trigger("w", {"x": 1}, idempotency_key="order-2").created


def test_sqlite_forgets_the_postgresql_only_migration_an_older_release_recorded(
        tmp_path: object) -> None:
    """Before migrations declared their dialects, SQLite recorded eventstore 2 (which
    did nothing there) as applied. An upgrade forgets that row, applies nothing else
    twice, and leaves the database as a fresh one; a second upgrade is a no-op."""
    old = create_engine(f"sqlite:///{tmp_path}/old.db")
    fresh = create_engine(f"sqlite:///{tmp_path}/fresh.db")
    try:
        upgrade_all(old)
        with old.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO schema_migrations (component, version, description, applied_at)"
                " VALUES ('eventstore', 2, 'PostgreSQL: ledgerflow_version_conflict()', :at)"),
                {"at": datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)})
        assert ("eventstore", 2) in recorded(old)
        assert upgrade_all(old) == []
        assert upgrade_all(old) == []
        upgrade_all(fresh)
        assert recorded(old) == recorded(fresh)
        assert ("eventstore", 2) not in recorded(old)
        assert schema_of(old) == schema_of(fresh)
    finally:
        old.dispose()
        fresh.dispose()


def test_two_upgrades_at_once_both_finish_with_one_schema(empty_engine: Engine) -> None:
    results = at_once(lambda: upgrade_all(empty_engine), 2)
    assert not [r for r in results if isinstance(r, Exception)], results
    applied = [m for r in results if isinstance(r, list) for m in r]
    expected = concerning(all_migrations(), empty_engine.dialect.name)
    assert sorted(applied, key=str) == sorted(expected, key=str)  # each once, by one of them
    with empty_engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT component, version, count(*) FROM schema_migrations "
            "GROUP BY component, version")).all()
    assert all(n == 1 for _c, _v, n in rows) and len(rows) == len(expected)


def test_migrations_must_be_numbered_in_order(empty_engine: Engine) -> None:
    with pytest.raises(ValueError, match=r"numbered 1\.\.n"):
        upgrade(empty_engine, [Migration("x", 2, "skips one", {"sqlite": (), "postgresql": ()})])


def test_a_migration_runs_its_sql_as_written(empty_engine: Engine) -> None:
    """No parameter processing: a `%` in released SQL is a `%` (as in the PL/pgSQL of
    eventstore 2), on both backends."""
    create = "CREATE TABLE pct (v VARCHAR(20) DEFAULT '50% off' NOT NULL)"
    fill = "INSERT INTO pct (v) VALUES ('100%')"
    upgrade(empty_engine, [Migration("x", 1, "percent", {"sqlite": (create, fill),
                                                          "postgresql": (create, fill)})])
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT v FROM pct")).scalars().all() == ["100%"]
