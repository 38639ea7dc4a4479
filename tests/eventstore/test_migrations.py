"""Migrations: an upgraded empty database is the Table metadata; upgrades are safe to race."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import create_engine
from ledgerflow.eventstore.database import create_database, drop_database
from ledgerflow.eventstore.migrations import Migration, applied_versions, upgrade
from ledgerflow.eventstore.schema import metadata
from ledgerflow.migrations import all_migrations, upgrade_all
from tests.conftest import PG_SERVER


@pytest.fixture(params=["sqlite", "postgres"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path}/empty.db")
        yield engine
        engine.dispose()
        return
    name = f"lf_mig_{uuid.uuid4().hex[:10]}"
    engine = create_engine(create_database(PG_SERVER, name))
    yield engine
    engine.dispose()
    drop_database(PG_SERVER, name)


def schema_of(engine: Engine) -> dict[str, object]:
    """Tables, columns (name, nullable), primary keys, unique sets and indexes, as found."""
    inspector = sa.inspect(engine)
    found: dict[str, object] = {}
    for table in inspector.get_table_names():
        found[table] = {
            "columns": sorted((c["name"], bool(c["nullable"]))
                              for c in inspector.get_columns(table)),
            "pk": sorted(inspector.get_pk_constraint(table)["constrained_columns"]),
            "unique": sorted(tuple(u["column_names"])
                             for u in inspector.get_unique_constraints(table))
            + sorted(tuple(i["column_names"]) for i in inspector.get_indexes(table)
                     if i["unique"]),
            "indexes": sorted(tuple(str(c) for c in i["column_names"])
                              for i in inspector.get_indexes(table) if not i["unique"]),
        }
    return found


def schema_of_metadata(engine: Engine) -> dict[str, object]:
    expected: dict[str, object] = {}
    for table in metadata.sorted_tables:
        uniques = [tuple(c.name for c in con.columns) for con in table.constraints
                   if isinstance(con, sa.UniqueConstraint)]
        uniques += [(col.name,) for col in table.columns if col.unique]
        expected[table.name] = {
            "columns": sorted((c.name, bool(c.nullable)) for c in table.columns),
            "pk": sorted(c.name for c in table.primary_key.columns),
            "unique": sorted(uniques)
            + sorted(tuple(c.name for c in i.columns) for i in table.indexes if i.unique),
            "indexes": sorted(tuple(_index_column_names(i)) for i in table.indexes
                              if not i.unique),
        }
    return expected


def _index_column_names(index: sa.Index) -> list[str]:
    return [getattr(e, "name", str(e)) for e in index.expressions]


def normalise(schema: dict[str, object]) -> dict[str, object]:
    # SQLite and PostgreSQL both report a UNIQUE constraint as its columns; some
    # report it as a unique index as well: compare the set of unique column tuples.
    out: dict[str, object] = {}
    for name, info in schema.items():
        assert isinstance(info, dict)
        out[name] = {**info, "unique": sorted(set(info["unique"]))}
    return out


def test_upgraded_empty_database_matches_the_table_metadata(empty_engine: Engine) -> None:
    all_migrations()  # imports every package, so `metadata` holds every table
    upgrade_all(empty_engine)
    assert normalise(schema_of(empty_engine)) == normalise(schema_of_metadata(empty_engine))


def test_second_upgrade_is_a_no_op(empty_engine: Engine) -> None:
    first = upgrade_all(empty_engine)
    assert [m.version for m in first if m.component == "eventstore"] == [1, 2]
    assert upgrade_all(empty_engine) == []
    assert applied_versions(empty_engine)["eventstore"] == 2


def test_two_upgrades_at_once_both_finish_with_one_schema(empty_engine: Engine) -> None:
    results: list[object] = []
    barrier = threading.Barrier(2)

    def migrate() -> None:
        barrier.wait()
        try:
            results.append(upgrade_all(empty_engine))
        except Exception as error:
            results.append(error)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [r for r in results if isinstance(r, Exception)], results
    applied = [m for r in results if isinstance(r, list) for m in r]
    assert len(applied) == len(all_migrations())  # each applied exactly once, by one of them
    with empty_engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT component, version, count(*) FROM schema_migrations "
            "GROUP BY component, version")).all()
    assert all(n == 1 for _c, _v, n in rows) and len(rows) == len(all_migrations())
    assert normalise(schema_of(empty_engine)) == normalise(schema_of_metadata(empty_engine))


def test_migrations_must_be_numbered_in_order(empty_engine: Engine) -> None:
    def noop(conn: sa.Connection) -> None:
        return None

    with pytest.raises(ValueError, match=r"numbered 1\.\.n"):
        upgrade(empty_engine, [Migration("x", 2, "skips one", noop)])
