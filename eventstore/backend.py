"""The backend port: everything that differs between PostgreSQL and SQLite, stated once.

Each database has one adapter that implements `Backend`: `eventstore/postgres.py`
and `eventstore/sqlite.py`. `eventstore/database.py` is the one place that picks it,
from an engine or a connection (`backend_for`); the store holds its engine's as
`EventStore.backend`. Outside the adapters and that chooser no code asks which
database it runs on: it asks the backend to do the thing.

`Backend` is the sum of narrow ports, one concern each (as `eventsourcing` splits
its recorders):

- `Appender`: a store transaction's writes (append with the version check; the
  whole transaction as one statement where the database can; a transaction on a
  held connection; notices);
- `PositionReader`: `read_all`, which never skips an event that commits late;
- `Statements`: the SQL that differs (insert-or-ignore, upsert, JSON array
  append, a prefix match, `FOR UPDATE SKIP LOCKED`) and how hot statements are sent;
- `Notices`: hearing what `Transaction.notify` sent, where the database can;
- `TableSwap`: shadow tables swapped in by a projection rebuild;
- `StreamRemoval`: archival taking whole streams out of the store and putting them
  back; the only place events are ever deleted.

Also here, because hooks and adapters both speak them: `Batch` (a statement and
its rows) and `Position` (a value computed from an event's position once the
statement that appends it knows it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import Column, Table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement, Executable

from ledgerflow.eventstore.chain import StoredEvent
from ledgerflow.eventstore.records import RecordedEvent, StreamAppend

T = TypeVar("T")
Query = TypeVar("Query", bound=sa.Select[Any])

Batch = tuple[Executable, Sequence[Mapping[str, Any]]]
"""A statement and its rows (one execution per row), as `Statements.execute` takes them."""

Encoded = list[list[tuple[str, int, str, str]]]
"""Per append, per event: (type, schema version, data JSON, metadata JSON)."""

StreamVersion = Callable[[str], int]
"""A stream's version as committed (read outside the transaction: for error messages)."""


class Position(NamedTuple):
    """A value that depends on the global position of an event not appended yet: the
    position of the event `event_id` or, with `before`/`after`, the text
    `before + str(position) + after`. Only `Appender.commit_at_once` takes it: there
    the append runs in the same statement, and the value is computed in SQL from its
    result."""

    event_id: str
    before: str | None = None
    after: str | None = None


class Appender(Protocol):
    """How a store transaction writes its events."""

    def append(self, conn: Connection, appends: Sequence[StreamAppend], encoded: Encoded,
               now: datetime, stream_version: StreamVersion) -> list[RecordedEvent]:
        """Check every expected version and insert the events (`encoded` by the store,
        which refused what it must not write) in `conn`'s transaction;
        `ConcurrencyError` or `DuplicateEventId` (nothing inserted) when it cannot."""
        ...

    def at_once(self, conn: Connection) -> bool:
        """True when `conn`'s transaction sent nothing yet and may still go as ONE
        statement that commits by itself (`commit_at_once`); False on a database
        that cannot."""
        ...

    def commit_at_once(self, conn: Connection, appends: Sequence[StreamAppend],
                       encoded: Encoded, now: datetime, batches: Sequence[Batch],
                       notices: Sequence[tuple[str, str]],
                       stream_version: StreamVersion) -> list[int] | None:
        """Append (every expected version given, one append per stream), write
        `batches` and send `notices` as ONE statement in autocommit; the new events'
        positions in append order, or None, with nothing sent, when the batches
        cannot join it. A failed version check raises `ConcurrencyError` and writes
        nothing."""
        ...

    def held_transaction(self, conn: Connection) -> AbstractContextManager[object]:
        """A transaction on a connection held across transactions: committed when the
        block ends, rolled back if it raises (a connection the server dropped is
        replaced at its next use)."""
        ...

    def notify(self, conn: Connection, notices: Sequence[tuple[str, str]]) -> None:
        """Send (channel, payload) notices in `conn`'s transaction, heard once it
        commits; dropped by a database without notifications."""
        ...


class PositionReader(Protocol):
    """Reading every event by global position."""

    def read_all(self, engine: Engine, after: int, limit: int, wait: float,
                 decode: Callable[[Sequence[Any]], T]) -> list[T]:
        """Rows of `events` after position `after`, in position order, each through
        `decode`; never past a position whose transaction may still commit (waiting
        up to `wait` seconds when such a position comes first)."""
        ...


