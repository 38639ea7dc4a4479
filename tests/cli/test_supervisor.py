"""`ledgerflow worker --processes N` on PostgreSQL: a supervisor of N worker processes
restarts one that is killed and forwards SIGTERM (each child finishes its step in hand)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from sqlalchemy import Engine

from ledgerflow._app import Ledgerflow
from ledgerflow.domain.events import RunStarted
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.settings import Settings
from tests.cli.conftest import fresh_env
from tests.cli.test_processes import SLOW, Lines, processes, start

__all__ = ["processes"]  # the fixture, used by name below


def _supervisor(tmp_path: Path, pg_url: str, procs: list[subprocess.Popen[str]],
                count: int = 2) -> tuple[subprocess.Popen[str], Lines, list[int]]:
    (tmp_path / "slow.py").write_text(SLOW)
    env = fresh_env(LEDGERFLOW_WORKFLOWS="slow.py", LEDGERFLOW_DATABASE_URL=pg_url)
    process = start(tmp_path, env, "worker", "--processes", str(count), "--threads", "1",
                    "--poll-interval", "0.1")
    procs.append(process)
    assert process.stdout is not None
    out = Lines(process.stdout)
    line = out.until(lambda seen: seen.startswith("supervisor "), 120)
    pids = [int(p) for p in re.findall(r"\d+", line.split("pids", 1)[1])]
    assert len(pids) == count, line
    return process, out, pids


def _app(tmp_path: Path, pg_url: str) -> Ledgerflow:
    return Ledgerflow.open(Settings(database_url=pg_url, workflows=str(tmp_path / "slow.py"),
                                    kafka_bootstrap=None, sink_path=str(tmp_path / "s.jsonl")))


def test_the_supervisor_restarts_a_killed_child_and_runs_go_on(
        tmp_path: Path, pg_url: str, processes: list[subprocess.Popen[str]]) -> None:
    process, out, pids = _supervisor(tmp_path, pg_url, processes)
    os.kill(pids[0], signal.SIGKILL)
    line = out.until(lambda seen: seen.startswith(f"worker process {pids[0]} exited"), 120)
    assert line == f"worker process {pids[0]} exited with code -9; starting another"
    lf = _app(tmp_path, pg_url)
    try:
        runs = [lf.engine.trigger("slow", 0.01).run_id for _ in range(6)]
        states = [lf.engine.wait(run, timeout=180) for run in runs]
    finally:
        lf.close()
    assert all(s.status is RunStatus.COMPLETED for s in states), states
    assert process.poll() is None  # the supervisor itself carries on


def test_sigterm_is_forwarded_and_each_child_finishes_its_step(
        tmp_path: Path, pg_url: str, processes: list[subprocess.Popen[str]]) -> None:
    process, out, pids = _supervisor(tmp_path, pg_url, processes)
    lf = _app(tmp_path, pg_url)
    try:
        run = lf.engine.trigger("slow", 2.0).run_id
        deadline = time.monotonic() + 180  # children start slowly on a loaded machine
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline, "the step did not start"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=180) == 0
        assert out.rest()[-1] == "worker stopped"
        for pid in pids:  # every child is gone
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
                f"/proc/{pid}/status").read_text()
        history = [r.type for r in lf.engine.history(run)]
    finally:
        lf.close()
    assert "StepCompleted" in history  # the step in hand finished and was journaled


def test_children_stop_by_themselves_when_the_supervisor_is_killed(
        tmp_path: Path, pg_url: str, processes: list[subprocess.Popen[str]]) -> None:
    process, _, pids = _supervisor(tmp_path, pg_url, processes)
    process.kill()  # SIGKILL: the supervisor forwards nothing
    process.wait()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"orphaned workers still run: {pids}"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def _run_on_both_children(tmp_path: Path, pg_url: str) -> list[str]:
    """Runs of `slow` until both children of the supervisor have started some (on a
    loaded machine one starts late): their ids, all completed."""
    lf = _app(tmp_path, pg_url)
    runs: list[str] = []
    workers: set[str | None] = set()
    try:
        deadline = time.monotonic() + 180
        while len(workers) < 2:
            assert time.monotonic() < deadline, f"one child ran every run: {workers}"
            batch = [lf.engine.trigger("slow", 0.3).run_id for _ in range(4)]
            states = [lf.engine.wait(run, timeout=180) for run in batch]
            assert all(s.status is RunStatus.COMPLETED for s in states), states
            runs += batch
            workers |= {r.event.worker for run in batch for r in lf.engine.history(run)
                        if isinstance(r.event, RunStarted)}
    finally:
        lf.close()
    return runs


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FINISHED = ("ledgerflow_runs_finished_total",
            frozenset({("workflow", "slow"), ("status", "completed")}))
STEPS = ("ledgerflow_step_duration_seconds_count",
         frozenset({("workflow", "slow"), ("step", "nap"), ("outcome", "completed")}))
COMPLETED = ("ledgerflow_runs", frozenset({("status", "completed")}))


def _scrape(url: str) -> Samples:
    """Every sample at `url`, each family named once (as Prometheus requires)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=30).text
    families = [f.name for f in text_string_to_metric_families(text)]
    assert len(families) == len(set(families)), families
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _counted(url: str, runs: int) -> Samples:
    """The scrape once the children have counted `runs` finished runs (a child counts a
    run just after it commits it)."""
    deadline = time.monotonic() + 30
    while (samples := _scrape(url)).get(FINISHED) != runs and time.monotonic() < deadline:
        time.sleep(0.2)
    return samples


