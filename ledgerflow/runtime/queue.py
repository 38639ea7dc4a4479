"""The run queue: which runs are due, who holds them, until when.

One row per non-terminal run, written in the same transaction as the run's events
(deferred on the `Transaction`, so the row goes out in the statement that carries
the append's outbox and projection rows), so the queue never disagrees with the
streams:

- `due_at`: when a worker may take the run (NULL: parked until a command wakes it;
  timers, wait timeouts and retry back-off are simply future due times);
- `lease_owner` / `lease_expires_at`: the worker holding it; a lease that is not
  renewed by heartbeats expires and any worker may claim the run again;
- `priority`: higher first, then the oldest due time.

Claiming: one `UPDATE ... WHERE run_id = (SELECT ... FOR UPDATE SKIP LOCKED)
RETURNING`, the pick locked as the store's backend locks claims (`skip_locked`): on
PostgreSQL concurrent workers never wait on each other's rows; on SQLite the write
transaction already holds the database lock (BEGIN IMMEDIATE), so the same UPDATE
without the locking clause is enough.

A trigger's idempotency key is an `eventstore.idempotency` key (scope "trigger");
the `run_keys` table that held them before is gone (engine migration 2).

Each row names its run's queue and concurrency key; what a claim counts against their
limits, and gives back when the lease ends, is `runtime.limits` (engine migration 3).
A row's `debounce_key` names the debounced trigger that may still replace its input
(cleared by the claim that starts it); only such rows are in its unique index (engine
migration 4), so a run without one costs no index entry.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, Index, Integer, SmallInteger, String, Table
from sqlalchemy.engine import Connection

from ledgerflow.eventstore.backend import Backend
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.migrations import POSTGRESQL, SQLITE, Migration
from ledgerflow.eventstore.schema import UTCDateTime, metadata
from ledgerflow.eventstore.store import Transaction
from ledgerflow.runtime import _ddl, limits
from ledgerflow.runtime.limits import Held, SlotTaken

__all__ = ["Held", "SlotTaken"]

run_queue = Table(
    "run_queue",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("workflow_id", String(200), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("due_at", UTCDateTime(), nullable=True),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("queue", String(200), nullable=False, server_default="default"),
    Column("concurrency_key", String(200), nullable=True),
    Column("turn", BigInteger, nullable=False, server_default=sa.text("0")),
    Column("holds", SmallInteger, nullable=False, server_default=sa.text("0")),
    Column("debounce_key", String(500), nullable=True),
    Index("run_queue_due", "due_at"),
    Index("run_queue_pick", sa.desc("priority"), "turn", "due_at",
          postgresql_where=sa.text("due_at IS NOT NULL"),
          sqlite_where=sa.text("due_at IS NOT NULL")),
    Index("run_queue_key", "queue", "concurrency_key", "turn"),
    Index("run_queue_debounce", "debounce_key", unique=True,
          postgresql_where=sa.text("debounce_key IS NOT NULL"),
          sqlite_where=sa.text("debounce_key IS NOT NULL")),
)

MIGRATIONS: list[Migration] = [
    Migration("engine", 1, "run queue and trigger idempotency keys",
              {POSTGRESQL: _ddl.V1_POSTGRESQL, SQLITE: _ddl.V1_SQLITE}),
    Migration("engine", 2, "trigger idempotency keys move to idempotency_keys; drop run_keys",
              {POSTGRESQL: _ddl.V2_POSTGRESQL, SQLITE: _ddl.V2_SQLITE}),
    Migration("engine", 3, "named queues: limits, per-key counts, rate slots, fair turns",
              {POSTGRESQL: _ddl.V3_POSTGRESQL, SQLITE: _ddl.V3_SQLITE}),
    Migration("engine", 4, "the debounce index holds only debounced runs (partial)",
              {POSTGRESQL: _ddl.V4_POSTGRESQL, SQLITE: _ddl.V4_SQLITE}),
]
"""The engine's migrations (component "engine")."""

