"""What a serverless host (a function woken per job, or by a cron) asks of a
`Ledgerflow`: `tick` (fire due schedules, reap expired leases, execute due runs, relay
one outbox batch),
`handle(run_id)` (execute one run now if it is due) and `stats` (the counts it reports).
There is no worker thread, no scheduler loop and no relay loop in such a host: each
call does its share and returns. `Ledgerflow` exposes these as its methods.

Schedules (`TickSchedules`): each tick decides the due fires as the scheduler loop of
`serve` / `worker` does (`Scheduler.fire_due`, the same transactions), so a fire time
starts exactly one run however many hosts tick at once, or a host ticks beside servers.
The schedules the registry's workflows declare are upserted at a host's first tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore.store import Clock
from ledgerflow.outbox._schema import DEAD, PENDING, outbox
from ledgerflow.projections._schema import run_views
from ledgerflow.runtime.queue import run_queue
from ledgerflow.runtime.scheduler import Scheduler
from ledgerflow.runtime.schedules import Schedules

_q = run_queue.c


@dataclass(frozen=True)
class HostStats:
    """The counts a host reports: runs `due` (no live lease holds them), `leased` (a
    live lease holds them), `executing` (status running), outbox rows `outbox_pending`
    and `dead` (dead letters)."""

    due: int
    leased: int
    executing: int
    outbox_pending: int
    dead: int


def host_stats(db: Engine, clock: Clock) -> HostStats:
    """Read the counts (five indexed counts, one connection)."""
    now = clock()
    live = sa.and_(_q.lease_owner.is_not(None), _q.lease_expires_at >= now)
    count = sa.func.count()
    with db.connect() as conn:
        due = conn.execute(sa.select(count).where(
            _q.due_at.is_not(None), _q.due_at <= now, sa.not_(live))).scalar_one()
        leased = conn.execute(sa.select(count).where(live)).scalar_one()
        executing = conn.execute(sa.select(count).select_from(run_views).where(
            run_views.c.status == RunStatus.RUNNING.value)).scalar_one()
        pending = conn.execute(sa.select(count).select_from(outbox).where(
            outbox.c.status == PENDING)).scalar_one()
        dead = conn.execute(sa.select(count).select_from(outbox).where(
            outbox.c.status == DEAD)).scalar_one()
    return HostStats(int(due), int(leased), int(executing), int(pending), int(dead))


class TickSchedules:
    """The schedules' share of a tick (see the module)."""

    def __init__(self, schedules: Schedules) -> None:
        self.scheduler = Scheduler(schedules)
        self._declared = False

    def fire(self) -> int:
        """Fire every due schedule now (the registry's declared first, once); how many
        runs that started."""
        if not self._declared:
            self.scheduler.declare()
            self._declared = True
        return self.scheduler.fire_due()
