"""The run queue: which runs are due, who holds them, until when.

One row per non-terminal run, written in the same transaction as the run's events
(through `Transaction.conn`), so the queue never disagrees with the streams:

- `due_at`: when a worker may take the run (NULL: parked until a command wakes it;
  timers, wait timeouts and retry back-off are simply future due times);
- `lease_owner` / `lease_expires_at`: the worker holding it; a lease that is not
  renewed by heartbeats expires and any worker may claim the run again;
- `priority`: higher first, then the oldest due time.

Claiming: on PostgreSQL one `UPDATE ... WHERE run_id = (SELECT ... FOR UPDATE SKIP
LOCKED) RETURNING`, so concurrent workers never wait on each other's rows; on
SQLite the write transaction already holds the database lock (BEGIN IMMEDIATE), so
the same UPDATE without the locking clause is enough.

`run_keys` maps a trigger's idempotency key to the run it created (forever: the
key names the run, as a given run id would).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Index, Integer, String, Table
from sqlalchemy.engine import Connection

from eventstore.database import is_postgres
from eventstore.migrations import Migration, create_tables
from eventstore.schema import UTCDateTime, metadata

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

run_keys = Table(
    "run_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("run_id", String(200), nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

MIGRATIONS: list[Migration] = [
    Migration("engine", 1, "run queue and trigger idempotency keys",
              create_tables("run_queue", "run_keys")),
]
"""The engine's migrations (component "engine")."""

_q = run_queue.c
_INSERT = run_queue.insert()
_DELETE = run_queue.delete().where(_q.run_id == sa.bindparam("rid"))
_PARK = run_queue.update().where(_q.run_id == sa.bindparam("rid")).values(
    due_at=sa.bindparam("due"), lease_owner=None, lease_expires_at=None)
_WAKE = run_queue.update().where(_q.run_id == sa.bindparam("rid")).values(
    due_at=sa.bindparam("due"))
_HEARTBEAT = run_queue.update().where(_q.lease_owner == sa.bindparam("owner")).values(
    lease_expires_at=sa.bindparam("until"))
_REAP = run_queue.update().where(_q.lease_expires_at < sa.bindparam("now")).values(
    lease_owner=None, lease_expires_at=None)


def _claim_statement(postgres: bool) -> sa.Update:
    pick = (
        sa.select(_q.run_id)
        .where(_q.due_at <= sa.bindparam("now"),
               sa.or_(_q.lease_expires_at.is_(None), _q.lease_expires_at < sa.bindparam("now")))
        .order_by(_q.priority.desc(), _q.due_at)
        .limit(1)
    )
    if postgres:
        pick = pick.with_for_update(skip_locked=True)
    return (
        run_queue.update()
        .where(_q.run_id == pick.scalar_subquery())
        .values(lease_owner=sa.bindparam("owner"), lease_expires_at=sa.bindparam("until"))
        .returning(_q.run_id)
    )


_CLAIM = {True: _claim_statement(True), False: _claim_statement(False)}

# PostgreSQL: the hot statements as plain SQL on the connection's psycopg cursor (same
# transaction), server-side prepared. SQLAlchemy's execution layer cost more client CPU
# than the statement itself (measured ~83 us per Core execute vs ~34 us raw). SQLite
# keeps the Core statements above (its paramstyle and datetime handling differ).
_PG_ENQUEUE = (
    "INSERT INTO run_queue (run_id, workflow_id, priority, due_at, lease_owner,"
    " lease_expires_at, created_at) VALUES (%(run_id)s, %(workflow_id)s, %(priority)s,"
    " %(due_at)s, %(lease_owner)s, %(lease_expires_at)s, %(created_at)s)")
_PG_DELETE = "DELETE FROM run_queue WHERE run_id = %(rid)s"
_PG_PARK = ("UPDATE run_queue SET due_at = %(due)s, lease_owner = NULL,"
            " lease_expires_at = NULL WHERE run_id = %(rid)s")
_PG_WAKE = "UPDATE run_queue SET due_at = %(due)s WHERE run_id = %(rid)s"
_PG_CLAIM = (
    "UPDATE run_queue SET lease_owner = %(owner)s, lease_expires_at = %(until)s"
    " WHERE run_id = (SELECT run_id FROM run_queue WHERE due_at <= %(now)s"
    " AND (lease_expires_at IS NULL OR lease_expires_at < %(now)s)"
    " ORDER BY priority DESC, due_at LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING run_id")


