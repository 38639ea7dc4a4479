"""Each projection's state: version built vs code version, checkpoint, lag."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledgerflow.eventstore.store import Clock, EventStore, utcnow
from ledgerflow.projections import _checkpoints
from ledgerflow.projections._base import Projection


@dataclass(frozen=True)
class ProjectionStatus:
    """What `ledgerflow projections status` shows for one projection."""

    name: str
    mode: str  # inline | catch-up
    code_version: int
    built_version: int
    checkpoint: int
    table_generation: int
    lag: int
    rebuilding: bool

    @property
    def stale(self) -> bool:
        """The live tables were built by another code version: a rebuild is due."""
        return self.built_version != self.code_version

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "codeVersion": self.code_version,
                "builtVersion": self.built_version, "checkpoint": self.checkpoint,
                "tableGeneration": self.table_generation, "lag": self.lag,
                "stale": self.stale, "rebuilding": self.rebuilding}


def status(store: EventStore, projections: Sequence[Projection], *,
           clock: Clock = utcnow) -> list[ProjectionStatus]:
    """The status of each projection. Lag: events after the checkpoint (inline: 0)."""
    now = clock()
    with store.engine.begin() as conn:
        _checkpoints.ensure(conn, projections, now)
        found = _checkpoints.load(conn, [p.name for p in projections])
    result = []
    for p in projections:
        row = found[p.name]
        lag = 0 if p.inline else store.count_events(row.position)
        rebuilding = row.rebuild_owner is not None and (
            row.rebuild_until is None or row.rebuild_until > now)
        result.append(ProjectionStatus(
            p.name, "inline" if p.inline else "catch-up", p.version, row.version,
            row.position, row.table_generation, lag, rebuilding))
    return result
