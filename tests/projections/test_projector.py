"""Catch-up projector: exactly once across crashes; one projector advances at a time;
rebuilds while writers keep appending lose nothing; a version bump triggers a rebuild."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from ledgerflow.domain import events as ev
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend
from ledgerflow.eventstore.schema import metadata
from ledgerflow.projections import (
    Projection,
    Projector,
    RunViews,
    StepJournal,
    default_projections,
    rebuild,
    rebuild_stale,
    status,
)
from ledgerflow.projections._schema import projection_checkpoints
from tests.projections._gen import TickingClock
from tests.projections.conftest import snapshot


def _run(store: EventStore, steps: int = 3, *, tag: str = "t") -> str:
    """Append one complete run (created, started, steps, a child link, completed)."""
    run_id = str(uuid.uuid4())
    meta = {"actor": "test"}
    events: list[ev.Event] = [
        ev.RunCreated(workflow_id="wf", workflow_version="1", input={"n": 1}, tags=[tag]),
        ev.RunStarted()]
    events += [ev.StepCompleted(step_id=f"s{i}", result=i) for i in range(steps)]
    events += [ev.ChildStarted(step_id="c", child_run_id=f"child-{run_id}", workflow_id="x"),
               ev.RunCompleted(result="ok")]
    for event in events:
        store.append(StreamAppend(run_id, [NewEvent(event, metadata=meta)]))
    return run_id


def _clear_read_models(engine: Engine) -> None:
    names = {"run_views", "run_tags", "step_journal", "run_status_counts",
             "projection_checkpoints"}
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if table.name in names:
                conn.execute(table.delete())


def _catch_up_projectors(store: EventStore, **kwargs: Any) -> list[Projector]:
    return [Projector(store, RunViews(inline=False), batch_size=4, **kwargs),
            Projector(store, StepJournal(inline=False), batch_size=4, **kwargs)]


def test_crash_mid_batch_applies_nothing_twice_and_skips_nothing(store: EventStore) -> None:
    for _ in range(4):
        _run(store)
    reference = snapshot(store.engine)
    _clear_read_models(store.engine)
    calls = {"n": 0}

    def crash_on_third(point: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError(f"injected crash at {point}")

    crashing = _catch_up_projectors(store, faults=crash_on_third)
    with pytest.raises(RuntimeError, match="injected crash"):
        for projector in crashing:
            projector.run_until_caught_up()
    applied = sum(p.run_until_caught_up() for p in _catch_up_projectors(store))
    assert snapshot(store.engine) == reference
    end = store.max_position()
    assert all(p.position() == end for p in _catch_up_projectors(store))
    assert applied == 2 * end - 2 * 4  # two projectors; two batches of 4 committed pre-crash


def test_two_projectors_only_one_advances(store: EventStore) -> None:
    for _ in range(3):
        _run(store)
    reference = snapshot(store.engine)
    _clear_read_models(store.engine)
    inside, release = threading.Event(), threading.Event()

    def pause(point: str) -> None:
        inside.set()
        assert release.wait(30)

    first = Projector(store, RunViews(inline=False), batch_size=5, faults=pause)
    second = Projector(store, RunViews(inline=False), batch_size=5)
    second.position()  # its checkpoint row exists before the race
    results: dict[str, int] = {}
    a = threading.Thread(target=lambda: results.setdefault("first", first.run_once()))
    a.start()
    assert inside.wait(30)
    b = threading.Thread(target=lambda: results.setdefault("second", second.run_once()))
    b.start()
    if store.backend.name == "postgresql":  # SKIP LOCKED: the second returns at once
        b.join(30)
        assert results["second"] == 0
    release.set()
    a.join(30)
    b.join(30)
    assert results["first"] == 5
    applied = results["first"] + results["second"]
    applied += second.run_until_caught_up() + first.run_until_caught_up()
    assert applied == store.max_position()
    assert snapshot(store.engine)["run_views"] == reference["run_views"]


def test_rebuild_while_writers_append_loses_nothing(store: EventStore) -> None:
    for _ in range(5):
        _run(store)
    stop = threading.Event()
    written: list[str] = []
    late: list[str] = []

    def writer() -> None:
        while not stop.is_set() and len(written) < 300:
            written.append(_run(store, steps=1, tag="live"))

    def append_at_swap(point: str) -> None:
        if point == "rebuild.before_swap":  # this append waits on the swap's lock
            t = threading.Thread(target=lambda: late.append(_run(store, steps=1)))
            t.start()
            threads.append(t)
            time.sleep(0.2)

    threads = [threading.Thread(target=writer)]
    threads[0].start()
    try:
        rebuild(store, default_projections(), batch_size=3, faults=append_at_swap)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert written and late
    live = snapshot(store.engine)
    ids = {row[0] for row in live["run_views"]}
    assert set(written) | set(late) <= ids
    rebuild(store, default_projections())
    assert snapshot(store.engine) == live


class _StepJournalV2(StepJournal):
    version = 2


def test_version_bump_rebuilds_only_the_changed_projection(store: EventStore) -> None:
    _run(store)
    rebuild_stale(store, default_projections())  # checkpoints as version 1 of the code left them
    reference = snapshot(store.engine)
    projections: list[Projection] = [RunViews(), _StepJournalV2()]
    stale = {s.name: s.stale for s in status(store, projections)}
    assert stale == {"run_views": False, "step_journal": True}
    report = rebuild_stale(store, projections)
    assert report is not None and report.projections == ("step_journal",)
    after = {s.name: s for s in status(store, projections)}
    assert not after["step_journal"].stale and after["step_journal"].built_version == 2
    assert after["run_views"].table_generation == 1
    assert snapshot(store.engine) == reference
    assert rebuild_stale(store, projections) is None


def test_catch_up_status_reports_lag(any_engine: Engine) -> None:
    plain = EventStore(any_engine, clock=TickingClock())
    _run(plain)
    projector = Projector(plain, RunViews(inline=False))
    [before] = status(plain, [projector.projection])
    assert (before.mode, before.lag) == ("catch-up", plain.max_position())
    projector.run_until_caught_up()
    [after] = status(plain, [projector.projection])
    assert after.lag == 0 and after.checkpoint == plain.max_position()
    with any_engine.connect() as conn:
        assert conn.execute(projection_checkpoints.select()).first() is not None


def test_an_inline_projection_refuses_a_catch_up_projector(store: EventStore) -> None:
    with pytest.raises(ValueError, match="twice"):
        Projector(store, RunViews())
