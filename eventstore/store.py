"""The event store: append to streams in one transaction, read a stream, read all.

Ports, narrowest first (as `eventsourcing`'s recorders): `StreamReader` reads one
stream; `GlobalReader` reads every event by global position; `EventStore`
appends, and lets other parts write in the same transaction through `AppendHook`s
(outbox rows, inline projections), `Transaction.defer` (run queue) or
`Transaction.conn` (idempotency results), and read in it (`Transaction.read_stream`).
What differs between the databases is the store's `backend` (eventstore/backend.py),
chosen once from the engine. A transaction that only writes
(`Transaction.append_deferred`) is one statement where the backend can
(PostgreSQL).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Executable

from ledgerflow.domain.events import decode
from ledgerflow.eventstore import _errors, _history
from ledgerflow.eventstore._encode import encode_appends, expected_versions, recorded_events
from ledgerflow.eventstore.backend import Backend, Batch
from ledgerflow.eventstore.chain import StoredEvent
from ledgerflow.eventstore.database import backend_for, create_engine
from ledgerflow.eventstore.records import NewEvent, RecordedEvent, StreamAppend
from ledgerflow.eventstore.schema import events

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class AppendHook(Protocol):
    """Writes in the append transaction, after the events are inserted (outbox rows,
    inline projections). Per append the store asks for the cheapest form the hook can
    give; a hook that cannot give one says so by returning None, and the store takes
    the next form (nothing is ever skipped).

    1. `batches(conn, recorded)`: the statements to write, without sending them; the
       store defers them and sends them with the transaction's other deferred writes
       (see `Transaction`; on PostgreSQL one statement for outbox + projections +
       queue). It must not read through `conn`, where writes the transaction deferred
       may not have been sent yet. None: the store calls `write` instead.
    2. `write(conn, recorded)`: write now, through `conn`, with everything the
       transaction deferred sent (a hook that reads does it here).

    And for a transaction of deferred appends (`Transaction.append_deferred`):
    `staged(conn, recorded)`: the same statements as `batches` for events whose
    positions are not known yet (their `position` is 0), with a `backend.Position`
    wherever a value depends on one. Only when every hook stages does the store write
    them in the statement that appends the events; when one returns None, the events
    are appended as `append` appends them (and 1. and 2. apply).
    """

    def write(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None: ...

    def batches(self, conn: Connection,
                recorded: Sequence[RecordedEvent]) -> list[Batch] | None: ...

    def staged(self, conn: Connection,
               recorded: Sequence[RecordedEvent]) -> list[Batch] | None: ...


HookFunction = Callable[[Connection, Sequence[RecordedEvent]], None]


class FunctionHook:
    """An `AppendHook` made of a function `write(conn, recorded)` that writes (and may
    read) through the connection: it is always called, never batched nor staged."""

    def __init__(self, write: HookFunction) -> None:
        self._write = write

    def write(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        self._write(conn, recorded)

    def batches(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        return None

    def staged(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        return None


class StreamReader(Protocol):
    def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]: ...
    def stream_version(self, stream_id: str) -> int: ...


class GlobalReader(StreamReader, Protocol):
    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]: ...
    def max_position(self) -> int: ...
    def count_events(self, after_position: int = 0) -> int: ...


class PendingAppend:
    """What `Transaction.append_deferred` will append; `recorded` once it is written
    (at the latest when the transaction commits)."""

    __slots__ = ("_recorded", "appends")

    def __init__(self, appends: tuple[StreamAppend, ...]) -> None:
        self.appends = appends
        self._recorded: list[RecordedEvent] | None = None if appends else []

    @property
    def recorded(self) -> list[RecordedEvent]:
        if self._recorded is None:
            raise RuntimeError("these events are not appended yet: they are written when "
                               "the transaction next uses its connection or commits")
        return self._recorded


class Transaction:
    """One database transaction of the store; `append` may be called several times.

    Writes whose results nobody reads (the hooks' batches, `defer`) wait until the
    transaction needs its connection again: the next append, any use of `conn` or a
    read, or the commit. Then they go out together through the backend's
    `execute_all`, on PostgreSQL as one statement where their tables allow: a step
    boundary costs the append and one more round trip, however many tables it writes.
    """

    def __init__(self, store: EventStore, conn: Connection) -> None:
        self.store = store
        self._backend = store.backend
        self._conn = conn
        self._deferred: list[Batch] = []
        self._staged: list[PendingAppend] = []
        self._notices: dict[tuple[str, str], None] = {}
        self.recorded: list[RecordedEvent] = []

    @property
    def conn(self) -> Connection:
        """The transaction's connection, with every deferred write sent (so what runs
        on it sees them)."""
        self.flush()
        return self._conn

    def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        """The events of `stream_id` from `from_version` on, in version order, as this
        transaction sees them: its own appends (deferred ones too) included."""
        return _read(self.conn, _READ_STREAM, {"sid": stream_id, "from": from_version})

    def read_first(self, stream_id: str) -> RecordedEvent | None:
        """The first event of `stream_id` (a run's RunCreated) as this transaction sees
        it; None for an empty stream."""
        found = _read(self.conn, _READ_FIRST, {"sid": stream_id})
        return found[0] if found else None

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events after `after_position` in position order, as this transaction sees
        them. Unlike `EventStore.read_all` it does not wait for writers in flight: it is
        exact only while the caller keeps writers out (as the projection rebuild's swap
        does, holding their tables' locks)."""
        return _read(self.conn, _READ_ALL, {"after": after_position, "limit": limit})

    def stored_stream(self, stream_id: str) -> list[StoredEvent]:
        """`EventStore.stored_stream` as this transaction sees it."""
        return _history.stored_stream(self.conn, stream_id)

    def remove_streams(self, stream_ids: Sequence[str]) -> int:
        """Delete whole streams (archival only: see `Backend.remove_streams`)."""
        return self._backend.remove_streams(self.conn, stream_ids)

    def restore_events(self, rows: Sequence[StoredEvent]) -> None:
        """Put archived events back as they were stored (`Backend.restore_events`)."""
        self._backend.restore_events(self.conn, rows)

    def defer(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write `rows` with `statement` (as the backend's `execute`) before the
        transaction next uses its connection; errors surface then, at the latest at
        commit."""
        self._deferred.append((statement, rows))

    def append_deferred(self, *appends: StreamAppend) -> PendingAppend:
        """Append `appends` (as `append` does) when the transaction next uses its
        connection, at the latest before it commits; their recorded events are then in
        the result's `recorded`.

        Where the backend can (PostgreSQL), a transaction that sent nothing before its
        commit (only deferred appends, deferred writes and notices) goes as ONE
        statement in autocommit: the append, the hooks' rows, the deferred writes and
        the notices, one round trip instead of four (BEGIN, append, writes, COMMIT).
        That takes an expected version on every append, one append per stream, and
        every hook staging its rows; otherwise the events are written as `append`
        writes them.
        """
        pending = PendingAppend(tuple(a for a in appends if a.events))
        if pending.appends:
            self._staged.append(pending)
        return pending

    def flush(self) -> None:
        """Send the deferred appends and writes now."""
        if self._staged:
            staged, self._staged = self._staged, []
            for pending in staged:
                pending._recorded = self._append(pending.appends)
        if self._deferred:
            batches, self._deferred = self._deferred, []
            self._backend.execute_all(self._conn, batches)

    def notify(self, channel: str, payload: str = "") -> None:
        """Tell listeners `payload` on `channel` when (and only if) this transaction
        commits; the same notice twice is sent once. PostgreSQL: `pg_notify`; SQLite
        has no notifications (its workers poll) and drops them."""
        self._notices[(channel, payload)] = None

    def _finish(self) -> None:
        """Before the commit: the deferred appends and writes, then the notices."""
        if self._staged and self._at_once():
            return
        self.flush()
        if self._notices:
            self._backend.notify(self._conn, list(self._notices))
            self._notices.clear()

    def append(self, *appends: StreamAppend) -> list[RecordedEvent]:
        """Append events to one or more streams; checks every expected version."""
        appends = tuple(a for a in appends if a.events)
        if not appends:
            return []
        self.flush()
        return self._append(appends)

    def _append(self, appends: Sequence[StreamAppend]) -> list[RecordedEvent]:
        """Write `appends` now (the deferred writes before them are sent already)."""
        store = self.store
        encoded = encode_appends(appends, store.max_event_bytes)
        recorded = self._backend.append(self._conn, appends, encoded, store.clock(),
                                        store.stream_version)
        self._run_hooks(recorded)
        self.recorded.extend(recorded)
        return recorded

    def _run_hooks(self, recorded: Sequence[RecordedEvent]) -> None:
        """Run the hooks in order: their batches deferred (they go out with the
        transaction's other deferred writes), or, from a hook that gives none, its
        writes now."""
        for hook in self.store.hooks:
            batches = hook.batches(self._conn, recorded)
            if batches is None:
                hook.write(self.conn, recorded)
            else:
                self._deferred.extend(batches)

    def _at_once(self) -> bool:
        """Write the deferred appends, their hooks' rows, the deferred writes and the
        notices as one statement in autocommit (see `append_deferred`); False, with
        nothing sent, when this transaction cannot."""
        appends = [append for pending in self._staged for append in pending.appends]
        if any(a.expected_version is None for a in appends) \
                or len({a.stream_id for a in appends}) != len(appends):
            return False
        backend = self._backend
        if not backend.at_once(self._conn):
            return False
        store = self.store
        now = store.clock()
        encoded = encode_appends(appends, store.max_event_bytes)
        provisional = recorded_events(appends, encoded, expected_versions(appends), now)
        batches: list[Batch] = []
        for hook in store.hooks:
            found = hook.staged(self._conn, provisional)
            if found is None:
                return False
            batches.extend(found)
        batches.extend(self._deferred)
        positions = backend.commit_at_once(self._conn, appends, encoded, now, batches,
                                           list(self._notices), store.stream_version)
        if positions is None:
            return False
        recorded = [rec._replace(position=position)
                    for rec, position in zip(provisional, positions, strict=True)]
        start = 0
        for pending in self._staged:
            end = start + sum(len(append.events) for append in pending.appends)
            pending._recorded, start = recorded[start:end], end
        self.recorded.extend(recorded)
        self._staged, self._deferred = [], []
        self._notices.clear()
        return True


class EventStore(GlobalReader):
    """Append-only event store on SQLAlchemy Core, for PostgreSQL and SQLite.

    `max_event_bytes`: the largest event an append accepts, counted as the UTF-8 bytes
    of its data and metadata JSON; a larger one is refused with `EventTooLarge` and the
    append writes nothing (None: no limit; `Ledgerflow` passes
    `LEDGERFLOW_MAX_EVENT_BYTES`, derived from what the outbox can publish)."""

    def __init__(
        self,
        engine: Engine,
        *,
        hooks: Sequence[AppendHook] = (),
        clock: Clock = utcnow,
        read_wait: float = 1.0,
        max_event_bytes: int | None = None,
    ) -> None:
        self.engine = engine
        self.hooks: list[AppendHook] = list(hooks)
        self.clock = clock
        self.read_wait = read_wait
        self.max_event_bytes = max_event_bytes
        self.backend: Backend = backend_for(engine)
        """What differs between databases, for this store's engine (and its users')."""
        self._held = threading.local()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> EventStore:
        return cls(create_engine(url), **kwargs)

    def add_hook(self, hook: AppendHook) -> None:
        self.hooks.append(hook)

    def check_event(self, stream_id: str, new: NewEvent) -> None:
        """Raise what appending `new` to `stream_id` would raise for the event itself
        (`InvalidEvent`; `EventTooLarge` over `max_event_bytes`), without writing: for a
        caller that must know before it commits to the event (a step's result)."""
        encode_appends([StreamAppend(stream_id, [new])], self.max_event_bytes)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction: everything in it commits together or not at all.

        On the connection this thread holds (see `held_connection`), else on one from
        the pool."""
        held: Connection | None = getattr(self._held, "conn", None)
        with _errors.translated(self.backend.unavailable):
            if held is None or self._held.busy:  # none held, or nested: its own connection
                with self.engine.begin() as conn:
                    tx = Transaction(self, conn)
                    yield tx
                    tx._finish()
                return
            self._held.busy = True
            try:
                with self.backend.held_transaction(held):
                    tx = Transaction(self, held)
                    yield tx
                    tx._finish()
            finally:
                self._held.busy = False

    @contextmanager
    def held_connection(self) -> Iterator[None]:
        """Within the block, this thread's transactions run one after another on one
        connection (an executing run's: several transactions in a row). Spares a pool
        checkout and check-in per transaction, ~50 us of client CPU each here."""
        if getattr(self._held, "conn", None) is not None:
            yield
            return
        with _errors.translated(self.backend.unavailable):
            conn = self.engine.connect()
        self._held.conn, self._held.busy = conn, False
        try:
            yield
        finally:
            self._held.conn = None
            conn.close()

    def append(self, *appends: StreamAppend) -> list[RecordedEvent]:
        """Append in a transaction of its own."""
        with self.transaction() as tx:
            return tx.append(*appends)

    def read_stream(self, stream_id: str, from_version: int = 1) -> list[RecordedEvent]:
        with self._read() as conn:
            return _read(conn, _READ_STREAM, {"sid": stream_id, "from": from_version})

    def stored_stream(self, stream_id: str) -> list[StoredEvent]:
        """Every event of `stream_id` as its row holds it (undecoded, with its hash), in
        version order: what audits check and archives keep."""
        with self._read() as conn:
            return _history.stored_stream(conn, stream_id)

    def iter_stored(self, batch: int = 2000) -> Iterator[StoredEvent]:
        """Every stored event, undecoded, stream after stream (by id), each stream in
        version order; read in pages of `batch` (the store's state as it goes)."""
        after: tuple[str, int] | None = None
        while True:
            with self._read() as conn:
                page = _history.stored_page(conn, after, batch)
            yield from page
            if len(page) < batch:
                return
            after = (page[-1].stream_id, page[-1].version)

    def stream_version(self, stream_id: str) -> int:
        query = sa.select(sa.func.coalesce(sa.func.max(events.c.version), 0)).where(
            events.c.stream_id == stream_id)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events after `after_position` in position order; never skips a late commit."""
        with _errors.translated(self.backend.unavailable):
            return self.backend.read_all(self.engine, after_position, limit,
                                         self.read_wait, _decode_row)

    def iter_all(self, after_position: int = 0, batch: int = 1000) -> Iterator[RecordedEvent]:
        """Every event after `after_position`, read in batches (the store's present end)."""
        end = self.max_position()
        while after_position < end:
            chunk = self.read_all(after_position, batch)
            if not chunk:
                break
            yield from chunk
            after_position = chunk[-1].position

    def max_position(self) -> int:
        query = sa.select(sa.func.coalesce(sa.func.max(events.c.position), 0))
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def count_events(self, after_position: int = 0) -> int:
        """How many events are stored after `after_position` (a catch-up reader's lag;
        a replay's total)."""
        with self._read() as conn:
            return int(conn.execute(_COUNT, {"after": after_position}).scalar_one())

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _errors.translated(self.backend.unavailable), \
                self.engine.connect().execution_options(readonly=True) as conn:
            yield conn


_ROW = (events.c.position, events.c.stream_id, events.c.version, events.c.event_id,
        events.c.type, events.c.schema_version, events.c.data, events.c.metadata,
        events.c.recorded_at)
_READ_STREAM = (sa.select(*_ROW)
                .where(events.c.stream_id == sa.bindparam("sid"),
                       events.c.version >= sa.bindparam("from"))
                .order_by(events.c.version))
_READ_FIRST = sa.select(*_ROW).where(events.c.stream_id == sa.bindparam("sid"),
                                     events.c.version == 1)
_READ_ALL = (sa.select(*_ROW).where(events.c.position > sa.bindparam("after"))
             .order_by(events.c.position).limit(sa.bindparam("limit")))
_COUNT = sa.select(sa.func.count()).where(events.c.position > sa.bindparam("after"))


def _read(conn: Connection, query: Executable, params: dict[str, Any]) -> list[RecordedEvent]:
    return [_decode_row(row) for row in conn.execute(query, params)]


def _decode_row(row: Any) -> RecordedEvent:
    position, stream_id, version, event_id, type_name, schema_version, data, meta, at = row
    if not isinstance(meta, dict):
        meta = orjson.loads(meta)
    return RecordedEvent(position, stream_id, version, event_id, type_name, schema_version,
                         decode(type_name, schema_version, data), meta, at)
