"""Whole stored streams, undecoded and with their hashes: read for audits and archives,
removed and put back by archival (`Backend.remove_streams` / `restore_events`, the
one way events ever leave the store). The same Core statements on both databases;
each adapter states that it does this (and may do it otherwise)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ledgerflow.eventstore.chain import StoredEvent
from ledgerflow.eventstore.schema import events

_ROW = [events.c[name] for name in StoredEvent._fields]
_READ_STORED = (sa.select(*_ROW).where(events.c.stream_id == sa.bindparam("sid"))
                .order_by(events.c.version))
_PAGE = (sa.select(*_ROW).order_by(events.c.stream_id, events.c.version)
         .limit(sa.bindparam("limit")))
_NEXT_PAGE = _PAGE.where(sa.or_(
    events.c.stream_id > sa.bindparam("sid"),
    sa.and_(events.c.stream_id == sa.bindparam("sid"), events.c.version > sa.bindparam("v"))))
_DELETE = events.delete().where(events.c.stream_id.in_(sa.bindparam("ids", expanding=True)))
_INSERT = events.insert()


def stored_stream(conn: Connection, stream_id: str) -> list[StoredEvent]:
    """Every stored event of `stream_id`, in version order, as its row holds it."""
    return [StoredEvent(*row) for row in conn.execute(_READ_STORED, {"sid": stream_id})]


def stored_page(conn: Connection, after: tuple[str, int] | None,
                limit: int) -> list[StoredEvent]:
    """Up to `limit` stored events in (stream, version) order, after the (stream id,
    version) `after`: whole-store audits read streams one after another this way."""
    if after is None:
        return [StoredEvent(*row) for row in conn.execute(_PAGE, {"limit": limit})]
    return [StoredEvent(*row) for row in conn.execute(
        _NEXT_PAGE, {"sid": after[0], "v": after[1], "limit": limit})]


def remove_streams(conn: Connection, stream_ids: Sequence[str]) -> int:
    """Delete every event of `stream_ids`; how many."""
    if not stream_ids:
        return 0
    return int(conn.execute(_DELETE, {"ids": list(stream_ids)}).rowcount)


def restore_events(conn: Connection, rows: Sequence[StoredEvent]) -> None:
    """Insert `rows` exactly as they were stored: positions, versions, ids, times and
    hashes included."""
    if rows:
        params: list[dict[str, Any]] = [row._asdict() for row in rows]
        conn.execute(_INSERT, params)
