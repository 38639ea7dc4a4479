"""Worker processes under one supervisor: `ledgerflow worker --processes N` and
`ledgerflow serve --worker-processes N`.

Python runs one thread of Python at a time per process; to use every core, a host runs
several worker processes. The supervisor starts N children, each `ledgerflow worker
--processes 1` with the supervisor's settings (its environment, plus the workflow
modules it was given, as `LEDGERFLOW_WORKFLOWS`), sharing its stdout and stderr. A
child that exits while the supervisor is not stopping (a crash, a kill) is started
again, at once the first time and after a pause growing to 30 s if it keeps exiting
within a few seconds of its start. A child whose supervisor dies without a word (SIGKILL)
stops gracefully by itself (`stop_when_orphaned`). The first SIGTERM or SIGINT is forwarded to every
child as SIGTERM: each finishes the step in hand and gives its runs back; the
supervisor exits 0 once all have. A second one is forwarded as SIGINT (each child stops
at once) and the supervisor exits 130.

Metrics: the children serve no port. With `--metrics-port` (`worker`) or the API's
`/metrics` (`serve`), the host's one endpoint adds up the children's counters and
histograms (`observability.children`: prometheus-client's multiprocess files in a
directory made for the supervisor's life), beside the store gauges it reads once.

Interface: `Supervisor(children_command, processes, announce).run()` in the main
thread (it installs the signal handlers), or `start()` in a thread and `stop()` from
the host (`serve`, whose own signal handling stops it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from ledgerflow.observability.children import ChildrenDirectory

RESTART_WINDOW = 5.0
"""A child that exits sooner than this after its start is restarted after a pause."""
MAX_PAUSE = 30.0


@dataclass
class _Child:
    slot: int
    process: subprocess.Popen[bytes]
    started: float
    quick: int = 0
    """How many times in a row this slot's child exited soon after its start."""


def default_processes(database_url: str) -> int:
    """One worker process per core on PostgreSQL; one on SQLite (its writes go one at a
    time whatever the number of processes)."""
    if database_url.startswith("sqlite"):
        return 1
    return os.cpu_count() or 1


def worker_children(workflows: str | None, threads: int, poll_interval: float,
                    counters: ChildrenDirectory | None = None,
                    ) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one child worker process; with `counters`, the
    child writes its counters there for the host's `/metrics` to sum (it serves no
    port of its own)."""
    env = dict(os.environ)
    if workflows:
        env["LEDGERFLOW_WORKFLOWS"] = workflows
    if counters is not None:
        env.update(counters.env())
    env[SUPERVISOR_PID] = str(os.getpid())
    return ([sys.executable, "-m", "ledgerflow", "worker", "--processes", "1", "--threads",
             str(threads), "--poll-interval", str(poll_interval)], env)


SUPERVISOR_PID = "LEDGERFLOW_SUPERVISOR_PID"
"""Set in a child's environment: the supervisor's pid (see `stop_when_orphaned`)."""


def stop_when_orphaned(poll_seconds: float = 0.5) -> None:
    """In a child: once its supervisor is gone (killed with SIGKILL, it could forward
    nothing), SIGTERM itself, so the child stops gracefully instead of running on
    unsupervised. A daemon thread watching the parent pid; nothing outside a child."""
    supervisor = os.environ.get(SUPERVISOR_PID)
    if not supervisor or not supervisor.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(supervisor):
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ledgerflow-orphan-watch", daemon=True).start()


class Supervisor:
    """Runs `processes` copies of `command`, restarting those that exit (see module)."""

    def __init__(self, command: Sequence[str], processes: int,
                 announce: Callable[[str], None], env: dict[str, str] | None = None) -> None:
        if processes < 1:
            raise ValueError(f"a supervisor needs at least one process, got {processes}")
        self.command, self.processes, self.announce = list(command), processes, announce
        self.env = env
        self.restarts = 0
        self._children: dict[int, _Child] = {}
        self._signals = 0
        self._forwarded = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        """The pids of the children running now."""
        with self._lock:
            return [c.process.pid for c in self._children.values()]

    def run(self) -> int:
        """Supervise until stopped by signals (main thread); the exit code (0 or 130)."""
        def handler(signum: int, frame: FrameType | None) -> None:
            self._signals += 1

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        return self._supervise()

    def start(self) -> Supervisor:
        """Supervise in a thread of its own until `stop()`."""
        self._thread = threading.Thread(target=self._supervise, name="ledgerflow-supervisor",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Forward a graceful stop to every child and wait for them (up to `timeout`)."""
        self._signals = max(self._signals, 1)
        if self._thread is not None:
            self._thread.join(timeout)

    def _supervise(self) -> int:
        for slot in range(self.processes):
            self._spawn(slot)
        self.announce(f"supervisor {os.getpid()}: {self.processes} worker process(es), pids "
                      f"{', '.join(str(p) for p in self.pids)}")
        while True:
            self._forward()
            self._reap()
            with self._lock:
                if self._signals and not self._children:
                    break
            time.sleep(0.1)
        return 130 if self._signals > 1 else 0

    def _spawn(self, slot: int, quick: int = 0) -> None:
        process = subprocess.Popen(self.command, env=self.env)
        with self._lock:
            self._children[slot] = _Child(slot, process, time.monotonic(), quick)

    def _forward(self) -> None:
        while self._forwarded < min(self._signals, 2):
            self._forwarded += 1
            how = signal.SIGTERM if self._forwarded == 1 else signal.SIGINT
            for pid in self.pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, how)

    def _reap(self) -> None:
        with self._lock:
            children = list(self._children.values())
        for child in children:
            code = child.process.poll()
            if code is None:
                continue
            with self._lock:
                del self._children[child.slot]
            if self._signals:
                continue
            quick = child.quick + 1 if time.monotonic() - child.started < RESTART_WINDOW else 0
            pause = 0.0 if quick <= 1 else min(2.0 ** (quick - 2), MAX_PAUSE)
            self.announce(f"worker process {child.process.pid} exited with code {code}; "
                          f"starting another{f' in {pause:g}s' if pause else ''}")
            self.restarts += 1
            if pause:
                deadline = time.monotonic() + pause
                while time.monotonic() < deadline and not self._signals:
                    time.sleep(0.1)
                if self._signals:
                    continue
            self._spawn(child.slot, quick)
