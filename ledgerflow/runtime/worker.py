"""`Worker`: threads that claim and execute due runs, plus a heartbeat thread.

Each thread loops: it executes a run a trigger in this process handed over
(eager start: already leased to this worker, no claim), else claims due runs
until none is left (`engine.run_due(1)`), then waits for a hand-over, an
in-process nudge (a trigger, signal or child result in this process: one claim
each, no trailing empty claim) or the poll interval (then it drains the queue
again). The queue is drained at least every poll interval even while hand-overs
keep the thread busy, so runs made due by other processes or timers are not
starved. A handed run passes the fault point `run_handed` before it executes (crash
tests: the process dies holding a run its trigger already leased to it). The
heartbeat thread extends the leases of this worker id every `lease / 3`, and about
once a lease reaps expired leases (a crashed worker's queue and key slots come back). A
worker given a `Scheduler` (`Ledgerflow.worker` gives one) runs it beside its threads.
Where the
store's backend has notices (PostgreSQL) a listener thread (`listen.Listener`) nudges
a thread when another process announces a run it made due, so it is claimed without
waiting for a poll.
Async runs (`async def` workflows) a thread claims go on the process's event loop
(`Runtime.aio`) and the thread claims on: thousands may execute at once on a few
threads. `stop(graceful=True)` lets each thread and each async run finish the step in
hand (no new step starts), writes what they journaled, and gives their runs back (due now, handed
runs no thread started included) so another worker continues them at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from ledgerflow.runtime.engine import Engine
from ledgerflow.runtime.handoff import Claimed
from ledgerflow.runtime.listen import Listener
from ledgerflow.runtime.scheduler import Scheduler

log = logging.getLogger("ledgerflow.worker")


class Worker:
    """Runs due runs of `engine` on `threads` threads until stopped."""

    def __init__(self, engine: Engine, threads: int = 4, poll_interval: float = 0.5,
                 scheduler: Scheduler | None = None) -> None:
        if threads < 1:
            raise ValueError(f"a worker needs at least one thread, got {threads}")
        self.engine = engine
        self.threads = threads
        self.poll_interval = poll_interval
        self._halt = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listener: Listener | None = None
        self.scheduler = scheduler
        """Started and stopped with the worker: fires due schedules (`runtime.scheduler`)."""

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._halt.is_set()

    def start(self) -> Worker:
        """Start the worker threads and the heartbeat thread; returns self."""
        if self._threads:
            raise RuntimeError("worker already started")
        self.engine.request_stop(False)
        self.engine.runtime.aio.serve()
        self.engine.wakeup.attach(self.threads)
        for index in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"ledgerflow-worker-{index}",
                                      daemon=True)
            self._threads.append(thread)
        self._threads.append(threading.Thread(target=self._beat, name="ledgerflow-heartbeat",
                                              daemon=True))
        for thread in self._threads:
            thread.start()
        if self.engine.store.backend.notifies:
            self.listener = Listener(self.engine.store.engine, self.engine.worker_id,
                                     self.engine.wakeup.notify).start()
        if self.scheduler is not None:
            self.scheduler.start()
        return self

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Stop: finish the step in hand (graceful) and release this worker's leases."""
        self.engine.request_stop(True)
        self._halt.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        if self._threads:  # handed, unstarted: their leases are released below
            for unstarted in self.engine.wakeup.detach(self.threads):
                if unstarted.opened is not None:
                    unstarted.opened.close()
        self.engine.wakeup.notify(len(self._threads) or 1)
        if graceful:
            for thread in self._threads:
                thread.join(timeout)
        if self._threads:
            self.engine.runtime.aio.unserve()
            if graceful:  # async runs give themselves back at their next step
                self.engine.runtime.aio.drain(timeout)
        try:
            self.engine.release_leases()
        except Exception:  # the database may be gone at shutdown; leases then expire
            log.exception("could not release leases")
        self._threads = []
        self._stopped.set()

    def run(self) -> None:
        """Start, then block until `stop()` (or SIGTERM, after `install_signal_handlers`)."""
        self.start()
        while not self._halt.wait(0.2):
            pass
        if not self._stopped.is_set():
            self.stop()

    def install_signal_handlers(self) -> None:
        """On SIGTERM / SIGINT, stop gracefully (call from the main thread)."""

        def handler(signum: int, frame: FrameType | None) -> None:
            self._halt.set()
            self.engine.request_stop(True)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _loop(self) -> None:
        engine, wakeup = self.engine, self.engine.wakeup
        drain, next_poll = True, 0.0
        while not self._halt.is_set():
            try:
                handed = wakeup.take()
                if handed is not None:
                    self._execute(handed)
                    continue
                if drain or time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.poll_interval
                    drain = engine.run_due(1, heartbeat=False).claimed > 0
                    continue
                woken = wakeup.wait(self.poll_interval)
                if self._halt.is_set():
                    break
                if isinstance(woken, Claimed):
                    self._execute(woken)
                elif woken:
                    engine.run_due(1, heartbeat=False)
            except Exception:
                log.exception("worker iteration failed")
                self._halt.wait(self.poll_interval)

    def _execute(self, handed: Claimed) -> None:
        # crash tests: the process dies holding a run its trigger leased to it
        self.engine.runtime.faults("run_handed")
        self.engine.execute(handed)

    def _beat(self) -> None:
        interval = max(self.engine.lease.total_seconds() / 3, 0.05)
        beats = 0
        while not self._halt.wait(interval):
            beats += 1
            try:
                self.engine.heartbeat()
                if beats % 3 == 0:  # about once a lease: expired leases give back slots
                    self.engine.reap()
            except Exception:
                log.exception("heartbeat failed")
