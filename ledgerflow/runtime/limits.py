"""Flow control in the claim: queue concurrency, per-key concurrency, rate limits, pause,
and fair order between concurrency keys.

Interface: `claim_statement(backend)` / `claim_in_steps(conn, ...)` (used by
`runtime.queue`), `ending_statement` (PostgreSQL: a lease that ends gives its slots
back in the statement that parks or deletes its row), `release(conn, run_id)` and
`give_back(conn, held)` (the same in steps, and for reaped or dropped leases),
`enqueue_turn` (the fairness rank of a new run) and the tables `queue_limits`,
`queue_keys`, `queue_rate_slots`. A queue without a `queue_limits` row has no limits.

Counting. `queue_limits.executing` is the number of `run_queue` rows holding the
queue's slot (`holds` 1 or 3), `queue_keys.executing` the number holding their key's
(`holds` 2 or 3): a claim of a run whose queue has a `concurrency` (or a
`perKeyConcurrency` and the run a key) adds one to those counts in its own statement;
the end of the lease (park, end, give back, reap, cancel) takes them off in its own
transaction. No count scans the backlog: a claim touches one `queue_limits` row, one
`queue_keys` row and one rate slot. Runs of a queue without limits touch none.

Concurrency of claims (PostgreSQL, ONE statement): the pick takes the most urgent
claimable run `FOR UPDATE OF run_queue SKIP LOCKED`, judging the counts as its
snapshot sees them; then the statement adds one to the key's count, then (after it, so
every claimer locks a key before its queue and two claimers never wait on each other
in a cycle) to the queue's, takes a free rate slot (`SKIP LOCKED`) and leases the run.
A count row another claim changed meanwhile is re-read (PostgreSQL re-checks an UPDATE
against the row's latest version), and the statement says whether the counts after
adding are still within the limits: when they are not (a claim on another worker won
the last slot), the claim's transaction rolls back (`SlotTaken`) and claims again.
No table lock, no advisory lock, no leader; claims of different keys, or of queues
without a concurrency limit, never wait on each other. On SQLite the write transaction
holds the database (BEGIN IMMEDIATE), so the same steps run one statement after
another.

Rate limits: a queue limited to N starts per period has N `queue_rate_slots` rows; a
claim takes a slot whose `free_at` has passed and sets it one period ahead, so no
period ever holds more than N starts, across all workers.

Fairness (round-robin by arrival rank): a new run's `turn` is one more than the
highest turn of its key's runs still in the queue (runs without a key count as one key
of their queue); claims take the highest priority first, then the lowest turn, then
the oldest due time. A key with 10,000 waiting runs holds turns 1..10,000; a key with
one holds turn 1 and is claimed among the first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Boolean, Column, Float, Integer, String, Table
from sqlalchemy.engine import Connection

from ledgerflow.eventstore.backend import Backend
from ledgerflow.eventstore.schema import metadata

queue_limits = Table(
    "queue_limits",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("concurrency", Integer, nullable=True),
    Column("per_key_concurrency", Integer, nullable=True),
    Column("rate_limit", Integer, nullable=True),
    Column("rate_period_seconds", Float, nullable=True),
    Column("paused", Boolean, nullable=False),
    Column("executing", Integer, nullable=False),
    Column("version", Integer, nullable=False),
)

queue_keys = Table(
    "queue_keys",
    metadata,
    Column("queue", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("executing", Integer, nullable=False),
)

queue_rate_slots = Table(
    "queue_rate_slots",
    metadata,
    Column("queue", String(200), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("free_at", Float, nullable=False),
)

QUEUE_SLOT, KEY_SLOT = 1, 2
"""Bits of `run_queue.holds`."""


def _n(value: int) -> sa.ColumnElement[Any]:
    """A literal number: the compiled claim takes no parameters but ours."""
    return sa.literal_column(str(value))


def _has_key_slot(holds: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return holds >= _n(KEY_SLOT)


def _has_queue_slot(holds: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return sa.or_(holds == _n(QUEUE_SLOT), holds == _n(QUEUE_SLOT | KEY_SLOT))


class SlotTaken(Exception):
    """A claim lost the last slot of a queue or key to a concurrent claim: its
    transaction rolls back and the worker claims again."""


@dataclass(frozen=True)
class Held:
    """The slots a lease holds: its run's queue and key, and `holds` (bits)."""

    queue: str
    key: str | None
    holds: int


