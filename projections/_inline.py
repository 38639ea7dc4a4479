"""Inline projection: the append transaction writes the read models too."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from ledgerflow.eventstore import fastpath
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

    def __call__(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        fastpath.execute_all(conn, self.batches(conn, recorded))

    def batches(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> list[fastpath.Batch]:
        """The statements for `recorded`; the store sends them with other hooks' (one
        statement per append on PostgreSQL, usually). A projection without `batches`
        is applied here and now."""
        pending: list[fastpath.Batch] = []
        for projection, tables in self._targets:
            batches = getattr(projection, "batches", None)
            if batches is None:
                fastpath.execute_all(conn, pending)
                pending = []
                projection.apply(conn, recorded, tables)
            else:
                pending.extend(batches(conn, recorded, tables))
        return pending

    def staged(self, conn: Connection,
               recorded: Sequence[RecordedEvent]) -> list[fastpath.Batch] | None:
        """`batches` for events whose positions are not known yet (see
        `fastpath.Position`); None if a projection does not offer `staged_batches`."""
        found: list[fastpath.Batch] = []
        for projection, tables in self._targets:
            staged = getattr(projection, "staged_batches", None)
            if staged is None:
                return None
            found.extend(staged(conn, recorded, tables))
        return found
