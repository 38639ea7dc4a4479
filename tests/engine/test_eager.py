"""Eager start: the trigger transaction starts and leases the run to this process's
worker; a process that dies before running it loses nothing (the lease expires)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Engine, Worker
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore import EventStore
from ledgerflow.runtime.queue import queue_row
from ledgerflow.testing import FakeClock
from tests.engine import worker_proc
from tests.engine.worker_proc import count

ROOT = Path(__file__).resolve().parents[2]


def _types(engine: Engine, run_id: str) -> list[str]:
    return [r.type for r in engine.history(run_id)]


def _lease_owner(db: SAEngine, run_id: str) -> object:
    with db.connect() as conn:
        row = queue_row(conn, run_id)
    assert row is not None
    return row["lease_owner"]


def test_eager_trigger_starts_the_run_in_its_transaction_and_runs_it_here(
        any_engine: SAEngine, tmp_path: Path) -> None:
    worker_proc.COUNTERS = tmp_path
    engine = worker_proc.make_engine(any_engine.url.render_as_string(hide_password=False),
                                     lease=30)
    worker = Worker(engine, threads=1, poll_interval=30).start()  # no poll would find it
    try:
        run = engine.trigger("three-effects", {"tag": "h"}, eager=True).run_id
        state = engine.wait(run, timeout=60)
    finally:
        worker.stop()
    assert state.status is RunStatus.COMPLETED
    history = engine.history(run)
    assert [r.type for r in history] == ["RunCreated", "RunStarted", "StepCompleted",
                                         "StepCompleted", "StepCompleted", "RunCompleted"]
    created, started = history[0], history[1]
    assert started.event.worker == engine.worker_id  # type: ignore[attr-defined]
    assert started.metadata["causation_id"] == created.event_id
    assert started.metadata["correlation_id"] == run
    assert started.recorded_at == created.recorded_at  # one append: the trigger's
    assert [count(tmp_path, f"h-{n}") for n in "abc"] == [1, 1, 1]


def test_without_a_worker_or_when_declined_the_run_waits_in_the_queue(
        any_engine: SAEngine, clock: FakeClock) -> None:
    engine = Engine(EventStore(any_engine, clock=clock), worker_proc.registry, clock=clock)
    alone = engine.trigger("three-effects", {"tag": "q"}, eager=True).run_id
    assert _types(engine, alone) == ["RunCreated"]
    assert _lease_owner(any_engine, alone) is None
    engine.wakeup.attach(1)  # a worker is attached, but the caller declines
    declined = engine.trigger("three-effects", {"tag": "q"}, eager=False).run_id
    engine.wakeup.detach(1)
    assert _types(engine, declined) == ["RunCreated"]
    assert _lease_owner(any_engine, declined) is None


def test_eager_run_of_a_killed_process_is_completed_by_another_after_the_lease(
        any_engine: SAEngine, tmp_path: Path) -> None:
    url = any_engine.url.render_as_string(hide_password=False)
    clock = FakeClock(datetime.now(UTC))
    worker_proc.COUNTERS = tmp_path
    engine = Engine(EventStore(any_engine, clock=clock), worker_proc.registry, clock=clock)
    run = "eager-run-1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.worker_proc", url, str(tmp_path), "eager", run],
        cwd=ROOT, env={**os.environ, "LEDGERFLOW_FAULTS": "run_handed=exit:77"})
    try:
        assert proc.wait(60) == 77  # died as the worker thread took the handed-over run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _types(engine, run) == ["RunCreated", "RunStarted"]
    dead_owner = _lease_owner(any_engine, run)
    assert dead_owner is not None and dead_owner != engine.worker_id
    assert count(tmp_path, "e-a") == 0
    clock.advance(timedelta(seconds=5))
    assert engine.tick().claimed == 0  # still leased to the dead process
    clock.advance(timedelta(seconds=60))
    deadline = time.monotonic() + 60
    while not engine.state(run).is_terminal:
        assert time.monotonic() < deadline
        engine.tick()
    assert engine.state(run).status is RunStatus.COMPLETED
    completions = Counter(r.event.step_id for r in engine.history(run)  # type: ignore[attr-defined]
                          if r.type == "StepCompleted")
    assert completions == Counter({"a": 1, "b": 1, "c": 1})
    assert [count(tmp_path, f"e-{n}") for n in "abc"] == [1, 1, 1]
    assert _types(engine, run).count("RunStarted") == 1


def test_graceful_stop_gives_back_a_handed_run_no_thread_started(
        any_engine: SAEngine, tmp_path: Path) -> None:
    worker_proc.COUNTERS = tmp_path
    engine = worker_proc.make_engine(any_engine.url.render_as_string(hide_password=False),
                                     lease=30)
    worker = Worker(engine, threads=1, poll_interval=30).start()
    busy = engine.trigger("slow-then-fast", None).run_id  # the only thread takes it
    deadline = time.monotonic() + 60
    while not (tmp_path / "slow.started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    handed = engine.trigger("three-effects", {"tag": "g"}, eager=True).run_id
    assert _lease_owner(any_engine, handed) == engine.worker_id
    worker.stop()
    assert _types(engine, handed) == ["RunCreated", "RunStarted"]
    assert _lease_owner(any_engine, handed) is None  # due again at once, for any worker
    assert _lease_owner(any_engine, busy) is None
    other = worker_proc.make_engine(any_engine.url.render_as_string(hide_password=False))
    while not (other.state(handed).is_terminal and other.state(busy).is_terminal):
        assert time.monotonic() < deadline
        other.tick()
    assert other.state(handed).status is RunStatus.COMPLETED
    assert [count(tmp_path, f"g-{n}") for n in "abc"] == [1, 1, 1]
