"""`StoreFigures`: the operational figures read from the store, shared by the
Prometheus gauges (`metrics`) and the health checks (`doctor`).

Every figure comes from the database, so it is true across processes: the API
process counts runs that workers elsewhere execute. Each is one cheap query on an
index (`run_views_status_created`, the outbox's pending-only partial index and its
`(status, published_at)` index, the run queue, whose rows are the unfinished runs
only). Portable SQLAlchemy Core: nothing here asks which database it runs on.

Interface: `read_figures(store, clock, overdue_after) -> Figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore.store import Clock, EventStore
from ledgerflow.outbox._schema import DEAD, PENDING, outbox
from ledgerflow.projections import Projection, default_projections
from ledgerflow.projections._schema import run_views
from ledgerflow.projections.status import status as projection_status
from ledgerflow.runtime.queue import run_queue

_q = run_queue.c
_o = outbox.c


@dataclass(frozen=True)
class Figures:
    """One reading of the store, at `now`."""

    now: datetime
    runs: dict[str, int]
    """Runs per status (every status present, 0 when none)."""
    queue_depth: int
    """Due runs no live lease holds: waiting for a worker."""
    runs_overdue: int
    """Due runs no live lease holds, due for longer than the overdue threshold."""
    oldest_overdue_seconds: float
    """How long the longest-waiting due, unclaimed run has waited (0: none)."""
    leases_expired: int
    """Runs whose lease expired and no worker has taken over yet."""
    outbox_pending: int
    outbox_dead: int
    outbox_oldest_pending_seconds: float
    """Age of the oldest pending outbox row (0: none pending)."""
    projection_lag: dict[str, int]


def _runs(conn: Connection) -> dict[str, int]:
    counts = {s.value: 0 for s in RunStatus}
    rows = conn.execute(sa.select(run_views.c.status, sa.func.count())
                        .group_by(run_views.c.status))
    for name, count in rows:
        counts[str(name)] = int(count)
    return counts


def _unclaimed(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(_q.due_at.is_not(None), _q.due_at <= now,
                   sa.or_(_q.lease_owner.is_(None), _q.lease_expires_at < now))


def _queue(conn: Connection, now: datetime,
           overdue_after: timedelta) -> tuple[int, int, float, int]:
    waiting = conn.execute(sa.select(sa.func.count(), sa.func.min(_q.due_at))
                           .where(_unclaimed(now))).one()
    overdue = conn.execute(sa.select(sa.func.count()).where(
        _unclaimed(now), _q.due_at <= now - overdue_after)).scalar_one()
    expired = conn.execute(sa.select(sa.func.count()).where(
        _q.lease_owner.is_not(None), _q.lease_expires_at < now)).scalar_one()
    oldest = 0.0 if waiting[1] is None else max(0.0, (now - waiting[1]).total_seconds())
    return int(waiting[0]), int(overdue), oldest, int(expired)


def _outbox(conn: Connection, now: datetime) -> tuple[int, int, float]:
    pending = conn.execute(sa.select(sa.func.count()).select_from(outbox)
                           .where(_o.status == PENDING)).scalar_one()
    dead = conn.execute(sa.select(sa.func.count()).select_from(outbox)
                        .where(_o.status == DEAD)).scalar_one()
    oldest = conn.execute(sa.select(_o.created_at).where(_o.status == PENDING)
                          .order_by(_o.id).limit(1)).scalar()
    age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    return int(pending), int(dead), age


def read_figures(store: EventStore, clock: Clock, overdue_after: timedelta,
                 projections: Sequence[Projection] | None = None) -> Figures:
    """Read every figure from the store (a handful of indexed queries). Projection lag
    is that of `projections` (default: ledgerflow's own, which are inline: lag 0; a
    catch-up projection's is the events after its checkpoint)."""
    now = clock()
    with store.engine.connect() as conn:
        runs = _runs(conn)
        depth, overdue, oldest_due, expired = _queue(conn, now, overdue_after)
        pending, dead, oldest_pending = _outbox(conn, now)
    lag = {p.name: p.lag for p in projection_status(
        store, default_projections() if projections is None else projections, clock=clock)}
    return Figures(now=now, runs=runs, queue_depth=depth, runs_overdue=overdue,
                   oldest_overdue_seconds=oldest_due, leases_expired=expired,
                   outbox_pending=pending, outbox_dead=dead,
                   outbox_oldest_pending_seconds=oldest_pending, projection_lag=lag)
