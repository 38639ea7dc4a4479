"""`serve`, `worker` and `demo` as processes a new user starts (SQLite in a new
directory): what they say when they start and stop, and what they leave behind."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from ledgerflow import WorkflowRegistry
from ledgerflow._app import Ledgerflow
from ledgerflow.settings import Settings
from tests._broker import free_port
from tests.cli.conftest import fresh_env, one_error_line, run_in

SLOW = '''import time
from pathlib import Path

from ledgerflow import Context, workflow


def nap(seconds: float) -> str:
    Path("started").touch()
    time.sleep(seconds)
    return "rested"


@workflow("slow")
def slow(ctx: Context, seconds: float) -> str:
    return ctx.step("nap", nap, seconds)
'''


class Lines:
    """A process's output lines as they come (read by a thread)."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))

    def until(self, wanted: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"not seen within {timeout}s; seen: {self.seen}")

    def rest(self) -> list[str]:
        time.sleep(0.2)
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return self.seen


def start(cwd: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-P", "-m", "ledgerflow.cli", *args], cwd=cwd,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:  # gracefully first: a supervisor takes its children along
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_serve_says_what_it_does_once_its_port_is_bound(
        tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    port = free_port()
    process = start(tmp_path, fresh_env(), "serve", "--port", str(port), "--threads", "1")
    processes.append(process)
    assert process.stdout is not None and process.stderr is not None
    out, err = Lines(process.stdout), Lines(process.stderr)
    first = out.until(lambda line: True)
    assert first.startswith("database sqlite:///./ledgerflow.db: created, schema upgraded (")
    sink = tmp_path / "ledgerflow-events.jsonl"
    assert out.until(lambda line: line.startswith("relay:")) == \
        f"relay: publishing the outbox to the JSON-lines file {sink}"
    serving = out.until(lambda line: "serving" in line)
    socket.create_connection(("127.0.0.1", port), timeout=1).close()  # bound already
    assert serving == (f"ledgerflow serving http://127.0.0.1:{port} with api, worker "
                       "(1 threads), relay, projector")
    warnings = [err.until(lambda line: line.startswith("warning:")) for _ in range(2)]
    assert "no workflows are loaded: pass --workflows MODULE" in warnings[0]
    assert "the API is open to whoever reaches it: set LEDGERFLOW_API_TOKENS" in warnings[1]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert out.rest()[-1] == "ledgerflow stopped"


def test_serve_on_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = fresh_env(LEDGERFLOW_WORKFLOWS="slow.py", LEDGERFLOW_API_TOKENS="t=*")
        done = run_in(tmp_path, env, "serve", "--port", str(port))
    assert one_error_line(done) == f"error: cannot listen on 127.0.0.1:{port}: Address " \
        "already in use"
    assert "serving" not in done.stdout and "warning" not in done.stderr


def _slow_run(tmp_path: Path, seconds: float) -> str:
    """Trigger a run of `slow` in the directory's database (from this process)."""
    registry = WorkflowRegistry()
    registry.register("slow", lambda ctx, data: None)
    lf = Ledgerflow.open(Settings(database_url=f"sqlite:///{tmp_path}/ledgerflow.db"),
                         registry=registry)
    try:
        return lf.engine.trigger("slow", seconds).run_id
    finally:
        lf.close()


def _worker(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> tuple[Any, Lines]:
    (tmp_path / "slow.py").write_text(SLOW)
    process = start(tmp_path, fresh_env(LEDGERFLOW_WORKFLOWS="slow.py"), "worker",
                    "--threads", "1", "--poll-interval", "0.1")
    processes.append(process)
    assert process.stdout is not None
    lines = Lines(process.stdout)
    lines.until(lambda line: line.startswith("worker "))
    return process, lines


def _started(tmp_path: Path) -> None:
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline, "the step did not start"
        time.sleep(0.05)


def test_worker_on_ctrl_c_finishes_the_step_in_hand(
        tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    process, out = _worker(tmp_path, processes)
    run_id = _slow_run(tmp_path, 1.5)
    _started(tmp_path)
    process.send_signal(signal.SIGINT)
    assert out.until(lambda line: line.startswith("stopping")) == \
        "stopping: finishing the steps in hand (Ctrl-C again stops at once)"
    assert process.wait(timeout=60) == 0
    assert out.rest()[-1] == "worker stopped"
    done = run_in(tmp_path, fresh_env(), "runs", "show", run_id, "--json")
    assert '"stepId": "nap"' in done.stdout and '"rested"' in done.stdout


def test_worker_on_a_second_ctrl_c_stops_at_once(
        tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    process, out = _worker(tmp_path, processes)
    _slow_run(tmp_path, 120)
    _started(tmp_path)
    process.send_signal(signal.SIGINT)
    out.until(lambda line: line.startswith("stopping"))
    began = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    assert time.monotonic() - began < 20
    assert out.rest()[-1] == ("stopped at once: the runs in hand are taken up again when "
                              "their lease expires (within 30s)")


def test_demo_removes_its_temporary_directory(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = run_in(tmp_path, fresh_env(TMPDIR=str(scratch)), "demo", timeout=120)
    assert done.returncode == 0, done.stderr
    assert list(scratch.iterdir()) == []
    assert done.stdout.splitlines()[-1] == ("the demo's temporary directory is removed; "
                                            "`ledgerflow demo --dir demo` keeps it")
