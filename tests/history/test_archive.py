"""Retention and archival on both databases: due runs leave the store for the archive
and come back from it event for event (hashes and positions included), a crash
between the file and the delete loses nothing, and a rebuild after archival gives
the views of before minus the archived runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Ledgerflow, WorkflowRegistry
from ledgerflow.domain.errors import ArchiveRefused, NotArchived, UnknownRun
from ledgerflow.eventstore import StoredEvent
from ledgerflow.history import ArchiveFiles, audit_run
from ledgerflow.history.archive import WRITTEN
from ledgerflow.projections import default_projections, rebuild
from ledgerflow.projections._schema import run_tags, run_views, step_journal
from ledgerflow.runtime.faults import InjectedFault
from ledgerflow.settings import Settings
from ledgerflow.testing import FakeClock, open_test_app, relay_to_sink, run_to_completion


def _registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()

    @registry.workflow("order", retention=timedelta(days=1))
    def order(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
        total = ctx.step("price", lambda: data["n"] * 1.5)
        return {"total": total, "note": "é"}

    @registry.workflow("waits", retention=timedelta(days=1))
    def waits(ctx: Any, data: Any) -> Any:
        return ctx.wait_for_signal("go")

    @registry.workflow("parent", retention=timedelta(days=1))
    def parent(ctx: Any, data: Any) -> Any:
        made = ctx.child("make", "order", {"n": 7})
        return [made, ctx.wait_for_signal("go")]

    @registry.workflow("kept")
    def kept(ctx: Any, data: Any) -> Any:
        return ctx.step("one", lambda: 1)

    return registry


@pytest.fixture
def app(any_engine: SAEngine, tmp_path: Path) -> Iterator[Ledgerflow]:
    settings = Settings(database_url=any_engine.url.render_as_string(hide_password=False),
                        sink_path=str(tmp_path / "sink.jsonl"), kafka_bootstrap=None,
                        archive_dir=str(tmp_path / "archive"))
    opened = open_test_app(registry=_registry(), clock=FakeClock(), settings=settings)
    yield opened
    opened.close()


def _finished(app: Ledgerflow, workflow: str, n: int) -> str:
    run_id = app.engine.trigger(workflow, {"n": n}, tags=[f"t{n}"]).run_id
    run_to_completion(app.engine, run_id)
    return run_id


def _views(app: Ledgerflow) -> dict[str, list[Any]]:
    with app.db.connect() as conn:
        return {table.name: [tuple(row) for row in conn.execute(
            sa.select(table).order_by(*table.primary_key.columns))]
            for table in (run_views, run_tags, step_journal)}


def _without(views: dict[str, list[Any]], run_ids: set[str]) -> dict[str, list[Any]]:
    return {name: [row for row in rows if row[0] not in run_ids] for name, rows in views.items()}


def _history(app: Ledgerflow, run_id: str) -> list[StoredEvent]:
    return app.store.stored_stream(run_id)


def test_archive_then_restore_gives_back_every_event_and_view(app: Ledgerflow) -> None:
    done = [_finished(app, "order", n) for n in range(3)]
    waiting = app.engine.trigger("waits", {}).run_id
    run_to_completion(app.engine, waiting)
    other = _finished(app, "kept", 9)
    relay_to_sink(app)
    before = {run_id: _history(app, run_id) for run_id in [*done, waiting, other]}
    views = _views(app)
    assert app.archiver().archive().runs == 0  # nothing is past its retention yet
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(timedelta(days=2))

    report = app.archiver().archive_all()
    assert sorted(i for ids in report.archived.values() for i in ids) == sorted(done)
    assert report.events == sum(len(before[r]) for r in done)
    for run_id in done:
        assert _history(app, run_id) == []
        with pytest.raises(UnknownRun), app.db.connect() as conn:
            audit_run(app.store, conn, run_id)
    assert _history(app, waiting) == before[waiting]  # not finished: stays
    assert _history(app, other) == before[other]  # no retention: stays
    assert _views(app) == _without(views, set(done))
    assert _counts_match(app)  # archived runs leave the runs-per-status counts
    listed = ArchiveFiles(app.settings.archive_dir).runs()
    assert sorted(r.run_id for r in listed) == sorted(done)
    assert all(r.workflow_id == "order" and r.head == before[r.run_id][-1].hash
               for r in listed)

    rebuild(app.store, default_projections())  # the store alone, replayed: same views
    assert _views(app) == _without(views, set(done))

    for run_id in done:
        assert app.archiver().restore(run_id) == len(before[run_id])
        assert _history(app, run_id) == before[run_id]  # positions and hashes too
        with app.db.connect() as conn:
            assert audit_run(app.store, conn, run_id).verified
    assert _views(app) == views
    assert _counts_match(app)  # restored runs count again
    with pytest.raises(ArchiveRefused, match="in the store already"):
        app.archiver().restore(done[0])
    with pytest.raises(NotArchived):
        app.archiver().restore(other)


def test_a_crash_between_the_file_and_the_delete_loses_nothing(app: Ledgerflow) -> None:
    done = [_finished(app, "order", n) for n in range(2)]
    relay_to_sink(app)
    before = {run_id: _history(app, run_id) for run_id in done}
    views = _views(app)
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(timedelta(days=2))

    app.faults.arm(WRITTEN)
    with pytest.raises(InjectedFault):
        app.archiver().archive()
    assert {run_id: _history(app, run_id) for run_id in done} == before  # still stored
    assert _views(app) == views
    files = ArchiveFiles(app.settings.archive_dir)
    assert sorted(r.run_id for r in files.runs()) == sorted(done)  # and archived

    report = app.archiver().archive()  # the same runs again: idempotent
    assert report.runs == 2
    assert sorted(r.run_id for r in files.runs()) == sorted(done)  # each once
    assert all(_history(app, run_id) == [] for run_id in done)
    for run_id in done:
        app.archiver().restore(run_id)
        assert _history(app, run_id) == before[run_id]
    assert _views(app) == views


def test_runs_with_unpublished_events_or_a_broken_chain_stay(app: Ledgerflow) -> None:
    unpublished = _finished(app, "order", 1)
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(timedelta(days=2))
    report = app.archiver().archive()
    assert report.runs == 0
    assert "not published" in report.kept[unpublished]
    relay_to_sink(app)
    with app.db.begin() as conn:
        conn.execute(sa.text("UPDATE events SET metadata = '{}' WHERE stream_id = :r AND "
                             "version = 2"), {"r": unpublished})
    report = app.archiver().archive()
    assert report.runs == 0
    assert "fails the audit" in report.kept[unpublished]
    assert _history(app, unpublished) != []


def test_a_damaged_archive_file_is_refused_at_restore(app: Ledgerflow) -> None:
    run_id = _finished(app, "order", 1)
    relay_to_sink(app)
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(timedelta(days=2))
    assert app.archiver().archive().runs == 1
    [path] = list(Path(app.settings.archive_dir).glob("*/*.jsonl.gz"))
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="SHA-256"):
        app.archiver().restore(run_id)
    assert _history(app, run_id) == []


def test_a_finished_child_of_a_live_parent_stays(app: Ledgerflow) -> None:
    parent = app.engine.trigger("parent", {}).run_id
    run_to_completion(app.engine, parent)
    [child] = _children(app, parent)
    run_to_completion(app.engine, child)
    run_to_completion(app.engine, parent)
    relay_to_sink(app)
    assert isinstance(app.clock, FakeClock)
    app.clock.advance(timedelta(days=2))
    report = app.archiver().archive()
    assert report.runs == 0
    assert report.kept[child].startswith(f"its parent {parent} is ")
    assert _history(app, child) != []
    later = _finished(app, "order", 8)  # due after the kept one, in batches of one
    relay_to_sink(app)
    app.clock.advance(timedelta(days=2))
    report = app.archiver(batch=1).archive_all()
    assert [i for ids in report.archived.values() for i in ids] == [later]
    assert set(report.kept) == {child}


def _children(app: Ledgerflow, run_id: str) -> list[str]:
    with app.db.connect() as conn:
        found = conn.execute(sa.select(run_views.c.children).where(
            run_views.c.run_id == run_id)).scalar_one()
    return list(found)


def _counts_match(app: Ledgerflow) -> bool:
    """`run_counts` (counter rows) equals a COUNT(*) per status over the run views."""
    import sqlalchemy as sa

    from ledgerflow.projections._counts import run_counts
    from ledgerflow.projections._schema import run_views

    with app.db.connect() as conn:
        counted = dict.fromkeys(run_counts(conn), 0)
        for status, n in conn.execute(sa.select(run_views.c.status, sa.func.count())
                                      .group_by(run_views.c.status)):
            counted[status] = n
        return run_counts(conn) == counted
