"""A new run's record built from the trigger's own events equals the one read back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import WorkflowRegistry
from ledgerflow._app import Ledgerflow
from ledgerflow.projections import queries
from ledgerflow.settings import Settings

SHAPES: list[dict[str, Any]] = [
    {"input": {"n": 1, "nested": {"f": 1.5, "xs": [1, "a", None]}}},
    {"input": None, "tags": ["b", "a", "b"], "tenant_meta": {"tenantId": "acme", "plan": 2}},
    {"input": [1, 2], "delay": timedelta(seconds=30), "priority": 3},
    {"input": "text", "run_id": "fixed-run-id-1"},
]


@pytest.mark.parametrize("backend", ["sqlite_url", "pg_url"])
def test_record_from_trigger_events_equals_the_stored_view(
        backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "pg_url":
        request.getfixturevalue("pg_engine")  # empties the session database's tables
    registry = WorkflowRegistry()
    registry.register("record.noop", lambda ctx, data: data, "1")
    lf = Ledgerflow.open(Settings(database_url=request.getfixturevalue(backend)),
                         registry=registry)
    try:
        for shape in SHAPES:
            result = lf.engine.trigger("record.noop", **shape)
            built = queries.record_from_events(result.run_id, result.recorded)
            with lf.db.connect() as conn:
                stored = queries.get_run(conn, result.run_id)
            assert built is not None and stored is not None
            assert built.to_wire() == stored.to_wire()
            again = lf.engine.trigger("record.noop", **shape) if "run_id" in shape else None
            if again is not None:  # an existing run: nothing appended, nothing to build from
                assert not again.created
                assert queries.record_from_events(again.run_id, again.recorded) is None
    finally:
        lf.close()
