"""`StoreFigures`: the operational figures read from the store, shared by the
Prometheus gauges (`metrics`) and the health checks (`doctor`).

Every figure comes from the database, so it is true across processes: the API
process counts runs that workers elsewhere execute. None grows with history: runs
per status are `projections._counts` (finished runs: a few counter rows; the others
on `run_views_status_created`), the outbox figures use its pending-only partial
index and its `(status, published_at)` index, the run queue holds the unfinished
runs only. All of them are one statement (a `UNION ALL` of those indexed reads),
read outside a transaction: a scrape costs the database one round trip, which is
what a scrape on a busy host waits for. Portable SQLAlchemy Core: nothing here
asks which database it runs on.

Interface: `read_figures(store, clock, overdue_after) -> Figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore.store import Clock, EventStore
from ledgerflow.outbox._schema import DEAD, PENDING, outbox
from ledgerflow.projections import Projection, default_projections
from ledgerflow.projections._counts import LIVE
from ledgerflow.projections._schema import run_status_counts, run_views
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
    queue_depths: dict[str, int] = field(default_factory=dict)
    """`queue_depth` per queue (queues with no due run waiting are absent)."""


_NOW = sa.bindparam("now", type_=_q.due_at.type)
_OVERDUE_BEFORE = sa.bindparam("overdue_before", type_=_q.due_at.type)
_WAITING, _FINISHED, _LIVE, _OVERDUE, _EXPIRED, _PENDING, _DEAD = (
    "waiting", "finished", "live", "overdue", "expired", "pending", "dead")


def _unclaimed() -> sa.ColumnElement[bool]:
    return sa.and_(_q.due_at.is_not(None), _q.due_at <= _NOW,
                   sa.or_(_q.lease_owner.is_(None), _q.lease_expires_at < _NOW))


def _reading() -> sa.CompoundSelect[Any]:
    """Every store figure as rows `(kind, label, n, at)` of one statement, built once
    (parameters `now`, `overdue_before`): one round trip, where a query per figure
    made a scrape on a busy host wait for the database once per figure. Each branch
    reads an index (see the module docstring); the first branch types `at` (a
    timestamp) for the others."""
    no_label, no_at = sa.null(), sa.type_coerce(sa.null(), _q.due_at.type)
    c, v = run_status_counts.c, run_views.c
    oldest_pending = (sa.select(_o.created_at).where(_o.status == PENDING)
                      .order_by(_o.id).limit(1).scalar_subquery())
    return sa.union_all(
        sa.select(sa.literal(_WAITING), _q.queue, sa.func.count(), sa.func.min(_q.due_at))
        .where(_unclaimed()).group_by(_q.queue),
        sa.select(sa.literal(_FINISHED), c.status, sa.func.sum(c.runs), no_at)
        .group_by(c.status),
        sa.select(sa.literal(_LIVE), v.status, sa.func.count(), no_at)
        .where(v.status.in_(LIVE)).group_by(v.status),
        sa.select(sa.literal(_OVERDUE), no_label, sa.func.count(), no_at)
        .where(_unclaimed(), _q.due_at <= _OVERDUE_BEFORE),
        sa.select(sa.literal(_EXPIRED), no_label, sa.func.count(), no_at)
        .where(_q.lease_owner.is_not(None), _q.lease_expires_at < _NOW),
        sa.select(sa.literal(_PENDING), no_label, sa.func.count(), oldest_pending)
        .select_from(outbox).where(_o.status == PENDING),
        sa.select(sa.literal(_DEAD), no_label, sa.func.count(), no_at)
        .select_from(outbox).where(_o.status == DEAD))


_READING = _reading()


def _age(now: datetime, since: datetime | None) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


def read_figures(store: EventStore, clock: Clock, overdue_after: timedelta,
                 projections: Sequence[Projection] | None = None) -> Figures:
    """Read every figure from the store: one statement (`_READING`). Projection lag is
    that of `projections` (default: ledgerflow's own, which are inline: lag 0 without
    a read; a catch-up projection's is the events after its checkpoint)."""
    now = clock()
    runs = {s.value: 0 for s in RunStatus}
    depths: dict[str, int] = {}
    scalars: dict[str, int] = {}
    oldest_due: datetime | None = None
    oldest_pending: datetime | None = None
    # one statement, one snapshot: no transaction to begin and roll back (two more
    # round trips on PostgreSQL); readonly: SQLite's read takes no write lock
    reader = store.engine.connect().execution_options(isolation_level="AUTOCOMMIT",
                                                      readonly=True)
    with reader as conn:
        for kind, label, n, at in conn.execute(
                _READING, {"now": now, "overdue_before": now - overdue_after}):
            if kind == _WAITING:
                depths[str(label)] = int(n)
                oldest_due = at if oldest_due is None or at < oldest_due else oldest_due
            elif kind in (_FINISHED, _LIVE):
                runs[str(label)] = int(n or 0)
            else:
                scalars[kind] = int(n)
                oldest_pending = at if kind == _PENDING else oldest_pending
    chosen = default_projections() if projections is None else projections
    lag = {p.name: 0 for p in chosen}
    catch_up = [p for p in chosen if not p.inline]
    if catch_up:
        lag.update((p.name, p.lag) for p in projection_status(store, catch_up, clock=clock))
    return Figures(now=now, runs=runs, queue_depth=sum(depths.values()),
                   runs_overdue=scalars[_OVERDUE], oldest_overdue_seconds=_age(now, oldest_due),
                   leases_expired=scalars[_EXPIRED], outbox_pending=scalars[_PENDING],
                   outbox_dead=scalars[_DEAD],
                   outbox_oldest_pending_seconds=_age(now, oldest_pending),
                   projection_lag=lag, queue_depths=depths)
