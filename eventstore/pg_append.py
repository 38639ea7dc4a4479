"""The PostgreSQL adapter's append statement (`eventstore.postgres`; PostgreSQL only).

One statement, one round trip per append: `v` takes the xid (point 1 of the global
ordering argument in `eventstore.postgres`; `v.xid` is referenced below so the
planner cannot drop it) and, from the stream's last event, every stream's version
and head hash; the insert happens only if every expected version holds (`{check}`),
in the order the rows are given, so positions follow versions. Rows travel as a
VALUES list of scalar parameters (one SQL text per shape, prepared): psycopg dumps
arrays in Python, several times slower than scalars.

Each row carries its canonical event up to the version (`eventstore.chain`); the
statement finishes it with the version it assigns and hashes it after the head (or
after the row before it in the same stream) with the `ledgerflow_chain` window
aggregate (eventstore migration 3): the previous hash is read by the statement that
writes, never by a round trip before it, and a concurrent writer of the same stream
fails on `events_stream_version_key` as before.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from ledgerflow.eventstore import fastpath
from ledgerflow.eventstore.chain import canonical_prefix, recorded_text
from ledgerflow.eventstore.records import StreamAppend

_VERSIONS_CTE = """v AS (
    SELECT s.id, s.expected, pg_current_xact_id() AS xid,
           COALESCE(h.version, 0) AS actual, COALESCE(h.hash, '') AS head
    FROM (VALUES {streams}) AS s(id, expected)
    LEFT JOIN LATERAL (SELECT e.version, e.hash FROM events e WHERE e.stream_id = s.id
                       ORDER BY e.version DESC LIMIT 1) AS h ON true
)"""
_INSERT_EVENTS = """INSERT INTO events (stream_id, version, event_id, type, schema_version,
                    data, metadata, recorded_at, hash)
SELECT r.stream_id, v.actual + r.n, r.event_id, r.type, r.sv, r.data, r.meta, r.at,
       ledgerflow_chain(r.canon || convert_to((v.actual + r.n)::text || '}}', 'UTF8'), v.head)
           OVER (PARTITION BY r.stream_id ORDER BY r.ord)
