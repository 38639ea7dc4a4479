"""Lineage and outcome on the run record: `resumedFrom`, `rerunOf`, a failed run's
`compensation`, and `priority`, projected from history, filterable, equal after a
rebuild; a store projected before (projections migration 1) is rebuilt to get them."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Engine, WorkflowRegistry
from ledgerflow.eventstore import EventStore
from ledgerflow.eventstore.migrations import upgrade as migrate
from ledgerflow.migrations import all_migrations, upgrade_all
from ledgerflow.projections import InlineProjections, default_projections, rebuild, status
from ledgerflow.projections.queries import get_run, list_runs
from ledgerflow.projections.rebuild import rebuild_stale
from ledgerflow.testing import FakeClock
from tests.eventstore.test_migrations import NewDatabase, new_database  # noqa: F401
from tests.projections.conftest import snapshot


class Declined(Exception):
    pass


def _workflows(registry: WorkflowRegistry) -> None:
    def undo(_result: Any) -> None:
        return None

    def broken_undo(_result: Any) -> None:
        raise RuntimeError("cannot undo")

    def saga(undo_fn: Any) -> Any:
        def run(ctx: Context, data: Any) -> Any:
            ctx.step("reserve", lambda: "held", compensate=undo_fn)
            return ctx.step("charge", _decline)
        return run

    registry.register("saga", saga(undo))
    registry.register("saga-broken", saga(broken_undo))
    registry.register("plain", lambda ctx, data: ctx.step("charge", _decline))


def _decline() -> None:
    raise Declined("card declined")


def _runs(engine: Engine) -> dict[str, str]:
    """A compensated, a compensation-failed and a plain failed run; a rerun and a
    resume of them; a run with a priority."""
    made = {name: engine.trigger(name).run_id for name in ("saga", "saga-broken", "plain")}
    made["urgent"] = engine.trigger("plain", priority=7).run_id
    engine.run_due()
    made["rerun"] = engine.rerun(made["saga"])
    made["resumed"] = engine.resume(made["plain"])
    return made


@pytest.fixture
def engine(any_engine: SAEngine) -> Engine:
    """An engine whose store keeps the run views inline, with `_workflows`."""
    registry, clock = WorkflowRegistry(), FakeClock()
    _workflows(registry)
    return Engine(EventStore(any_engine, hooks=[InlineProjections()], clock=clock), registry,
                  clock=clock)


def test_the_record_carries_lineage_compensation_and_priority(engine: Engine) -> None:
    made = _runs(engine)
    with engine.store.engine.connect() as conn:
        wire = {name: get_run(conn, run_id).to_wire()  # type: ignore[union-attr]
                for name, run_id in made.items()}

        def ids(**filters: str) -> set[str]:
            return {r.run_id for r in list_runs(conn, **filters)[0]}  # type: ignore[arg-type]

        assert ids(rerun_of=made["saga"]) == {made["rerun"]}
        assert ids(resumed_from=made["plain"]) == {made["resumed"]}
        assert ids(compensation="compensated") == {made["saga"]}
        assert ids(compensation="compensation_failed") == {made["saga-broken"]}
        assert ids(rerun_of=made["plain"]) == set()
    assert [wire[n]["compensation"] for n in ("saga", "saga-broken", "plain")] == [
        "compensated", "compensation_failed", None]
    assert (wire["rerun"]["rerunOf"], wire["rerun"]["resumedFrom"]) == (made["saga"], None)
    assert (wire["resumed"]["resumedFrom"], wire["resumed"]["rerunOf"]) == (made["plain"], None)
    assert wire["rerun"]["compensation"] is None  # not failed (yet)
    assert (wire["urgent"]["priority"], wire["plain"]["priority"]) == (7, 0)
    assert all(w["queue"] == "default" for w in wire.values())
    inline = snapshot(engine.store.engine)
    rebuild(engine.store, default_projections())
    assert snapshot(engine.store.engine) == inline


def test_runs_projected_before_the_columns_existed_are_rebuilt_with_them(
        new_database: NewDatabase) -> None:  # noqa: F811
    """projections 2 adds the columns and marks a store that has run views as built by
    version 1: `rebuild_stale` (what `serve` runs at start) fills them from history."""
    db, registry, clock = new_database(), WorkflowRegistry(), FakeClock()
    migrate(db, [m for m in all_migrations()  # projections as release 1 left them
                 if not (m.component == "projections" and m.version >= 2)])
    _workflows(registry)
    made = _runs(Engine(EventStore(db, clock=clock), registry, clock=clock))  # events only
    with db.begin() as conn:  # a run view as release 1 projected it
        conn.execute(sa.text(
            "INSERT INTO run_views (run_id, workflow_id, workflow_version, status, children,"
            " tenant_meta, tags, created_at, updated_at, version) VALUES ('old', 'plain', '1',"
            " 'failed', '[]', '{}', '[]', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 3)"))
    assert ("projections", 2) in [(m.component, m.version) for m in upgrade_all(db)]
    store = EventStore(db, hooks=[InlineProjections()], clock=clock)
    [views] = [s for s in status(store, default_projections()) if s.name == "run_views"]
    assert (views.stale, views.built_version, views.code_version) == (True, 1, 2)
    report = rebuild_stale(store, default_projections())
    assert report is not None and "run_views" in report.projections
    with db.connect() as conn:
        rerun, saga = get_run(conn, made["rerun"]), get_run(conn, made["saga"])
        assert get_run(conn, "old") is None  # rebuilt from the events alone
    assert rerun is not None and rerun.rerun_of == made["saga"]
    assert saga is not None and saga.compensation == "compensated"
    assert rebuild_stale(store, default_projections()) is None  # current now


def test_a_fresh_store_is_current_at_once(any_engine: SAEngine) -> None:
    store = EventStore(any_engine, hooks=[InlineProjections()])
    assert not any(s.stale for s in status(store, default_projections()))
