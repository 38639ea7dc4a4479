"""History at scale: every everyday query has an index that matches it (PostgreSQL).

Each query the hot paths run (get a run, list with status + workflow + tenant
filters and a cursor, a run's history, the worker's claim, the relay's claim, the
runs-per-status gauge, the outbox purge) is EXPLAINed with `enable_seqscan = off`:
that makes the planner's choice deterministic (a sequential scan is then taken only
when no index can serve the query at all), so a plan without `Seq Scan`, naming the
expected index, proves an index exists and matches. The list is also checked to page
on its index in order (no Sort of every matching row).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.store import _READ_STREAM
from ledgerflow.outbox import OutboxWriter, outbox
from ledgerflow.outbox._relay import heads_query
from ledgerflow.outbox._schema import PUBLISHED
from ledgerflow.projections import InlineProjections
from ledgerflow.projections._counts import LIVE
from ledgerflow.projections._schema import run_views
from ledgerflow.projections.queries import _RUN_COLUMNS, encode_cursor, list_runs_query
from ledgerflow.runtime import limits
from ledgerflow.runtime.queue import _claim_statement
from tests.outbox._support import append_run, run_history
from tests.projections.test_queries import _fill

NOW = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def filled(pg_engine: Engine) -> Iterator[Engine]:
    _fill(pg_engine, 5_000)
    store = EventStore(pg_engine, hooks=[InlineProjections(), OutboxWriter()])
    for i in range(30):
        append_run(store, run_history(steps=2, fail=i % 5 == 0), tenant=f"t-{i % 3}")
    with pg_engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    yield pg_engine


def _plan(engine: Engine, query: sa.ClauseElement, params: dict[str, Any] | None = None,
          *, sort: bool = True) -> str:
    compiled = query.compile(dialect=engine.dialect,
                             compile_kwargs={"render_postcompile": True})
    values = compiled.construct_params(params or {})
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        if not sort:  # only an index in the query's order can then serve it
            conn.exec_driver_sql("SET LOCAL enable_sort = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql(
            "EXPLAIN " + str(compiled), values))


def _uses(plan: str, index: str) -> None:
    assert "Seq Scan" not in plan, plan
    assert index in plan, plan


def test_get_a_run(filled: Engine) -> None:
    query = sa.select(*_RUN_COLUMNS).where(run_views.c.run_id == "run-42")
    plan = _plan(filled, query)
    _uses(plan, "Index Scan using run_views_")
    assert "Index Cond: ((run_id)::text = 'run-42'::text)" in plan, plan


def test_list_with_three_filters_and_a_deep_cursor_pages_on_an_index(filled: Engine) -> None:
    cursor = encode_cursor(datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=3_000),
                           "run-3000")
    query = list_runs_query(status="completed", workflow_id="wf-3", tenant_id="t-3",
                            limit=51, cursor=cursor)
    plan = _plan(filled, query, sort=False)
    _uses(plan, "Index Scan Backward using run_views_")
    assert "_created" in plan, plan  # read in (created_at, run_id) order, up to the limit
    assert "Sort" not in plan and "Bitmap" not in plan, plan


def test_history_of_a_run(filled: Engine) -> None:
    _uses(_plan(filled, _READ_STREAM, {"sid": "some-run", "from": 1}),
          "events_stream_version_key")


def test_worker_claim(filled: Engine) -> None:
    claim = _claim_statement(backend_for(filled))
    plan = _plan(filled, claim, {"now": NOW, "now_s": limits.epoch(NOW), "owner": "w",
                                 "until": NOW})
    assert "Seq Scan" not in plan and "run_queue_" in plan, plan


def test_relay_claim(filled: Engine) -> None:
    with filled.connect() as conn:
        query = heads_query(conn, NOW, 500)
    plan = _plan(filled, query)
    assert "Seq Scan" not in plan, plan
    # Pending rows only, found on an index (the pending-only one or (status, ...)):
    assert "Index Cond: ((status)::text = 'pending'::text)" in plan \
        or "Index Scan using outbox_pending_id" in plan, plan
    assert "outbox_pending_key" in plan, plan  # the per-key order check, pending rows only


def test_runs_per_status(filled: Engine) -> None:
    query = (sa.select(run_views.c.status, sa.func.count())
             .where(run_views.c.status.in_(LIVE)).group_by(run_views.c.status))
    _uses(_plan(filled, query), "run_views_status_created")


def test_outbox_purge_picks_on_its_index(filled: Engine) -> None:
    query = (sa.select(outbox.c.id).where(outbox.c.status == PUBLISHED,
                                          outbox.c.published_at < NOW)
             .order_by(outbox.c.published_at).limit(5000))
    _uses(_plan(filled, query), "outbox_status_published_at")