def _claimable(run_queue: Table) -> list[sa.ColumnElement[bool]]:
    """What makes a row claimable now: due, not leased (an expired lease that holds
    slots is reaped first), its queue not paused, under its limits as last committed
    (a queue without a `queue_limits` row has none: its runs are claimed as on a queue
    without limits).

    Only `run_queue` is in the FROM: the queue's and key's rows are looked up by their
    primary keys for each row the walk meets, so the walk follows `run_queue_pick` in
    claim order and stops at the first claimable row (a join would let the planner
    sort the whole backlog first)."""
    q, lim, k, r = run_queue.c, queue_limits.c, queue_keys.c, queue_rate_slots.c
    now: sa.BindParameter[Any] = sa.bindparam("now")
    key_executing = sa.select(k.executing).where(
        k.queue == q.queue, k.key == q.concurrency_key).correlate(run_queue).scalar_subquery()
    return [
        q.due_at <= now,
        sa.or_(q.lease_expires_at.is_(None), sa.and_(q.lease_expires_at < now, q.holds == _n(0))),
        # a scalar subquery, not EXISTS (PostgreSQL would make EXISTS a join and sort
        # the backlog), compared with <> so the planner expects most rows to pass; a
        # queue without a row (NULL) has no limits
        sa.func.coalesce(sa.select(sa.case((sa.and_(
            lim.paused == sa.false(),
            sa.or_(lim.concurrency.is_(None), lim.executing < lim.concurrency),
            sa.or_(lim.per_key_concurrency.is_(None), q.concurrency_key.is_(None),
                   sa.func.coalesce(key_executing, _n(0)) < lim.per_key_concurrency),
            sa.or_(lim.rate_limit.is_(None), sa.exists().where(
                r.queue == q.queue, r.free_at <= sa.bindparam("now_s")).correlate(run_queue)),
        ), _n(1)), else_=_n(0))).where(lim.name == q.queue).correlate(run_queue)
            .scalar_subquery(), _n(1)) != _n(0),
    ]


