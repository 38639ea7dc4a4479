"""Reading a run's stream inside a write transaction, and the metadata of its events."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledgerflow.domain.events import decode
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.eventstore.schema import events

_c = events.c
_READ = (
    sa.select(_c.position, _c.stream_id, _c.version, _c.event_id, _c.type, _c.schema_version,
              _c.data, _c.metadata, _c.recorded_at)
    .where(_c.stream_id == sa.bindparam("sid"))
    .order_by(_c.version)
)


def read_events(conn: Connection, stream_id: str) -> list[RecordedEvent]:
    """Every event of `stream_id`, in version order, through the caller's connection."""
    return [
        RecordedEvent(pos, sid, version, event_id, type_name, schema, decode(type_name, schema,
                                                                               data), meta, at)
        for pos, sid, version, event_id, type_name, schema, data, meta, at
        in conn.execute(_READ, {"sid": stream_id})
    ]


def event_metadata(base: dict[str, Any], causation_id: str | None,
                   actor: str | None = None) -> dict[str, Any]:
    """A run's base metadata plus what caused this event (and who asked for it)."""
    meta = dict(base)
    if causation_id is not None:
        meta["causation_id"] = causation_id
    if actor is not None:
        meta["actor"] = actor
    return meta
