"""Each projection's state: version built vs code version, checkpoint, lag.

Reading it writes nothing: a projection without a checkpoint row (nothing has caught
it up, rebuilt it or recorded it as current yet) is "not started"."""

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
    started: bool = True
    """False while the projection has no checkpoint row; its figures are then those of
    the row that would be made (current: the code's version, position 0, generation 1)."""

    @property
    def stale(self) -> bool:
        """The live tables were built by another code version: a rebuild is due."""
        return self.started and self.built_version != self.code_version

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "codeVersion": self.code_version,
                "builtVersion": self.built_version, "checkpoint": self.checkpoint,
                "tableGeneration": self.table_generation, "lag": self.lag,
                "stale": self.stale, "rebuilding": self.rebuilding, "started": self.started}


def status(store: EventStore, projections: Sequence[Projection], *,
           clock: Clock = utcnow) -> list[ProjectionStatus]:
    """The status of each projection. Lag: events after the checkpoint (inline: 0;
    catch-up and not started: every event)."""
    now = clock()
    with store.engine.connect() as conn:
        found = _checkpoints.load(conn, [p.name for p in projections])
    result = []
    for p in projections:
        row = found.get(p.name)
        if row is None:  # figures as the row would be made: current, at position 0
            lag = 0 if p.inline else store.count_events(0)
            result.append(ProjectionStatus(p.name, _mode(p), p.version, p.version, 0, 1, lag,
                                           False, started=False))
            continue
        lag = 0 if p.inline else store.count_events(row.position)
        rebuilding = row.rebuild_owner is not None and (
            row.rebuild_until is None or row.rebuild_until > now)
        result.append(ProjectionStatus(
            p.name, _mode(p), p.version, row.version, row.position, row.table_generation, lag,
            rebuilding))
    return result


def _mode(projection: Projection) -> str:
    return "inline" if projection.inline else "catch-up"