def test_one_metrics_port_counts_what_every_child_did(
        tmp_path: Path, pg_url: str, pg_engine: Engine,
        processes: list[subprocess.Popen[str]]) -> None:
    """`--metrics-port` on the supervisor: one scrape target for the host, the children's
    counters summed (a child killed after its runs still counts them), each family
    once. (`pg_engine`: the session database's tables emptied, so the store gauge
    counts this test's runs only.)"""
    from tests._broker import free_port

    port = free_port()
    (tmp_path / "slow.py").write_text(SLOW)
    env = fresh_env(LEDGERFLOW_WORKFLOWS="slow.py", LEDGERFLOW_DATABASE_URL=pg_url)
    process = start(tmp_path, env, "worker", "--processes", "2", "--threads", "2",
                    "--poll-interval", "0.1", "--metrics-port", str(port),
                    "--metrics-host", "127.0.0.1")
    processes.append(process)
    assert process.stdout is not None
    out = Lines(process.stdout)
    line = out.until(lambda seen: seen.startswith("supervisor "), 120)
    pids = [int(p) for p in re.findall(r"\d+", line.split("pids", 1)[1])]
    runs = _run_on_both_children(tmp_path, pg_url)
    url = f"http://127.0.0.1:{port}/metrics"
    samples = _counted(url, len(runs))
    assert samples[FINISHED] == len(runs)
    assert samples[STEPS] == len(runs)
    assert samples[COMPLETED] == len(runs)
    os.kill(pids[0], signal.SIGKILL)
    out.until(lambda seen: seen.startswith(f"worker process {pids[0]} exited"), 120)
    assert _scrape(url)[FINISHED] == len(runs)  # the killed child's runs still count
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=180) == 0


def test_serves_metrics_count_its_worker_processes_runs(
        tmp_path: Path, pg_url: str, pg_engine: Engine,
        processes: list[subprocess.Popen[str]]) -> None:
    """`serve --worker-processes 2`: the API's `/metrics` sums the children's counters."""
    from tests._broker import free_port

    port = free_port()
    (tmp_path / "slow.py").write_text(SLOW)
    env = fresh_env(LEDGERFLOW_WORKFLOWS="slow.py", LEDGERFLOW_DATABASE_URL=pg_url)
    process = start(tmp_path, env, "serve", "--port", str(port), "--worker-processes", "2",
                    "--threads", "2", "--poll-interval", "0.1", "--no-relay",
                    "--no-projector")
    processes.append(process)
    assert process.stdout is not None
    Lines(process.stdout).until(lambda seen: "serving" in seen, 120)
    runs = _run_on_both_children(tmp_path, pg_url)
    samples = _counted(f"http://127.0.0.1:{port}/metrics", len(runs))
    assert samples[FINISHED] == len(runs)
    assert samples[STEPS] == len(runs)
    assert samples[COMPLETED] == len(runs)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=180) == 0
