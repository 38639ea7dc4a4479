"""The catch-up projector: advance one projection from its checkpoint.

Each step reads a batch with `store.read_all` OUTSIDE any write transaction (the
gap-safe reader waits for in-flight writers, so it must not be one), then, in
ONE transaction: locks the checkpoint row, checks it still is where the batch
was read from, applies the batch and moves the checkpoint. The rows and the
checkpoint commit together, so a crash anywhere never applies an event twice
nor skips one; a projector that finds the row locked (PostgreSQL, SKIP LOCKED)
or moved (SQLite, after waiting for the write lock) applies nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from ledgerflow.eventstore.store import Clock, EventStore, utcnow
from ledgerflow.projections import _checkpoints
from ledgerflow.projections._base import Projection, live_tables

FaultHook = Callable[[str], None]
"""Called at named points (`"projector.applied"`, `"rebuild.batch_applied"`,
`"rebuild.before_swap"`); tests inject a crash by raising from it."""


def no_faults(point: str) -> None:
    """The production fault hook: does nothing."""


class Projector:
    """Keeps a catch-up (not inline) projection's live tables current."""

    def __init__(self, store: EventStore, projection: Projection, *, batch_size: int = 1000,
                 clock: Clock = utcnow, faults: FaultHook = no_faults) -> None:
        if projection.inline:
            raise ValueError(
                f"projection {projection.name!r} is maintained inline by InlineProjections; "
                "a catch-up projector on the same tables would apply every event twice")
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.clock = clock
        self.faults = faults
        self._tables = live_tables(projection)
        self._ensured = False

    def position(self) -> int:
        """The checkpoint: every event up to it is in the live tables."""
        name = self.projection.name
        if not self._ensured:
            with self.store.engine.begin() as conn:
                _checkpoints.ensure(conn, [self.projection], self.clock())
            self._ensured = True
        with self.store.engine.connect().execution_options(readonly=True) as conn:
            return _checkpoints.load(conn, [name])[name].position

    def run_once(self) -> int:
        """Apply one batch; returns how many events it applied (0: caught up or not ours)."""
        start = self.position()
        batch = self.store.read_all(start, self.batch_size)
        if not batch:
            return 0
        name = self.projection.name
        with self.store.engine.begin() as conn:
            if _checkpoints.lock_position(conn, name) != start:
                return 0
            self.projection.apply(conn, batch, self._tables)
            self.faults("projector.applied")
            _checkpoints.advance(conn, name, batch[-1].position, self.clock())
        return len(batch)

    def run_until_caught_up(self) -> int:
        """Apply batches until the store has nothing more; returns the events applied."""
        total = 0
        while (applied := self.run_once()) > 0:
            total += applied
        return total
