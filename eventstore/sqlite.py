"""SQLite specifics of the event store.

Global ordering: SQLite has one writer at a time (`BEGIN IMMEDIATE` takes the
database write lock before the first read of an append), positions come from an
AUTOINCREMENT key inside that lock, and the lock is held until commit. So
positions become visible in commit order and a plain ordered read never skips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.eventstore.schema import events

T = TypeVar("T")

_COLUMNS = ("position, stream_id, version, event_id, type, schema_version, data, metadata,"
            " recorded_at")
_TYPED = [events.c[name] for name in (
    "position", "stream_id", "version", "event_id", "type", "schema_version", "data",
    "metadata", "recorded_at")]


def current_versions(conn: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
    rows = conn.execute(
        sa.select(events.c.stream_id, sa.func.max(events.c.version))
        .where(events.c.stream_id.in_(list(stream_ids)))
        .group_by(events.c.stream_id)
    )
    found = {stream_id: int(version) for stream_id, version in rows}
    return {stream_id: found.get(stream_id, 0) for stream_id in stream_ids}


_READ = sa.text(
    f"SELECT {_COLUMNS} FROM events WHERE position > :after ORDER BY position LIMIT :limit"
).columns(*_TYPED)


def read_all(engine: Engine, after: int, limit: int, wait: float,
             decode: Callable[[Sequence[Any]], T]) -> list[T]:
    with engine.connect().execution_options(readonly=True) as conn:
        return [decode(row) for row in conn.execute(_READ, {"after": after, "limit": limit})]
