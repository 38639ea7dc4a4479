"""`Runner`: executing runs leased to this worker — claim and execute due runs
(`run_due`, `tick` for cron / serverless hosts), renew and give back leases
(`heartbeat`, `reap`, `release_leases`) — over a `Runtime`. `Engine` composes one;
`Worker` threads call it through the engine.

An execution that breaks off (the store went away mid-run) leaves its run leased
to this worker: the next heartbeat gives it back, due now, instead of renewing its
lease with the others, so a worker continues it from its journal.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from ledgerflow.runtime import queue
from ledgerflow.runtime.aio_session import execute_async, runs_async
from ledgerflow.runtime.executor import RunSession, claim_next
from ledgerflow.runtime.handoff import Claimed
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.listen import announce

log = logging.getLogger("ledgerflow.engine")


@dataclass
class TickResult:
    """What one `run_due` / `tick` did."""

    claimed: int = 0
    completed: int = 0
    parked: int = 0
    failed: int = 0
    reaped: int = 0
    released: int = 0
    abandoned: int = 0
    canceled: int = 0
    relayed: int = 0
    """Outbox rows published (`Ledgerflow.tick` relays one batch; `Engine.tick` none)."""
    dead_lettered: int = 0
    handed: int = 0
    """Async runs handed to the worker's event loop (executing there)."""
    fired: int = 0
    """Runs started by schedule fires (`Ledgerflow.tick`; `Engine.tick` fires none)."""

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


Outcome = Literal["completed", "parked", "failed", "canceled", "abandoned", "released",
                  "not_due", "leased", "finished"]


@dataclass(frozen=True)
class Handled:
    """What `handle(run_id)` did: executed the run until it `completed`, `parked`,
    `failed` or was `canceled` (`abandoned`: another party took it meanwhile; `released`:
    the host is stopping), or executed nothing: `not_due` (it waits; `due_at` says until
    when, None: for a signal, event, token or child), `leased` (a worker executes it now),
    `finished` (it had ended). `status` is the run's lifecycle status when nothing ran."""

    run_id: str
    outcome: Outcome
    status: str | None = None
    due_at: datetime | None = None

    @property
    def executed(self) -> bool:
        return self.outcome not in ("not_due", "leased", "finished")


class Runner:
    """Claims, executes and keeps the leases of the runs one worker id holds."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._dropped: set[str] = set()  # runs whose execution broke off: to give back
        self._dropped_lock = threading.Lock()

    def execute(self, claimed: Claimed) -> str:
        """Execute a run leased to this worker (claimed, or handed over by a trigger);
        one that breaks off is given back by the next heartbeat (see the module). An
        async run executes on the loop (`aio_session.execute_async`: while a `Worker`
        serves, this returns "handed" at once)."""
        try:
            remote = None if self.rt.dispatch is None else self.rt.dispatch.session(self.rt,
                                                                                   claimed)
            if remote is not None:
                with self.rt.store.held_connection():
                    return remote.run()
            if runs_async(self.rt, claimed.journal):
                return execute_async(self.rt, claimed, self._broke_off)
            with self.rt.store.held_connection():
                return RunSession(self.rt, claimed.journal, claimed.held, claimed.opened).run()
        except Exception:
            with self._dropped_lock:
                self._dropped.add(claimed.run_id)
            raise

    def _broke_off(self, run_id: str) -> None:
        with self._dropped_lock:
            self._dropped.add(run_id)

    def run_due(self, max_runs: int = 100, *, heartbeat: bool = True) -> TickResult:
        """Claim and execute due runs (at most `max_runs`) in this thread.

        From the first claim on, a heartbeat thread renews this engine's leases every
        lease / 3 until the call returns, so a run that takes longer than the lease is
        not taken over by another host meanwhile (`Worker` threads pass
        `heartbeat=False`: the worker has a heartbeat thread of its own)."""
        result = TickResult()
        beating: threading.Event | None = None
        try:
            with self.rt.store.held_connection():
                while result.claimed < max_runs:
                    claimed = claim_next(self.rt)
                    if claimed is None:
                        break
                    if heartbeat and beating is None:
                        beating = self._beat_until_set()
                    result.claimed += 1
                    if claimed is False:
                        continue
                    result.count(self.execute(claimed))
        finally:
            if beating is not None:
                beating.set()
        return result

    def _beat_until_set(self) -> threading.Event:
        """Renew this engine's leases every lease / 3 until the returned event is set."""
        done = threading.Event()
        interval = max(self.rt.lease.total_seconds() / 3, 0.05)

        def beat() -> None:
            while not done.wait(interval):
                try:
                    self.heartbeat()
                except Exception:  # the next beat retries; the lease has slack for two
                    log.exception("heartbeat failed")

        threading.Thread(target=beat, name="ledgerflow-run-due-heartbeat", daemon=True).start()
        return done

    def handle(self, run_id: str) -> Handled:
        """Execute run `run_id` now if it is due and no worker holds it (a host woken
        per job, by a queue message or a webhook, naming the run); what happened.

        `UnknownRun` if the store has no such run."""
        with self.rt.store.held_connection():
            claimed = claim_next(self.rt, only=run_id)
            if claimed:
                beating = self._beat_until_set()
                try:
                    return Handled(run_id, cast(Outcome, self.execute(claimed)))
                finally:
                    beating.set()
        return self._not_executed(run_id, claimed is False)

    def _not_executed(self, run_id: str, stale: bool) -> Handled:
        """Why `handle` executed nothing (`stale`: its queue row needed no execution)."""
        state = self.rt.journal(run_id).state  # UnknownRun
        if state.is_terminal:
            return Handled(run_id, "finished", state.status.value)
        with self.rt.store.engine.connect() as conn:
            row = queue.queue_row(conn, run_id) or {}
        due, until = row.get("due_at"), row.get("lease_expires_at")
        if not stale and isinstance(until, datetime) and until >= self.rt.clock():
            return Handled(run_id, "leased", state.status.value)
        return Handled(run_id, "not_due", state.status.value,
                       due if isinstance(due, datetime) else None)

    def tick(self, max_runs: int = 100) -> TickResult:
        """For cron / serverless hosts: reap stale leases, then `run_due`."""
        reaped = self.reap()
        result = self.run_due(max_runs)
        result.reaped = reaped
        return result

    def reap(self) -> int:
        """Clear expired leases; returns how many runs became claimable again."""
        with self.rt.store.engine.begin() as conn:
            return queue.reap(conn, self.rt.clock())

    def heartbeat(self) -> int:
        """Give back the runs whose execution broke off, extend the leases this engine's
        worker id holds (returns how many), then cancel the steps in flight here whose
        run another process canceled."""
        with self._dropped_lock:
            dropped = set(self._dropped)
        with self.rt.store.engine.begin() as conn:
            if dropped:
                queue.release_owner(conn, self.rt.worker_id, self.rt.clock(), runs=dropped)
            renewed = queue.heartbeat(conn, self.rt.worker_id, self.rt.clock() + self.rt.lease)
        with self._dropped_lock:
            self._dropped -= dropped
        self.rt.inflight.poll(self.rt.store.read_stream)
        return renewed

    def release_leases(self) -> int:
        """Give back every run this worker id holds (due now)."""
        with self.rt.store.transaction() as tx:
            released = queue.release_owner(tx.conn, self.rt.worker_id, self.rt.clock())
            if released:
                announce(tx, self.rt.worker_id)
        return released
