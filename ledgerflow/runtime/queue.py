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
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Column, Index, Integer, String, Table
from sqlalchemy.engine import Connection

from ledgerflow.eventstore.backend import Backend
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.migrations import POSTGRESQL, SQLITE, Migration
from ledgerflow.eventstore.schema import UTCDateTime, metadata
from ledgerflow.eventstore.store import Transaction
from ledgerflow.runtime import _ddl

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
    Index("run_queue_due", "due_at"),
)

MIGRATIONS: list[Migration] = [
    Migration("engine", 1, "run queue and trigger idempotency keys",
              {POSTGRESQL: _ddl.V1_POSTGRESQL, SQLITE: _ddl.V1_SQLITE}),
    Migration("engine", 2, "trigger idempotency keys move to idempotency_keys; drop run_keys",
              {POSTGRESQL: _ddl.V2_POSTGRESQL, SQLITE: _ddl.V2_SQLITE}),
]
"""The engine's migrations (component "engine")."""

_q = run_queue.c
_INSERT = run_queue.insert()
_DELETE = run_queue.delete().where(_q.run_id == sa.bindparam("rid"))
_PARK = run_queue.update().where(_q.run_id == sa.bindparam("rid")).values(
    due_at=sa.bindparam("due"), lease_owner=sa.null(), lease_expires_at=sa.null())
_WAKE = run_queue.update().where(_q.run_id == sa.bindparam("rid")).values(
    due_at=sa.bindparam("due"))
_HEARTBEAT = run_queue.update().where(_q.lease_owner == sa.bindparam("owner")).values(
    lease_expires_at=sa.bindparam("until"))
_REAP = run_queue.update().where(_q.lease_expires_at < sa.bindparam("now")).values(
    lease_owner=None, lease_expires_at=None)


_CLAIMS: dict[Backend, sa.Update] = {}


def _claim_statement(backend: Backend) -> sa.Update:
    """The claim, built once per backend (then compiled once: `Backend.fetch_first`).
    The other writes are deferred on the transaction (see `_write`)."""
    found = _CLAIMS.get(backend)
    if found is None:
        found = _CLAIMS[backend] = _build_claim(backend)
    return found


def _build_claim(backend: Backend) -> sa.Update:
    pick = backend.skip_locked(
        sa.select(_q.run_id)
        .where(_q.due_at <= sa.bindparam("now"),
               sa.or_(_q.lease_expires_at.is_(None), _q.lease_expires_at < sa.bindparam("now")))
        .order_by(_q.priority.desc(), _q.due_at)
        .limit(sa.literal_column("1"))  # no bind: the compiled SQL takes only ours
    )
    return (
        run_queue.update()
        .where(_q.run_id == pick.scalar_subquery())
        .values(lease_owner=sa.bindparam("owner"), lease_expires_at=sa.bindparam("until"))
        .returning(_q.run_id)
    )


def enqueue(tx: Transaction, run_id: str, workflow_id: str, priority: int,
            due_at: datetime | None, now: datetime, owner: str | None = None,
            until: datetime | None = None) -> None:
    """Add a new run's row (due at `due_at`; leased to `owner` until `until` if given)."""
    tx.defer(_INSERT, [{"run_id": run_id, "workflow_id": workflow_id, "priority": priority,
                        "due_at": due_at, "lease_owner": owner, "lease_expires_at": until,
                        "created_at": now}])


def claim(conn: Connection, owner: str, now: datetime, until: datetime) -> str | None:
    """Lease the most urgent due run to `owner` until `until`; None if nothing is due."""
    backend = backend_for(conn)
    row = backend.fetch_first(conn, _claim_statement(backend),
                              {"now": now, "owner": owner, "until": until})
    return None if row is None else str(row[0])


def claim_run(conn: Connection, run_id: str, owner: str, now: datetime,
              until: datetime) -> bool:
    """Lease run `run_id` to `owner` until `until` if it is due and no live lease holds
    it (a serverless host told to execute that run); False otherwise."""
    claimed = conn.execute(
        run_queue.update()
        .where(_q.run_id == run_id, _q.due_at <= now,
               sa.or_(_q.lease_expires_at.is_(None), _q.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=until)
        .returning(_q.run_id)).first()
    return claimed is not None


def park(target: Transaction | Connection, run_id: str, due_at: datetime | None) -> None:
    """Release the lease; the run is due again at `due_at` (NULL: when woken)."""
    _write(target, _PARK, {"rid": run_id, "due": due_at})


def wake(tx: Transaction, run_id: str, now: datetime) -> None:
    """Make the run due now (a signal, token or child result arrived)."""
    _write(tx, _WAKE, {"rid": run_id, "due": now})


def remove(tx: Transaction, run_id: str) -> None:
    """The run is terminal: it leaves the queue."""
    _write(tx, _DELETE, {"rid": run_id})


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
    """Clear expired leases (their runs are claimable again); returns how many."""
    return int(conn.execute(_REAP, {"now": now}).rowcount)


def release_owner(conn: Connection, owner: str, now: datetime,
                  runs: Collection[str] | None = None) -> int:
    """Give back every run `owner` still holds (or those of `runs`), due now."""
    stmt = run_queue.update().where(_q.lease_owner == owner).values(
        lease_owner=None, lease_expires_at=None, due_at=now)
    if runs is not None:
        stmt = stmt.where(_q.run_id.in_(sorted(runs)))
    return int(conn.execute(stmt).rowcount)


def queue_row(conn: Connection, run_id: str) -> dict[str, object] | None:
    """The queue row of a run (tests and diagnostics)."""
    row = conn.execute(sa.select(run_queue).where(_q.run_id == run_id)).mappings().first()
    return None if row is None else dict(row)

