"""PostgreSQL specifics of the event store: version check and gap-safe `read_all`.

Global ordering — how a catch-up reader never skips an event that commits late.

`position` comes from a sequence, allocated when a row is inserted; transactions
commit in another order, so a reader can see position 8 committed while 7 is
still in flight. Writers do not take a table lock (eventsourcing's way) because
that serialises every writer on one lock. Instead:

1. Every append first calls `pg_current_xact_id()` (in the version-check query),
   so the transaction owns an xid *before* the sequence hands it a position.
2. A reader takes rows `position > after` together with its snapshot's `xmax`
   (one statement, one snapshot). If the positions it got are contiguous from
   `after + 1`, all of them are final: any transaction that took a position
   below a visible row had its xid before that row committed, i.e. its xid is
   below `xmax`, and it is either visible or — see 3.
3. A hole (a position missing below a visible row) belongs to a transaction that
   was in flight at the snapshot, or that rolled back (a conflict), or to a
   sequence value never used. The reader returns what precedes the hole; if the
   hole is first, it waits until `pg_snapshot_xmin` of a new snapshot reaches the
   old `xmax` — every transaction in flight at the first snapshot has ended —
   and reads the range again: now whatever is there is final, and what is still
   missing is a permanent hole. (The horizon is checked once at once, so holes
   long since settled — rolled-back appends — cost one extra query, no wait.)

A consequence callers must keep: read in a transaction that has no xid of its
own (a read-only one), or the reader would wait for itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from eventstore.schema import events

_VERSIONS = sa.text(
    "SELECT s.id, COALESCE((SELECT max(e.version) FROM events e WHERE e.stream_id = s.id), 0),"
    " pg_current_xact_id()::text"
    " FROM unnest(CAST(:ids AS text[])) AS s(id)"
)

_COLUMNS = ("position, stream_id, version, event_id, type, schema_version, data, metadata,"
            " recorded_at")
_TYPED = [events.c[name] for name in (
    "position", "stream_id", "version", "event_id", "type", "schema_version", "data",
    "metadata", "recorded_at")]

_READ = sa.text(
    f"SELECT {_COLUMNS}, pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS horizon"
    " FROM events WHERE position > :after ORDER BY position LIMIT :limit"
).columns(*_TYPED, sa.column("horizon", sa.BigInteger))

_READ_BOUNDED = sa.text(
    f"SELECT {_COLUMNS} FROM events WHERE position > :after AND position <= :upto"
    " ORDER BY position LIMIT :limit"
).columns(*_TYPED)

_XMIN = sa.text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def current_versions(conn: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
    """Stream versions as seen now; also assigns this transaction's xid (see module doc)."""
    rows = conn.execute(_VERSIONS, {"ids": list(stream_ids)})
    return {stream_id: int(version) for stream_id, version, _xid in rows}


def read_all(engine: Engine, after: int, limit: int, wait: float) -> Sequence[Sequence[Any]]:
    """Rows after `after`, in position order, never past a position that may still commit."""
    with engine.connect() as conn:
        rows = conn.execute(_READ, {"after": after, "limit": limit}).all()
        conn.rollback()
        if not rows:
            return rows
        prefix = _contiguous_prefix(rows, after)
        if prefix == len(rows):
            return [row[:-1] for row in rows]
        horizon = rows[0][-1]
        if not _passed(conn, horizon):
            if prefix > 0:
                return [row[:-1] for row in rows[:prefix]]
            deadline = time.monotonic() + wait
            while not _passed(conn, horizon):
                if time.monotonic() >= deadline:
                    return []
                time.sleep(0.001)
        upto = rows[-1][0]
        final = conn.execute(_READ_BOUNDED, {"after": after, "upto": upto, "limit": limit}).all()
        conn.rollback()
        return final


def _passed(conn: Connection, horizon: int) -> bool:
    """True once every transaction that was in flight at the first snapshot has ended."""
    xmin = conn.execute(_XMIN).scalar_one()
    conn.rollback()
    return bool(xmin >= horizon)


def _contiguous_prefix(rows: Sequence[Sequence[Any]], after: int) -> int:
    expected = after + 1
    for index, row in enumerate(rows):
        if row[0] != expected:
            return index
        expected += 1
    return len(rows)
