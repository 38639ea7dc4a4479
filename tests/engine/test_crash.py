"""Crashes at commit boundaries: steps are at-least-once, the journal exactly-once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Engine, Worker
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.runtime.faults import FaultPoints, InjectedFault
from ledgerflow.runtime.queue import queue_row
from ledgerflow.testing import FakeClock
from tests.engine import worker_proc
from tests.engine.worker_proc import count

ROOT = Path(__file__).resolve().parents[2]


def _url(engine: SAEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _spawn(url: str, counters: Path, *args: str, faults: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "LEDGERFLOW_FAULTS": faults}
    return subprocess.Popen([sys.executable, "-m", "tests.engine.worker_proc", url,
                             str(counters), *args], cwd=ROOT, env=env)


def _wait_ready(procs: list[subprocess.Popen[bytes]], counters: Path) -> None:
    deadline = time.monotonic() + 60
    while not all((counters / f"ready-{p.pid}").exists() for p in procs):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.02)


def _completions(engine: Engine, run_id: str) -> Counter[str]:
    return Counter(r.event.step_id for r in engine.history(run_id)  # type: ignore[attr-defined]
                   if r.type == "StepCompleted")


def test_worker_killed_between_side_effect_and_commit(any_engine: SAEngine,
                                                      tmp_path: Path) -> None:
    url = _url(any_engine)
    engine = worker_proc.make_engine(url)
    run = engine.trigger("three-effects", {"tag": "k"}).run_id
    crashed = _spawn(url, tmp_path, "until-done", run, faults="step_executed=exit:77")
    assert crashed.wait(60) == 77
    assert count(tmp_path, "k-a") == 1 and count(tmp_path, "k-b") == 0
    assert _completions(engine, run) == Counter()
    fresh = _spawn(url, tmp_path, "until-done", run)
    assert fresh.wait(60) == 0
    state = engine.state(run)
    assert state.status is RunStatus.COMPLETED
    assert _completions(engine, run) == Counter({"a": 1, "b": 1, "c": 1})
    assert count(tmp_path, "k-a") == 2  # at-least-once: the uncommitted effect ran again
    assert count(tmp_path, "k-b") == 1 and count(tmp_path, "k-c") == 1


def test_same_run_twice_side_effects_once_where_journaled(
        any_engine: SAEngine, tmp_path: Path, clock: FakeClock) -> None:
    from ledgerflow.eventstore import EventStore

    worker_proc.COUNTERS = tmp_path
    faults = FaultPoints()
    engine = Engine(EventStore(any_engine, clock=clock), worker_proc.registry, clock=clock,
                    faults=faults)
    run = engine.trigger("three-effects", {"tag": "t"}, run_id="fixed-run").run_id
    faults.arm("step_committed", skip=1)  # crash right after b's completion commits
    with pytest.raises(InjectedFault):
        engine.run_due()
    assert _completions(engine, run) == Counter({"a": 1, "b": 1})
    assert engine.run_due().claimed == 0  # still leased to the "dead" execution
    clock.advance(timedelta(seconds=31))
    assert engine.tick().completed == 1
    assert not engine.trigger("three-effects", {"tag": "t"}, run_id="fixed-run").created
    assert engine.run_due().claimed == 0
    assert _completions(engine, run) == Counter({"a": 1, "b": 1, "c": 1})
    assert [count(tmp_path, f"t-{n}") for n in "abc"] == [1, 1, 1]


def test_worker_threads_run_many_runs_each_step_once(any_engine: SAEngine,
                                                     tmp_path: Path) -> None:
    worker_proc.COUNTERS = tmp_path
    engine = worker_proc.make_engine(_url(any_engine), lease=30)
    runs = [engine.trigger("three-effects", {"tag": f"r{i}"}).run_id for i in range(12)]
    worker = Worker(engine, threads=4, poll_interval=0.05).start()
    try:
        deadline = time.monotonic() + 60
        while not all(engine.state(r).is_terminal for r in runs):
            assert time.monotonic() < deadline, "runs did not finish"
            time.sleep(0.05)
    finally:
        worker.stop()
    for i, run in enumerate(runs):
        assert engine.state(run).status is RunStatus.COMPLETED
        assert _completions(engine, run) == Counter({"a": 1, "b": 1, "c": 1})
        assert count(tmp_path, f"r{i}-a") == 1


def test_two_worker_processes_share_one_database(any_engine: SAEngine, tmp_path: Path) -> None:
    url = _url(any_engine)
    engine = worker_proc.make_engine(url)
    procs = [_spawn(url, tmp_path, "worker") for _ in range(2)]
    _wait_ready(procs, tmp_path)
    runs = [engine.trigger("three-effects", {"tag": f"p{i}"}).run_id for i in range(10)]
    try:
        deadline = time.monotonic() + 90
        while not all(engine.state(r).is_terminal for r in runs):
            assert time.monotonic() < deadline, "runs did not finish"
            time.sleep(0.1)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
    assert codes == [0, 0]
    for i, run in enumerate(runs):
        assert _completions(engine, run) == Counter({"a": 1, "b": 1, "c": 1})
        assert sum(count(tmp_path, f"p{i}-{n}") for n in "abc") == 3


def test_sigterm_finishes_the_step_in_hand_and_releases_the_lease(
        any_engine: SAEngine, tmp_path: Path) -> None:
    url = _url(any_engine)
    worker_proc.COUNTERS = tmp_path
    engine = worker_proc.make_engine(url)
    run = engine.trigger("slow-then-fast", None).run_id
    proc = _spawn(url, tmp_path, "worker")
    _wait_ready([proc], tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "slow.started").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert _completions(engine, run) == Counter({"slow": 1})
    assert count(tmp_path, "fast") == 0
    with any_engine.connect() as conn:
        row = queue_row(conn, run)
    assert row is not None and row["lease_owner"] is None
    assert engine.tick().completed == 1
    assert count(tmp_path, "slow") == 1 and count(tmp_path, "fast") == 1


def test_run_due_renews_its_leases_while_a_step_outlasts_the_lease(
        any_engine: SAEngine) -> None:
    """A cron host's `tick` keeps its run: another host cannot take it mid-step."""
    from ledgerflow import Context, TickResult, WorkflowRegistry
    from ledgerflow.eventstore import EventStore

    registry = WorkflowRegistry()
    calls: Counter[str] = Counter()
    in_step = threading.Event()

    @registry.workflow("slow")
    def slow(ctx: Context, data: object) -> object:
        def work() -> str:
            calls["work"] += 1
            in_step.set()
            time.sleep(3.0)  # twice the lease
            return "done"
        return ctx.step("work", work)

    store = EventStore(any_engine)
    lease = timedelta(seconds=1.5)
    cron = Engine(store, registry, lease=lease, worker_id="cron-a")
    other = Engine(store, registry, lease=lease, worker_id="cron-b")
    run = cron.trigger("slow", {}).run_id
    ticked: list[TickResult] = []
    host = threading.Thread(target=lambda: ticked.append(cron.tick()))
    host.start()
    assert in_step.wait(10)
    time.sleep(2.0)  # the first lease has run out; renewed ones have not
    assert other.tick().claimed == 0
    host.join(30)
    assert calls["work"] == 1 and cron.state(run).status is RunStatus.COMPLETED
    assert len(ticked) == 1 and ticked[0].completed == 1
