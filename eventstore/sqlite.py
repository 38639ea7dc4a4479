"""The SQLite backend adapter (`Backend`): the embedded default.

Global ordering: SQLite has one writer at a time (`BEGIN IMMEDIATE` takes the
database write lock before the first read of an append), positions come from an
AUTOINCREMENT key inside that lock, and the lock is held until commit. So
positions become visible in commit order and a plain ordered read never skips.

The same write lock is what `FOR UPDATE SKIP LOCKED` and `LOCK TABLE` give on
PostgreSQL: a write transaction (run queue claim, outbox relay, projector, rebuild
swap) already holds the whole database. There are no notifications (workers poll)
and no one-statement transactions (no round trips to save).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import Column, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement, Executable

from ledgerflow.domain.errors import ConcurrencyError
from ledgerflow.eventstore import _errors, _history
from ledgerflow.eventstore._encode import recorded_events
from ledgerflow.eventstore.backend import Batch, Encoded, Query, StreamVersion
from ledgerflow.eventstore.chain import StoredEvent, canonical_prefix, link, recorded_text
from ledgerflow.eventstore.records import RecordedEvent, StreamAppend
from ledgerflow.eventstore.schema import events

T = TypeVar("T")

_COLUMNS = ("position, stream_id, version, event_id, type, schema_version, data, metadata,"
            " recorded_at")
_TYPED = [events.c[name] for name in (
    "position", "stream_id", "version", "event_id", "type", "schema_version", "data",
    "metadata", "recorded_at")]
_INSERT = events.insert().returning(events.c.position, sort_by_parameter_order=True)


_HEAD = (sa.select(events.c.version, events.c.hash)
         .where(events.c.stream_id == sa.bindparam("sid"))
         .order_by(events.c.version.desc()).limit(1))


def heads(conn: Connection, stream_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Each stream's (version, hash of its last event), read in the write transaction
    (`BEGIN IMMEDIATE` holds the database: no writer can move a head meanwhile)."""
    found: dict[str, tuple[int, str]] = {}
    for stream_id in stream_ids:
        row = conn.execute(_HEAD, {"sid": stream_id}).first()
        found[stream_id] = (0, "") if row is None else (int(row[0]), row[1] or "")
    return found


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