def _pick(backend: Backend, run_queue: Table) -> sa.Select[Any]:
    q, lim = run_queue.c, queue_limits.c

    def of_queue(column: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
        return sa.select(column).where(lim.name == q.queue).correlate(run_queue) \
            .scalar_subquery()

    key_limited = sa.and_(lim.per_key_concurrency.is_not(None), q.concurrency_key.is_not(None))
    holds = sa.func.coalesce(  # no row: no limits, no slots
        of_queue(sa.case((lim.concurrency.is_not(None), _n(QUEUE_SLOT)), else_=_n(0))
                 + sa.case((key_limited, _n(KEY_SLOT)), else_=_n(0))), _n(0))
    pick = (
        sa.select(q.run_id, q.queue, q.concurrency_key, holds.label("holds"),
                  of_queue(lim.concurrency).label("concurrency"),
                  of_queue(lim.per_key_concurrency).label("per_key_concurrency"),
                  of_queue(lim.rate_limit).label("rate_limit"))
        .where(*_claimable(run_queue))
        .order_by(q.priority.desc(), q.turn, q.due_at)
        .limit(sa.literal_column("1"))  # no bind: the compiled SQL takes only ours
    )
    return backend.skip_locked(pick, of=run_queue)


def claim_statement(backend: Backend, run_queue: Table) -> sa.Update:
    """The claim as ONE statement (PostgreSQL): returns (run id, holds, within limits)."""
    q, lim, k, r = run_queue.c, queue_limits.c, queue_keys.c, queue_rate_slots.c
    pick = _pick(backend, run_queue).cte("pick")
    key_bump = (sa.update(queue_keys)
                .where(k.queue == pick.c.queue, k.key == pick.c.concurrency_key,
                       _has_key_slot(pick.c.holds))
                .values(executing=k.executing + _n(1)).returning(k.executing).cte("key_bump"))
    after_key = sa.or_(~_has_key_slot(pick.c.holds),
                       sa.exists(sa.select(key_bump.c.executing)))
    queue_bump = (sa.update(queue_limits)
                  .where(lim.name == pick.c.queue,
                         _has_queue_slot(pick.c.holds), after_key)
                  .values(executing=lim.executing + _n(1)).returning(lim.executing)
                  .cte("queue_bump"))
    free = backend.skip_locked(
        sa.select(r.queue, r.slot)
        .where(r.queue == sa.select(pick.c.queue).where(pick.c.rate_limit.is_not(None))
               .scalar_subquery(), r.free_at <= sa.bindparam("now_s"))
        .order_by(r.free_at).limit(sa.literal_column("1")), of=queue_rate_slots).cte("free")
    period = sa.select(lim.rate_period_seconds).where(lim.name == r.queue).scalar_subquery()
    rate_take = (sa.update(queue_rate_slots)
                 .where(r.queue == free.c.queue, r.slot == free.c.slot)
                 .values(free_at=sa.bindparam("now_s") + period)
                 .returning(r.slot).cte("rate_take"))
    within = sa.and_(
        sa.or_(~_has_key_slot(pick.c.holds), sa.func.coalesce(
            sa.select(key_bump.c.executing).scalar_subquery(), _n(2**31 - 1))
            <= pick.c.per_key_concurrency),
        sa.or_(~_has_queue_slot(pick.c.holds), sa.func.coalesce(
            sa.select(queue_bump.c.executing).scalar_subquery(), _n(2**31 - 1))
            <= pick.c.concurrency),
        sa.or_(pick.c.rate_limit.is_(None), sa.exists(sa.select(rate_take.c.slot))))
    return (
        sa.update(run_queue)
        .where(q.run_id == pick.c.run_id)
        .values(lease_owner=sa.bindparam("owner"), lease_expires_at=sa.bindparam("until"),
                holds=pick.c.holds, debounce_key=sa.null())
        .returning(q.run_id, q.holds, within)
    )


def claim_in_steps(conn: Connection, backend: Backend, run_queue: Table,
                   params: dict[str, Any]) -> tuple[str, int] | None:
    """The claim where the write transaction holds the whole database (SQLite): the
    same pick, then each count and the lease, one statement after another."""
    q, lim, k, r = run_queue.c, queue_limits.c, queue_keys.c, queue_rate_slots.c
    row = conn.execute(_pick(backend, run_queue), params).mappings().first()
    if row is None:
        return None
    holds, name = int(row["holds"]), str(row["queue"])
    if holds & KEY_SLOT:
        conn.execute(sa.update(queue_keys).where(k.queue == name, k.key == row["concurrency_key"])
                     .values(executing=k.executing + 1))
    if holds & QUEUE_SLOT:
        conn.execute(sa.update(queue_limits).where(lim.name == name)
                     .values(executing=lim.executing + 1))
    if row["rate_limit"] is not None:
        slot = conn.execute(sa.select(r.slot).where(r.queue == name,
                                                    r.free_at <= params["now_s"])
                            .order_by(r.free_at).limit(1)).scalar()
        period = conn.execute(sa.select(lim.rate_period_seconds)
                              .where(lim.name == name)).scalar()
        conn.execute(sa.update(queue_rate_slots).where(r.queue == name, r.slot == slot)
                     .values(free_at=params["now_s"] + float(period or 0)))
    conn.execute(sa.update(run_queue).where(q.run_id == row["run_id"]).values(
        lease_owner=params["owner"], lease_expires_at=params["until"], holds=holds,
        debounce_key=None))
    return str(row["run_id"]), holds


def epoch(moment: datetime) -> float:
    """`moment` as unix seconds (what rate slots keep)."""
    return moment.timestamp()


# --------------------------------------------------------------------- releasing


def release(conn: Connection, backend: Backend, run_queue: Table, run_id: str) -> None:
    """The lease of `run_id` ends (in `conn`'s transaction): give back the slots its row
    holds. The row is locked first, so a concurrent cancel and the run's own end never
    both give them back. (Where the backend writes in one statement, `ending_statement`
    does this and the row's own write at once.)"""
    q = run_queue.c
    row = conn.execute(backend.lock_rows(
        sa.select(q.queue, q.concurrency_key, q.holds).where(q.run_id == run_id))).first()
    if row is None or not row.holds:
        return
    give_back(conn, [Held(row.queue, row.concurrency_key, int(row.holds))])
    conn.execute(sa.update(run_queue).where(q.run_id == run_id).values(holds=0))


def ending_statement(run_queue: Table, park: bool) -> sa.Update:
    """ONE statement (PostgreSQL) that ends the lease of run `rid` and gives back the
    slots its row held: the row parked (due at `due`, `park`) or deleted, and the counts
    of its key, then its queue (the order claims lock them in), taken down by the slots
    the row held when the statement locked it. Two endings of one lease (a cancel and
    the run's own end) queue on the row's lock: the second finds no slots left."""
    q, k, lim = run_queue.c, queue_keys.c, queue_limits.c
    rid: sa.BindParameter[Any] = sa.bindparam("rid")
    ended: sa.CTE
    if park:
        old = sa.select(q.run_id, q.queue, q.concurrency_key, q.holds).where(
            q.run_id == rid).with_for_update().cte("old")
        ended = (sa.update(run_queue).where(q.run_id == old.c.run_id)
                 .values(due_at=sa.bindparam("due"), lease_owner=sa.null(),
                         lease_expires_at=sa.null(), holds=_n(0))
                 .returning(old.c.queue, old.c.concurrency_key, old.c.holds).cte("ended"))
    else:
        ended = (sa.delete(run_queue).where(q.run_id == rid)
                 .returning(q.queue, q.concurrency_key, q.holds).cte("ended"))
    key_back = (sa.update(queue_keys)
                .where(k.queue == ended.c.queue, k.key == ended.c.concurrency_key,
                       _has_key_slot(ended.c.holds))
                .values(executing=k.executing - _n(1)).returning(k.executing).cte("key_back"))
    after_key = sa.or_(~_has_key_slot(ended.c.holds), sa.exists(sa.select(key_back.c.executing)))
    return (sa.update(queue_limits)
            .where(lim.name == ended.c.queue, _has_queue_slot(ended.c.holds), after_key)
            .values(executing=lim.executing - _n(1)))


def give_back(conn: Connection, held: Iterable[Held]) -> None:
    """Take slots off the counts: keys first, then queues, each in name order (the
    order claims lock them in, so two transactions never wait on each other in a
    cycle)."""
    keys: Counter[tuple[str, str]] = Counter()
    queues: Counter[str] = Counter()
    for h in held:
        if h.holds & KEY_SLOT and h.key is not None:
            keys[(h.queue, h.key)] += 1
        if h.holds & QUEUE_SLOT:
            queues[h.queue] += 1
    k, lim = queue_keys.c, queue_limits.c
    for (name, key), n in sorted(keys.items()):
        conn.execute(sa.update(queue_keys).where(k.queue == name, k.key == key)
                     .values(executing=k.executing - n))
    for name, n in sorted(queues.items()):
        conn.execute(sa.update(queue_limits).where(lim.name == name)
                     .values(executing=lim.executing - n))


def enqueue_turn(run_queue: Table, keyed: bool) -> sa.ScalarSelect[Any]:
    """A new run's turn: one more than the highest of its key's runs in the queue
    (binds `t_queue`, and `t_key` when `keyed`)."""
    q = run_queue.c
    same_key = q.concurrency_key == sa.bindparam("t_key") if keyed \
        else q.concurrency_key.is_(None)
    # literal numbers: a statement whose binds are all the row's joins the append's one
    # statement (`fastpath`); a bound 0 or 1 would keep it apart
    return sa.select(sa.func.coalesce(sa.func.max(q.turn), _n(0)) + _n(1)).where(
        q.queue == sa.bindparam("t_queue"), same_key).scalar_subquery()