def _pg(conn: Connection, sql: str, params: dict[str, object]) -> Any:
    """Run `sql` on the raw psycopg cursor of `conn` (in its transaction); the cursor."""
    raw: Any = conn.connection.dbapi_connection
    cursor = raw.cursor()
    cursor.execute(sql, params, prepare=True)
    return cursor


def enqueue(conn: Connection, run_id: str, workflow_id: str, priority: int,
            due_at: datetime | None, now: datetime, owner: str | None = None,
            until: datetime | None = None) -> None:
    """Add a new run's row (due at `due_at`; leased to `owner` until `until` if given)."""
    params = {"run_id": run_id, "workflow_id": workflow_id, "priority": priority,
              "due_at": due_at, "lease_owner": owner, "lease_expires_at": until,
              "created_at": now}
    if is_postgres(conn):
        _pg(conn, _PG_ENQUEUE, params).close()
    else:
        conn.execute(_INSERT, params)


def claim(conn: Connection, owner: str, now: datetime, until: datetime) -> str | None:
    """Lease the most urgent due run to `owner` until `until`; None if nothing is due."""
    params = {"now": now, "owner": owner, "until": until}
    if is_postgres(conn):
        with _pg(conn, _PG_CLAIM, params) as cursor:
            row = cursor.fetchone()
    else:
        row = conn.execute(_CLAIM[False], params).first()
    return None if row is None else str(row[0])


def park(conn: Connection, run_id: str, due_at: datetime | None) -> None:
    """Release the lease; the run is due again at `due_at` (NULL: when woken)."""
    _by_run(conn, _PG_PARK, _PARK, {"rid": run_id, "due": due_at})


def wake(conn: Connection, run_id: str, now: datetime) -> None:
    """Make the run due now (a signal, token or child result arrived)."""
    _by_run(conn, _PG_WAKE, _WAKE, {"rid": run_id, "due": now})


def remove(conn: Connection, run_id: str) -> None:
    """The run is terminal: it leaves the queue."""
    _by_run(conn, _PG_DELETE, _DELETE, {"rid": run_id})


def _by_run(conn: Connection, pg_sql: str, core: sa.Update | sa.Delete,
            params: dict[str, object]) -> None:
    if is_postgres(conn):
        _pg(conn, pg_sql, params).close()
    else:
        conn.execute(core, params)


def heartbeat(conn: Connection, owner: str, until: datetime) -> int:
    """Extend every lease `owner` holds; returns how many."""
    return int(conn.execute(_HEARTBEAT, {"owner": owner, "until": until}).rowcount)


def reap(conn: Connection, now: datetime) -> int:
    """Clear expired leases (their runs are claimable again); returns how many."""
    return int(conn.execute(_REAP, {"now": now}).rowcount)


def release_owner(conn: Connection, owner: str, now: datetime) -> int:
    """Give back every run `owner` still holds, due now (graceful shutdown)."""
    stmt = run_queue.update().where(_q.lease_owner == owner).values(
        lease_owner=None, lease_expires_at=None, due_at=now)
    return int(conn.execute(stmt).rowcount)


def queue_row(conn: Connection, run_id: str) -> dict[str, object] | None:
    """The queue row of a run (tests and diagnostics)."""
    row = conn.execute(sa.select(run_queue).where(_q.run_id == run_id)).mappings().first()
    return None if row is None else dict(row)


def lookup_key(conn: Connection, key: str) -> tuple[str, str] | None:
    """(run id, fingerprint) remembered for an idempotency key."""
    row = conn.execute(sa.select(run_keys.c.run_id, run_keys.c.fingerprint)
                       .where(run_keys.c.key == key)).first()
    return None if row is None else (str(row[0]), str(row[1]))


def remember_key(conn: Connection, key: str, run_id: str, fingerprint: str,
                 now: datetime) -> None:
    """Bind `key` to `run_id` (an IntegrityError if another trigger bound it first)."""
    conn.execute(run_keys.insert(), {"key": key, "run_id": run_id, "fingerprint": fingerprint,
                                     "created_at": now})