_q = run_queue.c
_DELETE = run_queue.delete().where(_q.run_id == sa.bindparam("rid"))
_PARK = run_queue.update().where(_q.run_id == sa.bindparam("rid")).values(
    due_at=sa.bindparam("due"), lease_owner=sa.null(), lease_expires_at=sa.null())
_WAKE = run_queue.update().where(_q.run_id == sa.bindparam("rid")).values(
    due_at=sa.bindparam("due"))
_HEARTBEAT = run_queue.update().where(_q.lease_owner == sa.bindparam("owner")).values(
    lease_expires_at=sa.bindparam("until"))
_REAP = run_queue.update().where(_q.lease_expires_at < sa.bindparam("now"),
                                 _q.holds == 0).values(
    lease_owner=None, lease_expires_at=None)


_CLAIMS: dict[Backend, sa.Update] = {}


def _claim_statement(backend: Backend) -> sa.Update:
    """The claim, built once per backend (then compiled once: `Backend.fetch_first`):
    ONE statement that picks, counts against the limits and leases (`runtime.limits`).
    The other writes are deferred on the transaction (see `_write`)."""
    found = _CLAIMS.get(backend)
    if found is None:
        found = _CLAIMS[backend] = limits.claim_statement(backend, run_queue)
    return found


_INSERTS = {keyed: run_queue.insert().values(turn=limits.enqueue_turn(run_queue, keyed))
            for keyed in (False, True)}


def enqueue(tx: Transaction, run_id: str, workflow_id: str, priority: int,
            due_at: datetime | None, now: datetime, owner: str | None = None,
            until: datetime | None = None, *, queue: str = "default",
            key: str | None = None, debounce: str | None = None) -> None:
    """Add a new run's row (due at `due_at`; leased to `owner` until `until` if given),
    in `queue` under concurrency key `key` (its key's count row made if new)."""
    if key is not None:
        keys = limits.queue_keys
        tx.defer(backend_for(tx.conn).insert_or_ignore(keys),
                 [{"queue": queue, "key": key, "executing": 0}])
    row: dict[str, Any] = {
        "run_id": run_id, "workflow_id": workflow_id, "priority": priority, "due_at": due_at,
        "lease_owner": owner, "lease_expires_at": until, "created_at": now, "queue": queue,
        "concurrency_key": key, "debounce_key": debounce, "t_queue": queue}
    if key is not None:
        row["t_key"] = key
    tx.defer(_INSERTS[key is not None], [row])


def claim(conn: Connection, owner: str, now: datetime, until: datetime) -> tuple[str, int] | None:
    """Lease the most urgent claimable run to `owner` until `until`: its id and the
    slots it holds (`limits.Held` bits); None if nothing is claimable. `SlotTaken` when
    a concurrent claim took the last slot first (roll back and claim again)."""
    backend = backend_for(conn)
    params = {"now": now, "now_s": limits.epoch(now), "owner": owner, "until": until}
    if not backend.writes_in_one:
        return limits.claim_in_steps(conn, backend, run_queue, params)
    row = backend.fetch_first(conn, _claim_statement(backend), params)
    if row is None:
        return None
    if not row[2]:
        raise SlotTaken(str(row[0]))
    return str(row[0]), int(row[1])


