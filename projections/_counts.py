"""Runs per status, read in O(1) whatever the history (`/metrics`, `doctor`, the UI).

- Finished runs (completed, failed, canceled): the `run_status_counts` table. A
  run's terminal event is its last lifecycle event, and it comes exactly once, so
  the run views projection adds 1 to the (status, shard) row of the run, in the
  same transaction as the run view change (`count_batches`); a rebuild replays
  them into a fresh table like every other run views table. Without reading the
  run's previous status: nothing leaves a terminal status.
- Runs not finished (pending, running, suspended, compensating): counted from
  `run_views` on its `(status, created_at, run_id)` index, an index-only range of
  the live runs, which is bounded by the work in hand, not by history.

Why shards: one row per status would be a hot row, every finishing run of every
worker updating it (each transaction holding its lock until commit). The run's
shard is a hash of its id (`SHARDS` rows per status), so concurrent finishes
rarely meet; a batch's rows are summed per (status, shard) and written in key
order, so two transactions never take two rows in opposite orders.

Interface: `count_batches(backend, table, patches)`, `run_counts(conn)`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from ledgerflow.domain.lifecycle import TERMINAL, RunStatus
from ledgerflow.eventstore.backend import Backend, Batch
from ledgerflow.projections._schema import run_status_counts, run_views

SHARDS = 16
FINISHED = frozenset(s.value for s in TERMINAL)
LIVE = tuple(s.value for s in RunStatus if s.value not in FINISHED)

_STATEMENTS: dict[tuple[Backend, str], sa.Insert] = {}


def shard_of(run_id: str) -> int:
    """The run's shard: a stable hash of its id (the same in every process)."""
    return zlib.crc32(run_id.encode()) % SHARDS


def count_batches(backend: Backend, table: Table, finished: Iterable[tuple[str, str]],
                  step: int = 1) -> list[Batch]:
    """The upserts adding `finished` ((run id, terminal status) pairs) to `table`
    (`step=-1`: taking them out, for runs removed from the store by archiving)."""
    added: dict[tuple[str, int], int] = {}
    for run_id, status in finished:
        key = (status, shard_of(run_id))
        added[key] = added.get(key, 0) + step
    if not added:
        return []
    statement = _STATEMENTS.get((backend, table.name))
    if statement is None:
        statement = _STATEMENTS[(backend, table.name)] = backend.upsert(
            table, [table.c.status, table.c.shard], ["runs"], add=True)
    rows = [{"status": s, "shard": shard, "runs": n} for (s, shard), n in sorted(added.items())]
    return [(statement, rows)]


def run_counts(conn: Connection) -> dict[str, int]:
    """Runs per status (every status present, 0 when none)."""
    counts = {s.value: 0 for s in RunStatus}
    c = run_status_counts.c
    for status, runs in conn.execute(
            sa.select(c.status, sa.func.sum(c.runs)).group_by(c.status)):
        counts[str(status)] = int(runs)
    v = run_views.c
    for status, runs in conn.execute(sa.select(v.status, sa.func.count())
                                     .where(v.status.in_(LIVE)).group_by(v.status)):
        counts[str(status)] = int(runs)
    return counts