FROM (VALUES {rows}) AS r(stream_id, n, event_id, type, sv, data, meta, at, canon, ord)
JOIN v ON v.id = r.stream_id
WHERE v.xid IS NOT NULL AND {check}
ORDER BY r.ord
RETURNING {returning}"""

# `insert_events`: no row back means a version conflict (the transaction goes on).
_ALL_AT_EXPECTED = ("NOT EXISTS (SELECT 1 FROM v WHERE v.expected IS NOT NULL"
                    " AND v.expected <> v.actual)")
# `insert_head`: a stream off its expected version raises LF409 (eventstore/schema.py),
# which aborts the statement and every other write in it.
_AT_EXPECTED_OR_RAISE = ("CASE WHEN v.expected = v.actual THEN true"
                         " ELSE ledgerflow_version_conflict(v.id, v.expected, v.actual) END")

_STREAM_TYPES = ("text", "int")
_ROW_TYPES = ("text", "int", "text", "text", "int2", "jsonb", "jsonb", "timestamptz", "bytea")

Texts = Sequence[Sequence[tuple[str, int, str, str]]]


def _placeholders(streams: int, rows: int, named: bool) -> tuple[str, str, tuple[str, ...]]:
    """The VALUES lists of `streams` streams and `rows` events (in `_values` order),
    positional (`%s`) or named, and the names."""
    names: list[str] = []

    def one(name: str, cast: str) -> str:
        names.append(name)
        return f"%({name})s::{cast}" if named else f"%s::{cast}"

    stream_sql = ", ".join(
        "(" + ", ".join(one(f"v{i}_{k}", t) for k, t in enumerate(_STREAM_TYPES)) + ")"
        for i in range(streams))
    row_sql = ", ".join(
        "(" + ", ".join(one(f"r{i}_{k}", t) for k, t in enumerate(_ROW_TYPES)) + f", {i}::int)"
        for i in range(rows))
    return stream_sql, row_sql, tuple(names)


@functools.lru_cache(maxsize=256)
def _append_sql(streams: int, rows: int) -> str:
    stream_sql, row_sql, _ = _placeholders(streams, rows, named=False)
    return (f"WITH {_VERSIONS_CTE.format(streams=stream_sql)} "
            + _INSERT_EVENTS.format(rows=row_sql, check=_ALL_AT_EXPECTED,
                                    returning="position, version"))


def insert_events(conn: Connection, appends: Sequence[StreamAppend], encoded: Texts,
                  now: datetime) -> list[tuple[int, int]] | None:
    """Check versions and insert; (position, version) per event, or None on a conflict.

    Uses the psycopg cursor of the SQLAlchemy connection (same transaction): the
    append is the hottest statement of the product, and SQLAlchemy's execution
    layer cost more CPU than the statement itself.
    """
    params, count = _values(appends, encoded, now)
    rows: list[tuple[int, int]] = fastpath.cursor(conn).execute(
        _append_sql(len(appends), count), params, prepare=True).fetchall()
    return rows or None


def _values(appends: Sequence[StreamAppend], encoded: Texts,
            now: datetime) -> tuple[list[Any], int]:
    """The append's parameters in placeholder order, and how many events."""
    params: list[Any] = []
    for append in appends:
        params += (append.stream_id, append.expected_version)
    count = 0
    at = recorded_text(now)
    for append, events in zip(appends, encoded, strict=True):
        for n, (new, (type_name, schema_version, data, meta)) in enumerate(
                zip(append.events, events, strict=True), 1):
            canon = canonical_prefix(append.stream_id, new.event_id, type_name,
                                     schema_version, data, meta, at)
            params += (append.stream_id, n, new.event_id, type_name, schema_version, data,
                       meta, now, canon)
            count += 1
    return params, count


_TAIL = "SELECT position FROM ins ORDER BY position"
_TAIL_NOTIFY = ("SELECT ins.position FROM ins, (SELECT count(*) FROM n) AS sent"
                " ORDER BY ins.position")


def with_notices(head: str, params: dict[str, Any],
                 notices: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """`head` with a CTE `n` sending the (channel, payload) notices, if any (their
    values go into `params`), and the main query to follow it: the new events'
    positions in append order (reading `n`, so that it runs)."""
    if not notices:
        return head, _TAIL
    rows = ", ".join(f"(%(n{i}_c)s::text, %(n{i}_p)s::text)" for i in range(len(notices)))
    for i, (channel, payload) in enumerate(notices):
        params[f"n{i}_c"], params[f"n{i}_p"] = channel, payload
    return f"{head}, n AS (SELECT pg_notify(x.c, x.p) FROM (VALUES {rows}) AS x(c, p))", \
        _TAIL_NOTIFY


@functools.lru_cache(maxsize=256)
def _head(streams: int, rows: int) -> tuple[str, tuple[str, ...]]:
    # The append as the head of one statement that also carries the transaction's
    # other writes (`fastpath.statement_with`), sent in autocommit: one round trip for
    # the whole transaction. `ins` returns each event's position for the writes that
    # need it (`backend.Position`).
    stream_sql, row_sql, names = _placeholders(streams, rows, named=True)
    insert = _INSERT_EVENTS.format(rows=row_sql, check=_AT_EXPECTED_OR_RAISE,
                                   returning="position, event_id")
    return f"{_VERSIONS_CTE.format(streams=stream_sql)}, ins AS ({insert})", names


def insert_head(appends: Sequence[StreamAppend], encoded: Texts,
                now: datetime) -> tuple[tuple[int, int], str, dict[str, Any]]:
    """The append as a CTE head for `fastpath.statement_with`: (shape key, CTE text,
    named parameters). Every append must have an expected version."""
    values, count = _values(appends, encoded, now)
    sql, names = _head(len(appends), count)
    return (len(appends), count), sql, dict(zip(names, values, strict=True))
