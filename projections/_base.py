"""What a projection is: a name, a version, the tables it owns, and `apply`.

`apply(conn, events, tables)` writes the effect of `events` (in position order)
into `tables`, which maps each canonical table name to the physical table to
write: the live table for inline and catch-up projection, the shadow table
during a rebuild. It must give the same rows whether the events come one append
at a time or in batches of thousands (rebuild equality depends on it), and must
ignore event types it does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from ledgerflow.eventstore.backend import Batch
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.records import RecordedEvent

Tables = Mapping[str, Table]
"""Canonical table name -> the physical table to write."""


class Projection(Protocol):
    """A read model kept current from the event store."""

    @property
    def name(self) -> str:
        """Unique name (the CLI's NAME, the checkpoint row's key)."""
        ...

    @property
    def version(self) -> int:
        """Bump it when `apply` changes: the live tables are then rebuilt."""
        ...

    @property
    def inline(self) -> bool:
        """True when `InlineProjections` keeps its live tables current (else a `Projector`)."""
        ...

    @property
    def tables(self) -> tuple[Table, ...]:
        """The canonical tables this projection owns, in lock order."""
        ...

    def apply(self, conn: Connection, events: Sequence[RecordedEvent], tables: Tables) -> None:
        """Write the effect of `events` into `tables` inside the caller's transaction."""
        ...

    def batches(self, conn: Connection, events: Sequence[RecordedEvent],
                tables: Tables) -> list[Batch] | None:
        """What `apply` would write, as (statement, rows) pairs, without sending them
        (an inline hook sends several projections' together); None when this
        projection cannot say beforehand (it reads as it writes): `apply` is used."""
        ...

    def staged_batches(self, conn: Connection, events: Sequence[RecordedEvent],
                       tables: Tables) -> list[Batch] | None:
        """`batches` for events whose positions are not known yet (position 0), with a
        `Position` wherever a value depends on one; None when it cannot."""
        ...


class StatementCache:
    """Statements built once per (dialect, physical table, shape) and reused.

    Reusing the same statement object lets SQLAlchemy's compiled cache hit, so
    the hot inline path pays no statement construction per append.
    """

    def __init__(self) -> None:
        self._cache: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = build()
        return found


def live_tables(projection: Projection) -> dict[str, Table]:
    """The mapping that points a projection at its live (canonical) tables."""
    return {table.name: table for table in projection.tables}


class BatchProjection:
    """A projection that writes through (statement, rows) batches: `batches` says what
    to write for some events, `apply` writes it (inline hooks send the batches of
    several projections together instead). A subclass whose rows hold no positions,
    or that marks them with `Position`, also overrides `staged_batches`."""

    name: str
    version: int
    tables: tuple[Table, ...]

    def __init__(self, *, inline: bool = True) -> None:
        self.inline = inline
        self._statements = StatementCache()

    def apply(self, conn: Connection, events: Sequence[RecordedEvent], tables: Tables) -> None:
        backend = backend_for(conn)
        for statement, rows in self.batches(conn, events, tables):
            backend.execute(conn, statement, rows)

    def batches(self, conn: Connection, events: Sequence[RecordedEvent],
                tables: Tables) -> list[Batch]:
        """What `apply` executes, in order: (statement, rows) pairs."""
        raise NotImplementedError

    def staged_batches(self, conn: Connection, events: Sequence[RecordedEvent],
                       tables: Tables) -> list[Batch] | None:
        """None: the rows need the events' positions (see `Projection.staged_batches`)."""
        return None