def claim_run(conn: Connection, run_id: str, owner: str, now: datetime,
              until: datetime) -> tuple[str, int] | None:
    """Lease run `run_id` to `owner` until `until` if it is due and no live lease holds
    it (a serverless host told to execute that run): its id and no slots held (the
    host named the run: its queue's limits are not consulted); None otherwise."""
    claimed = conn.execute(
        run_queue.update()
        .where(_q.run_id == run_id, _q.due_at <= now,
               sa.or_(_q.lease_expires_at.is_(None), _q.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=until)
        .returning(_q.run_id)).first()
    return None if claimed is None else (run_id, 0)


def park(target: Transaction | Connection, run_id: str, due_at: datetime | None,
         held: bool = False) -> None:
    """Release the lease; the run is due again at `due_at` (NULL: when woken). `held`:
    the lease may hold slots, given back first."""
    if held:
        _end_held(target, run_id, due_at)
    else:
        _write(target, _PARK, {"rid": run_id, "due": due_at})


def wake(tx: Transaction, run_id: str, now: datetime) -> None:
    """Make the run due now (a signal, token or child result arrived)."""
    _write(tx, _WAKE, {"rid": run_id, "due": now})


def remove(tx: Transaction, run_id: str, held: bool = False) -> None:
    """The run is terminal: it leaves the queue (`held`: its slots are given back)."""
    if held:
        _end_held(tx, run_id)
    else:
        _write(tx, _DELETE, {"rid": run_id})


_ENDINGS: dict[bool, sa.Update] = {}


def _end_held(target: Transaction | Connection, run_id: str,
              due_at: datetime | Literal[False] | None = False) -> None:
    """End a lease that may hold slots: park the run (due at `due_at`) or, when
    `due_at` is False, delete its row; its slots given back. On PostgreSQL ONE
    statement (`limits.ending_statement`), else the row locked and written step by
    step."""
    conn = target.conn if isinstance(target, Transaction) else target
    backend = backend_for(conn)
    park = due_at is not False
    if not backend.writes_in_one:
        limits.release(conn, backend, run_queue, run_id)
        if park:
            backend.execute(conn, _PARK, [{"rid": run_id, "due": due_at}])
        else:
            backend.execute(conn, _DELETE, [{"rid": run_id}])
        return
    statement = _ENDINGS.get(park)
    if statement is None:
        statement = _ENDINGS[park] = limits.ending_statement(run_queue, park)
    backend.execute(conn, statement,
                    [{"rid": run_id, "due": due_at} if park else {"rid": run_id}])


def _write(target: Transaction | Connection, statement: sa.Insert | sa.Update | sa.Delete,
           params: dict[str, object]) -> None:
    """Deferred on a transaction: sent with its other deferred writes (outbox rows,
    projections), on PostgreSQL in one statement; at once on a bare connection."""
    if isinstance(target, Transaction):
        target.defer(statement, [params])
    else:
        backend_for(target).execute(target, statement, [params])


def heartbeat(conn: Connection, owner: str, until: datetime) -> int:
    """Extend every lease `owner` holds; returns how many."""
    return int(conn.execute(_HEARTBEAT, {"owner": owner, "until": until}).rowcount)


def reap(conn: Connection, now: datetime) -> int:
    """Clear expired leases (their runs are claimable again, their slots given back);
    returns how many."""
    _give_back_held(conn, _q.lease_expires_at < now, skip=True)
    return int(conn.execute(_REAP, {"now": now}).rowcount)


def release_owner(conn: Connection, owner: str, now: datetime,
                  runs: Collection[str] | None = None) -> int:
    """Give back every run `owner` still holds (or those of `runs`), due now."""
    which = _q.lease_owner == owner
    if runs is not None:
        which = sa.and_(which, _q.run_id.in_(sorted(runs)))
    _give_back_held(conn, which)
    stmt = run_queue.update().where(which).values(
        lease_owner=None, lease_expires_at=None, due_at=now)
    return int(conn.execute(stmt).rowcount)


def _give_back_held(conn: Connection, which: sa.ColumnElement[bool], skip: bool = False) -> None:
    """Give back the slots of the rows `which` selects that hold any (locked first;
    `skip`: rows another transaction holds are left for the next time)."""
    backend = backend_for(conn)
    query = sa.select(_q.run_id, _q.queue, _q.concurrency_key, _q.holds).where(
        which, _q.holds > 0)
    rows = conn.execute(backend.skip_locked(query) if skip else backend.lock_rows(query)).all()
    if rows:
        limits.give_back(conn, [Held(r.queue, r.concurrency_key, int(r.holds)) for r in rows])
        conn.execute(run_queue.update().where(_q.run_id.in_([r.run_id for r in rows]))
                     .values(holds=0))


def queue_row(conn: Connection, run_id: str) -> dict[str, object] | None:
    """The queue row of a run (tests and diagnostics)."""
    row = conn.execute(sa.select(run_queue).where(_q.run_id == run_id)).mappings().first()
    return None if row is None else dict(row)

