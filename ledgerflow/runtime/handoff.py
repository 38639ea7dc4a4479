"""Hand-offs between threads of one process: runs handed to worker threads (`Wakeup`)
and runs that finished here, for callers waiting on them (`Finished`).

Nothing here reads or writes the store; `Engine` owns one of each and gives them to
the executor and the run commands through `Runtime`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from ledgerflow.domain.state import RunState
from ledgerflow.runtime.journal import Journal
from ledgerflow.runtime.observe import OpenedRun


@dataclass(frozen=True)
class Claimed:
    """A run leased to this worker, with its journal, ready to execute."""

    run_id: str
    journal: Journal
    held: bool = False
    """The lease holds queue or key slots (`runtime.limits`), given back when it ends."""
    opened: OpenedRun | None = None
    """Its first execution, begun by the eager trigger that handed it over."""


class Wakeup:
    """In-process hand-over to worker threads: nudges (a run became due) and eagerly
    started runs (already leased to this worker, executed without a claim)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending = 0
        self._handed: deque[Claimed] = deque()
        self._attached = 0
        self._idle = 0

    def notify(self, n: int = 1) -> None:
        """A run became due (or the workers must look at their stop flag)."""
        with self._cond:
            self._pending = min(self._pending + n, 1024)
            self._cond.notify(n)

    def attach(self, threads: int) -> None:
        """A worker with `threads` threads serves this engine: eager starts may go to it."""
        with self._cond:
            self._attached += threads

    def detach(self, threads: int) -> list[Claimed]:
        """The worker stops; returns the handed runs no thread took (still leased)."""
        with self._cond:
            self._attached = max(self._attached - threads, 0)
            if self._attached:
                return []
            left = list(self._handed)
            self._handed.clear()
            return left

    def can_take(self, force: bool = False) -> bool:
        """Whether a trigger may hand a run over: a worker is attached and (unless
        `force`) one of its threads is idle with nothing handed to it yet."""
        with self._cond:
            return self._attached > 0 and (force or self._idle > len(self._handed))

    def hand(self, claimed: Claimed) -> bool:
        """Give a leased run to the next free worker thread; False if no worker is
        attached any more (it stopped meanwhile: the caller gives the lease back)."""
        with self._cond:
            if not self._attached:
                return False
            self._handed.append(claimed)
            self._cond.notify()
            return True

    def take(self) -> Claimed | None:
        """A handed run, if one is waiting (does not block)."""
        with self._cond:
            return self._handed.popleft() if self._handed else None

    def wait(self, timeout: float) -> Claimed | bool:
        """Block until a run is handed (returned), a nudge (True) or `timeout` (False)."""
        with self._cond:
            if not self._handed and not self._pending:
                self._idle += 1
                try:
                    self._cond.wait(timeout)
                finally:
                    self._idle -= 1
            if self._handed:
                return self._handed.popleft()
            if self._pending:
                self._pending -= 1
                return True
            return False


class Finished:
    """Runs that reached a terminal status in this process, and who waits for them."""

    def __init__(self, keep: int = 10_000) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._finished: OrderedDict[str, RunState | None] = OrderedDict()
        self._waiting: dict[str, threading.Event] = {}

    def mark(self, run_id: str, state: RunState | None = None) -> None:
        """`run_id` reached a terminal status (`state`, if known) in this process."""
        with self._lock:
            self._finished[run_id] = state
            while len(self._finished) > self._keep:
                self._finished.popitem(last=False)
            waiting = self._waiting.pop(run_id, None)
        if waiting is not None:
            waiting.set()

    def wait(self, run_id: str, timeout: float) -> tuple[bool, RunState | None]:
        """Block until `run_id` is marked or `timeout` passes; (marked, its state).

        Only this run being marked wakes the caller, not every run's."""
        with self._lock:
            if run_id in self._finished:
                return True, self._finished.pop(run_id)
            event = self._waiting.setdefault(run_id, threading.Event())
        event.wait(max(timeout, 0))
        with self._lock:
            if self._waiting.get(run_id) is event and not event.is_set():
                del self._waiting[run_id]
            if run_id in self._finished:
                return True, self._finished.pop(run_id)
        return False, None