class SqliteBackend:
    """SQLite: SQLAlchemy Core for everything; the database lock for every claim."""

    name = "sqlite"
    notifies = False
    writes_in_one = False
    unavailable: tuple[type[Exception], ...] = ()

    # -- Appender --------------------------------------------------------------

    def append(self, conn: Connection, appends: Sequence[StreamAppend], encoded: Encoded,
               now: datetime, stream_version: StreamVersion) -> list[RecordedEvent]:
        found = heads(conn, [a.stream_id for a in appends])
        at = recorded_text(now)
        params: list[dict[str, Any]] = []
        versions: list[int] = []
        for append, texts in zip(appends, encoded, strict=True):
            version, head = found[append.stream_id]
            if append.expected_version is not None and append.expected_version != version:
                raise ConcurrencyError(append.stream_id, append.expected_version, version)
            for new, (type_name, schema_version, data, meta) in zip(
                    append.events, texts, strict=True):
                version += 1
                head = link(head, canonical_prefix(append.stream_id, new.event_id, type_name,
                                                   schema_version, data, meta, at), version)
                params.append({
                    "stream_id": append.stream_id, "version": version,
                    "event_id": new.event_id, "type": type_name,
                    "schema_version": schema_version, "data": orjson.loads(data),
                    "metadata": new.metadata, "recorded_at": now, "hash": head,
                })
                versions.append(version)
            found[append.stream_id] = (version, head)
        try:
            positions = [row[0] for row in conn.execute(_INSERT, params)]
        except sa_exc.IntegrityError as error:
            translated = _errors.integrity_error(str(error.orig), appends, stream_version)
            if translated is None:
                raise
            raise translated from None
        return recorded_events(appends, encoded, zip(positions, versions, strict=True), now)

    def at_once(self, conn: Connection) -> bool:
        return False

    def commit_at_once(self, conn: Connection, appends: Sequence[StreamAppend],
                       encoded: Encoded, now: datetime, batches: Sequence[Batch],
                       notices: Sequence[tuple[str, str]],
                       stream_version: StreamVersion) -> list[int] | None:
        return None

    def held_transaction(self, conn: Connection) -> AbstractContextManager[object]:
        return conn.begin()

    def notify(self, conn: Connection, notices: Sequence[tuple[str, str]]) -> None:
        """Nothing: SQLite has no notifications (its workers poll)."""

    # -- PositionReader --------------------------------------------------------

    def read_all(self, engine: Engine, after: int, limit: int, wait: float,
                 decode: Callable[[Sequence[Any]], T]) -> list[T]:
        with engine.connect().execution_options(readonly=True) as conn:
            return [decode(row) for row in conn.execute(_READ, {"after": after, "limit": limit})]

    # -- Statements ------------------------------------------------------------

    def execute(self, conn: Connection, statement: Executable,
                rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:  # one compiled form per key set
            groups.setdefault(tuple(row), []).append(dict(row))
        for group in groups.values():
            conn.execute(statement, group)

    def execute_all(self, conn: Connection, batches: Sequence[Batch]) -> None:
        for statement, rows in batches:
            self.execute(conn, statement, rows)

    def fetch_first(self, conn: Connection, statement: Executable,
                    params: Mapping[str, Any]) -> Sequence[Any] | None:
        return conn.execute(statement, dict(params)).first()

    def insert_or_ignore(self, table: Table,
                         keys: Sequence[Column[Any]] | None = None) -> sa.Insert:
        return sqlite_dialect.insert(table).on_conflict_do_nothing(index_elements=keys)

    def upsert(self, table: Table, keys: Sequence[Column[Any]],
               columns: Sequence[str], *, add: bool = False) -> sa.Insert:
        insert = sqlite_dialect.insert(table)  # `add`: counters, the stored value plus the row's
        set_: dict[str, Any] = {name: table.c[name] + insert.excluded[name] if add
                                else insert.excluded[name] for name in columns}
        return insert.on_conflict_do_update(index_elements=keys, set_=set_)

    def json_append(self, column: Column[Any],
                    values: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        args: list[Any] = [column]
        for value in values:
            args.extend([sa.literal("$[#]"), value])
        return sa.func.json_insert(*args)

    def starts_with(self, column: Column[Any], prefix: str) -> ColumnElement[bool]:
        # GLOB (case-sensitive, unlike LIKE) with a literal prefix: SQLite turns it into
        # a range on the column's index (BINARY collation). [x] escapes a wildcard.
        escaped = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
        return column.op("GLOB", is_comparison=True)(escaped + "*")

    def one_of(self, column: Column[Any], values: Sequence[str]) -> ColumnElement[bool]:
        return column.in_(list(values))

    def skip_locked(self, query: Query, of: Table | None = None) -> Query:
        return query  # the write transaction holds the database lock already

    def lock_rows(self, query: Query) -> Query:
        return query  # the write transaction holds the database lock already

    def serialize(self, conn: Connection, key: int) -> None:
        """Nothing: `BEGIN IMMEDIATE` took the database's write lock already."""

    # -- Notices ---------------------------------------------------------------

    def listen(self, engine: Engine, channel: str, listening: threading.Event,
               halt: threading.Event) -> Iterator[str]:
        """Nothing is ever heard: waits for `halt`."""
        listening.set()
        halt.wait()
        yield from ()

    # -- StreamRemoval ---------------------------------------------------------

    def remove_streams(self, conn: Connection, stream_ids: Sequence[str]) -> int:
        return _history.remove_streams(conn, stream_ids)

    def restore_events(self, conn: Connection, rows: Sequence[StoredEvent]) -> None:
        _history.restore_events(conn, rows)

    # -- TableSwap -------------------------------------------------------------

    def index_shadow(self, conn: Connection, live: Table, copy: Table, suffix: str) -> None:
        """Nothing yet: SQLite cannot rename an index, `replace_table` makes them."""

    def lock_exclusive(self, conn: Connection, tables: Sequence[Table]) -> None:
        """Nothing: the write transaction holds the database lock."""

    def replace_table(self, conn: Connection, live: Table, copy: Table, suffix: str) -> None:
        conn.exec_driver_sql(f'DROP TABLE "{live.name}"')
        conn.exec_driver_sql(f'ALTER TABLE "{copy.name}" RENAME TO "{live.name}"')
        for index in live.indexes:
            index.create(conn)


BACKEND = SqliteBackend()
