"""Run ids by prefix (`queries.resolve_run_id`), on both backends: what the CLI's short
ids and the API's `{id}` rely on."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import AmbiguousRunId, UnknownRun
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend
from ledgerflow.eventstore.database import backend_for, create_engine, normalize_url
from ledgerflow.migrations import upgrade_all
from ledgerflow.projections import InlineProjections, default_projections, queries, rebuild
from ledgerflow.projections._schema import run_views
from tests.conftest import PG_SERVER

IDS = ["5f3a9c21-aaaa", "5f3a9c21-bbbb", "5f3a9d00-cccc", "B-1", "50%_off*?[x]", "50%_offer"]


def _create(store: EventStore, run_id: str, tenant: str | None = None) -> None:
    meta = {"tenantId": tenant} if tenant else {}
    store.append(StreamAppend(run_id, [NewEvent(ev.RunCreated(
        workflow_id="wf", workflow_version="1", tenant_meta=meta))], expected_version=0))


@pytest.fixture
def runs(store: EventStore) -> EventStore:
    for run_id in IDS:
        _create(store, run_id, "acme" if run_id.startswith("5f3a9d") else None)
    return store


def test_a_whole_id_or_a_unique_prefix_names_one_run(runs: EventStore) -> None:
    with runs.engine.connect() as conn:
        assert queries.resolve_run_id(conn, "5f3a9c21-bbbb") == "5f3a9c21-bbbb"
        assert queries.resolve_run_id(conn, "5f3a9d") == "5f3a9d00-cccc"
        assert queries.resolve_run_id(conn, "B-1") == "B-1"  # short, but whole
        assert queries.find_run(conn, "5f3a9c21-a").run_id == "5f3a9c21-aaaa"


def test_an_ambiguous_prefix_lists_its_candidates(runs: EventStore) -> None:
    with runs.engine.connect() as conn, pytest.raises(AmbiguousRunId) as caught:
        queries.resolve_run_id(conn, "5f3a9c")
    assert caught.value.candidates == ["5f3a9c21-aaaa", "5f3a9c21-bbbb"]
    assert caught.value.http_status == 409
    assert "5f3a9c21-aaaa, 5f3a9c21-bbbb" in str(caught.value)
    assert caught.value.details()["candidates"] == ["5f3a9c21-aaaa", "5f3a9c21-bbbb"]


def test_short_unknown_and_other_tenants_prefixes_name_no_run(runs: EventStore) -> None:
    with runs.engine.connect() as conn:
        for asked, tenant in (("5f3a9", None), ("ffffff", None), ("5f3a9d", "globex"),
                              ("5f3a9c21-aaaa", "acme"), ("b-1", None)):
            with pytest.raises(UnknownRun):
                queries.resolve_run_id(conn, asked, tenant_id=tenant)
        assert queries.resolve_run_id(conn, "5f3a9d", tenant_id="acme") == "5f3a9d00-cccc"


def test_wildcards_in_a_prefix_are_literal(runs: EventStore) -> None:
    with runs.engine.connect() as conn:
        assert queries.resolve_run_id(conn, "50%_off*") == "50%_off*?[x]"
        assert queries.resolve_run_id(conn, "50%_offe") == "50%_offer"
        with pytest.raises(AmbiguousRunId):
            queries.resolve_run_id(conn, "50%_of")
        with pytest.raises(UnknownRun):
            queries.resolve_run_id(conn, "50%%_of")


def test_a_prefix_is_found_by_an_index(runs: EventStore) -> None:
    engine: Engine = runs.engine
    condition = backend_for(engine).starts_with(run_views.c.run_id, "5f3a9c")
    query = sa.select(run_views.c.run_id).where(condition)
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.begin() as conn:
        if backend_for(conn).name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert "Index" in plan and "run_views" in plan, plan
        else:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}"))
            assert "USING" in plan and "INDEX" in plan and "SCAN" not in plan, plan


def test_on_postgresql_the_prefix_index_serves_any_collation(tmp_path: object) -> None:
    """Under a linguistic collation the primary key cannot serve `LIKE 'prefix%'`; the
    `varchar_pattern_ops` index of projections migration 2 does."""
    name = f"lf_icu_{uuid.uuid4().hex[:10]}"
    url = sa.engine.make_url(normalize_url(PG_SERVER))
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE 'C.UTF-8' "
                                 "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    except sa.exc.DBAPIError:
        admin.dispose()
        pytest.skip("this PostgreSQL cannot make an ICU database")
    engine = create_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade_all(engine)
        store = EventStore(engine, hooks=[InlineProjections()])
        for n in range(200):
            _create(store, f"{n:03d}{uuid.uuid4()}")
        condition = backend_for(engine).starts_with(run_views.c.run_id, "123")
        query = sa.select(run_views.c.run_id).where(condition)
        compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE run_views")
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
        assert "run_views_id_prefix" in plan and "Index Cond" in plan, plan
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def test_a_rebuild_keeps_the_prefix_index_as_declared(pg_engine: Engine) -> None:
    store = EventStore(pg_engine, hooks=[InlineProjections()])
    _create(store, "5f3a9c21-aaaa")
    rebuild(store, default_projections())
    with pg_engine.connect() as conn:
        definition = conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'run_views_id_prefix'").scalar()
        assert queries.resolve_run_id(conn, "5f3a9c") == "5f3a9c21-aaaa"
    assert definition is not None and "varchar_pattern_ops" in definition
