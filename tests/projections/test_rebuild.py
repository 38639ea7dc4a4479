"""Rebuilt tables equal the inline-built ones row for row; a replay is deterministic."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from ledgerflow.eventstore import EventStore
from ledgerflow.eventstore.schema import metadata
from ledgerflow.projections import default_projections, rebuild, status
from tests.eventstore.test_migrations import schema_of
from tests.projections._gen import append_interleaved, draw_runs
from tests.projections.conftest import snapshot


def _empty(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table.name != "schema_migrations":
                conn.execute(table.delete())


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_rebuild_equals_inline_row_for_row(store: EventStore, data: st.DataObject) -> None:
    _empty(store.engine)
    runs = draw_runs(data)
    appended = append_interleaved(store, data, runs)
    inline = snapshot(store.engine)
    assert len(inline["run_views"]) == len(runs)

    batch = data.draw(st.integers(1, 7), label="batch size")
    report = rebuild(store, default_projections(), batch_size=batch)
    assert report.events == appended
    assert snapshot(store.engine) == inline

    rebuild(store, default_projections(), batch_size=1000)
    assert snapshot(store.engine) == inline


def test_swapped_tables_have_the_canonical_schema(store: EventStore) -> None:
    before = schema_of(store.engine)
    rebuild(store, default_projections())
    rebuild(store, default_projections())
    assert schema_of(store.engine) == before
    generations = {s.name: s.table_generation for s in status(store, default_projections())}
    assert generations == {"run_views": 3, "step_journal": 3}


@pytest.mark.parametrize("name", ["run_views", "step_journal"])
def test_rebuild_one_projection_leaves_the_other(store: EventStore, name: str) -> None:
    rebuild(store, [p for p in default_projections() if p.name == name])
    found = {s.name: s.table_generation for s in status(store, default_projections())}
    other = "step_journal" if name == "run_views" else "run_views"
    assert (found[name], found[other]) == (2, 1)
