"""Inline projection: the append transaction writes the read models too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.engine import Connection

from ledgerflow.eventstore.backend import Batch
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.projections._base import Projection, Tables, live_tables
from ledgerflow.projections._journal import StepJournal
from ledgerflow.projections._runs import RunViews


def default_projections() -> list[Projection]:
    """ledgerflow's read models: run views and the step journal (both inline)."""
    return [RunViews(), StepJournal()]


class InlineProjections:
    """An `AppendHook`: applies each append's events to the live read-model tables.

    Runs inside the append transaction, so a reader sees its own writes and an
    append and its projection commit or roll back together. Projections whose
    `inline` is False are left to a catch-up `Projector`.
    """

    def __init__(self, projections: Sequence[Projection] | None = None) -> None:
        chosen = default_projections() if projections is None else list(projections)
        self._targets: list[tuple[Projection, Tables]] = [
            (p, live_tables(p)) for p in chosen if p.inline]

    def write(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        """Apply `recorded` now: every projection's batches together, or, when one
        cannot give its batches, each projection by its `apply`."""
        batches = self.batches(conn, recorded)
        if batches is not None:
            backend_for(conn).execute_all(conn, batches)
            return
        for projection, tables in self._targets:
            projection.apply(conn, recorded, tables)

    def batches(self, conn: Connection,
                recorded: Sequence[RecordedEvent]) -> list[Batch] | None:
        """The statements for `recorded`; the store sends them with other hooks' (one
        statement per append on PostgreSQL, usually). None when a projection cannot
        give its batches (the store then calls `write`)."""
        return _joined(p.batches(conn, recorded, tables) for p, tables in self._targets)

    def staged(self, conn: Connection,
               recorded: Sequence[RecordedEvent]) -> list[Batch] | None:
        """`batches` for events whose positions are not known yet (see
        `backend.Position`); None when a projection cannot stage its batches."""
        return _joined(p.staged_batches(conn, recorded, tables)
                       for p, tables in self._targets)


def _joined(parts: Iterable[list[Batch] | None]) -> list[Batch] | None:
    """The parts one after another; None as soon as one is None."""
    joined: list[Batch] = []
    for part in parts:
        if part is None:
            return None
        joined.extend(part)
    return joined
