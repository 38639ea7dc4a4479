"""Rebuild: replay the whole store into fresh tables, then swap them in.

1. Take the rebuild lease of every projection rebuilt (one rebuild at a time).
2. Create shadow tables `<table>__next` (primary key only: bulk writes are
   cheaper without secondary indexes) and replay every event from position 0
   into them, in batches read with the gap-safe `read_all`, one transaction per
   batch. Nothing is held in memory beyond one batch.
3. Create the secondary indexes (PostgreSQL; SQLite creates them at the swap,
   since it cannot rename an index: the backend's `index_shadow`) and replay what
   arrived meanwhile.
4. Swap, in ONE store transaction: lock the live tables against writers (the
   backend's `lock_exclusive`; PostgreSQL: `LOCK TABLE ... IN EXCLUSIVE MODE`, in
   the order inline writers take them; SQLite: the write transaction's database
   lock), apply the tail (`Transaction.read_all`), drop the live tables, rename
   the shadows to the canonical names (indexes and primary key too: the backend's
   `replace_table`), and record the new version, position and generation.

Why the tail is exact: once the lock is held, every transaction that wrote the
live tables has committed, so its events are visible to a plain ordered read
in the swap transaction; a transaction still in flight has not written
them yet and, after the swap commits, its inline hook writes into the new
tables (PostgreSQL resolves the name again after waiting for the lock). Inline
writers keep serving from the old tables until that moment: zero downtime.

A crashed rebuild leaves its shadows behind; the next rebuild drops them and
starts from position 0 (its lease expires after `lease`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from ledgerflow.domain.errors import LedgerflowError
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.eventstore.store import Clock, EventStore, Transaction, utcnow
from ledgerflow.projections import _checkpoints
from ledgerflow.projections._base import Projection, Tables
from ledgerflow.projections.projector import FaultHook, no_faults

SUFFIX = "__next"
Progress = Callable[[int, int], None]
"""Called after each batch with (events done, events total)."""

_SHADOW_METADATA = sa.MetaData()


class RebuildInProgress(LedgerflowError):
    """Another process holds the rebuild lease of a projection."""

    code = "rebuild_in_progress"
    http_status = 409


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild did."""

    projections: tuple[str, ...]
    events: int
    position: int
    seconds: float


def shadow(table: Table) -> Table:
    """The shadow of `table`: same columns and primary key, no secondary index."""
    name = table.name + SUFFIX
    existing = _SHADOW_METADATA.tables.get(name)
    if existing is not None:
        return existing
    copy = table.to_metadata(_SHADOW_METADATA, name=name)
    copy.indexes.clear()
    return copy


def rebuild(store: EventStore, projections: Sequence[Projection], *, batch_size: int = 5000,
            progress: Progress | None = None, faults: FaultHook = no_faults,
            clock: Clock = utcnow, lease: timedelta = timedelta(minutes=2)) -> RebuildReport:
    """Replay the store into fresh tables for `projections` and swap them in."""
    started = time.monotonic()
    names = [p.name for p in projections]
    owner = uuid.uuid4().hex
    with store.engine.begin() as conn:
        _checkpoints.ensure(conn, projections, clock())
        if not _checkpoints.claim_rebuild(conn, names, owner, clock(), lease):
            conn.rollback()
            raise RebuildInProgress(f"another process is rebuilding one of {names}")
    try:
        run = _Run(store, projections, batch_size, progress, faults, clock, owner, lease)
        position = run.execute()
    except BaseException:
        with store.engine.begin() as conn:
            _checkpoints.release_rebuild(conn, names, owner)
        raise
    return RebuildReport(tuple(names), run.done, position, time.monotonic() - started)


def rebuild_stale(store: EventStore, projections: Sequence[Projection], *,
                  progress: Progress | None = None,
                  clock: Clock = utcnow) -> RebuildReport | None:
    """Rebuild the projections whose live tables were built by another code version."""
    with store.engine.begin() as conn:
        _checkpoints.ensure(conn, projections, clock())
        found = _checkpoints.load(conn, [p.name for p in projections])
    stale = [p for p in projections if found[p.name].version != p.version]
    if not stale:
        return None
    return rebuild(store, stale, progress=progress, clock=clock)


class _Run:
    """One rebuild's state: the shadow tables and how far the replay got."""

    def __init__(self, store: EventStore, projections: Sequence[Projection], batch_size: int,
                 progress: Progress | None, faults: FaultHook, clock: Clock, owner: str,
                 lease: timedelta) -> None:
        self.store, self.projections, self.batch_size = store, projections, batch_size
        self.progress, self.faults, self.clock = progress, faults, clock
        self.owner, self.lease = owner, lease
        self.names = [p.name for p in projections]
        self.shadows: list[Tables] = [{t.name: shadow(t) for t in p.tables}
                                      for p in projections]
        self.done = 0
        self.total = 0

    def execute(self) -> int:
        store = self.store
        with store.engine.begin() as conn:
            self._create_shadows(conn)
        self.total = store.count_events()
        position = self._catch_up(0)
        with store.engine.begin() as conn:
            for live, copy in self._pairs():
                store.backend.index_shadow(conn, live, copy, SUFFIX)
        position = self._catch_up(position)
        with store.transaction() as tx:
            position = self._swap(tx, position)
        return position

    def _pairs(self) -> list[tuple[Table, Table]]:
        return [(live, tables[live.name]) for p, tables in zip(
            self.projections, self.shadows, strict=True) for live in p.tables]

    def _create_shadows(self, conn: Connection) -> None:
        for _live, copy in self._pairs():
            copy.drop(conn, checkfirst=True)
            copy.create(conn)

    def _apply(self, conn: Connection, batch: Sequence[RecordedEvent]) -> None:
        for projection, tables in zip(self.projections, self.shadows, strict=True):
            projection.apply(conn, batch, tables)
        self.done += len(batch)
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))

    def _catch_up(self, position: int) -> int:
        """Replay up to the store's end as of now (writers may outrun us; the swap
        applies whatever arrives after, under its lock)."""
        end = self.store.max_position()
        while position < end:
            batch = self.store.read_all(position, self.batch_size)
            if not batch:
                return position
            with self.store.engine.begin() as conn:
                self._apply(conn, batch)
                self.faults("rebuild.batch_applied")
                if not _checkpoints.claim_rebuild(conn, self.names, self.owner, self.clock(),
                                                  self.lease):
                    raise RebuildInProgress(f"lost the rebuild lease of {self.names}")
            position = batch[-1].position
        return position

    def _swap(self, tx: Transaction, position: int) -> int:
        """Lock, apply the tail, swap the tables in (see the module doc)."""
        conn, backend = tx.conn, self.store.backend
        backend.lock_exclusive(conn, [t for p in self.projections for t in p.tables])
        while batch := tx.read_all(position, self.batch_size):  # committed, under the lock
            self._apply(conn, batch)
            position = batch[-1].position
        self.faults("rebuild.before_swap")
        for live, copy in self._pairs():
            backend.replace_table(conn, live, copy, SUFFIX)
        now = self.clock()
        for projection in self.projections:
            _checkpoints.swapped(conn, projection, position, now)
        return position