class Statements(Protocol):
    """The SQL that differs between databases, and how hot statements are sent."""

    @property
    def writes_in_one(self) -> bool:
        """True when one statement may write several tables that depend on each other
        (data-modifying CTEs: PostgreSQL); else the write transaction holds the whole
        database (SQLite), and such writes go one statement after another."""
        ...

    def execute(self, conn: Connection, statement: Executable,
                rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute `statement` once per row, in `conn`'s transaction, as Core would
        (column types' bind processing included), by the cheapest means."""
        ...

    def execute_all(self, conn: Connection, batches: Sequence[Batch]) -> None:
        """Execute each batch in order, as `execute` does (one statement for several
        where the database can)."""
        ...

    def fetch_first(self, conn: Connection, statement: Executable,
                    params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row `statement` returns, or None. The values go to the driver as
        given (no column-type processing): plain strings, numbers, aware datetimes."""
        ...

    def insert_or_ignore(self, table: Table,
                         keys: Sequence[Column[Any]] | None = None) -> sa.Insert:
        """INSERT into `table` that skips a row conflicting on `keys` (default: any
        unique constraint)."""
        ...

    def upsert(self, table: Table, keys: Sequence[Column[Any]],
               columns: Sequence[str], *, add: bool = False) -> sa.Insert:
        """INSERT into `table` that, on a conflict on `keys`, sets `columns` from the
        row it tried to insert (`add`: adds them to the stored values, counters)."""
        ...

    def json_append(self, column: Column[Any],
                    values: Sequence[ColumnElement[Any]]) -> ColumnElement[Any]:
        """The JSON array `column` with `values` appended, in order."""
        ...

    def starts_with(self, column: Column[Any], prefix: str) -> ColumnElement[bool]:
        """`column` starts with `prefix` (case-sensitive, every character literal), as a
        condition an index on `column` serves."""
        ...

    def one_of(self, column: Column[Any], values: Sequence[str]) -> ColumnElement[bool]:
        """`column` equals one of `values` (text), as a condition an index on `column`
        serves; cheap to send for hundreds of values."""
        ...

    def skip_locked(self, query: Query, of: Table | None = None) -> Query:
        """`query` locking the rows it returns (of `of`), skipping rows another
        transaction holds; as it is where a write transaction already holds the
        whole database."""
        ...

    def lock_rows(self, query: Query) -> Query:
        """`query` locking the rows it returns until the transaction ends (a second
        locker waits); as it is where a write transaction holds the whole database."""
        ...

    def serialize(self, conn: Connection, key: int) -> None:
        """Hold lock `key` until `conn`'s transaction ends, so transactions that take
        the same key run one after another (schema upgrades)."""
        ...


class Notices(Protocol):
    """Hearing what `Transaction.notify` sends."""

    @property
    def notifies(self) -> bool:
        """True when `listen` hears notices; else listeners have nothing to hear
        (workers poll)."""
        ...

    def listen(self, engine: Engine, channel: str, listening: threading.Event,
               halt: threading.Event) -> Iterator[str]:
        """The payloads of the notices on `channel`, as they come, on a connection of
        its own (`listening` is set once in place); ends when `halt` is set."""
        ...


class TableSwap(Protocol):
    """What a projection rebuild does to its shadow tables."""

    def index_shadow(self, conn: Connection, live: Table, copy: Table, suffix: str) -> None:
        """Give `copy`, the shadow of `live`, the indexes of `live`, named
        `<index><suffix>`, before the swap (where indexes cannot be renamed they are
        made by `replace_table` instead)."""
        ...

    def lock_exclusive(self, conn: Connection, tables: Sequence[Table]) -> None:
        """Until `conn`'s transaction ends no other transaction writes `tables`, in
        the order given (readers go on)."""
        ...

    def replace_table(self, conn: Connection, live: Table, copy: Table, suffix: str) -> None:
        """Drop `live` and give `copy` its name, its indexes and its primary key's name."""
        ...


class StreamRemoval(Protocol):
    """Archival's exception to append-only: whole streams out, and back as they were."""

    def remove_streams(self, conn: Connection, stream_ids: Sequence[str]) -> int:
        """Delete every event of `stream_ids` in `conn`'s transaction (the caller has
        written them durably elsewhere first); how many were deleted."""
        ...

    def restore_events(self, conn: Connection, rows: Sequence[StoredEvent]) -> None:
        """Insert archived events exactly as they were stored (positions and hashes
        included) in `conn`'s transaction; a version or id already taken is refused."""
        ...


class Backend(Appender, PositionReader, Statements, Notices, TableSwap, StreamRemoval,
              Protocol):
    """One database's adapter: every port above."""

    @property
    def name(self) -> str:
        """The SQLAlchemy dialect this adapter serves ("postgresql", "sqlite")."""
        ...

    @property
    def unavailable(self) -> tuple[type[Exception], ...]:
        """Driver errors (beyond SQLAlchemy's `OperationalError`/`InterfaceError`) that
        mean the database cannot be reached."""
        ...

