"""The event store: append to streams in one transaction, read a stream, read all.

Ports, narrowest first (as `eventsourcing`'s recorders): `StreamReader` reads one
stream; `GlobalReader` reads every event by global position; `EventStore`
appends, and lets other parts write in the same transaction through `AppendHook`s
(outbox rows, inline projections), `Transaction.defer` (run queue) or
`Transaction.conn` (idempotency results, reads). A transaction that only writes
(`Transaction.append_deferred`) is one statement on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Executable

from ledgerflow.domain.errors import ConcurrencyError, InvalidEvent, StoreUnavailable
from ledgerflow.domain.events import decode, encode, nul_in_json
from ledgerflow.eventstore import _errors, fastpath, postgres, sqlite
from ledgerflow.eventstore.database import create_engine, is_postgres
from ledgerflow.eventstore.records import NewEvent, RecordedEvent, StreamAppend
from ledgerflow.eventstore.schema import VERSION_CONFLICT, events

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
    positions are not known yet (their `position` is 0), with a `fastpath.Position`
    wherever a value depends on one. Only when every hook stages does the store write
    them in the statement that appends the events; when one returns None, the events
    are appended as `append` appends them (and 1. and 2. apply).
    """

    def write(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None: ...

    def batches(self, conn: Connection,
                recorded: Sequence[RecordedEvent]) -> list[fastpath.Batch] | None: ...

    def staged(self, conn: Connection,
               recorded: Sequence[RecordedEvent]) -> list[fastpath.Batch] | None: ...


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


_INSERT = events.insert().returning(events.c.position, sort_by_parameter_order=True)
_NOTIFY = sa.select(sa.func.pg_notify(sa.bindparam("channel", type_=sa.String),
                                      sa.bindparam("payload", type_=sa.String)))
_IDLE = psycopg.pq.TransactionStatus.IDLE
Encoded = list[list[tuple[str, int, str, str]]]


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
    transaction needs its connection again: the next append, any use of `conn`, or
    the commit. Then they go out together through `fastpath.execute_all`, on
    PostgreSQL as one statement where their tables allow: a step boundary costs the
    append and one more round trip, however many tables it writes.
    """

    def __init__(self, store: EventStore, conn: Connection) -> None:
        self.store = store
        self._conn = conn
        self._deferred: list[fastpath.Batch] = []
        self._staged: list[PendingAppend] = []
        self._notices: dict[tuple[str, str], None] = {}
        self.recorded: list[RecordedEvent] = []

    @property
    def conn(self) -> Connection:
        """The transaction's connection, with every deferred write sent (so what runs
        on it sees them)."""
        self.flush()
        return self._conn

    def defer(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write `rows` with `statement` (as `fastpath.execute`) before the transaction
        next uses its connection; errors surface then, at the latest at commit."""
        self._deferred.append((statement, rows))

    def append_deferred(self, *appends: StreamAppend) -> PendingAppend:
        """Append `appends` (as `append` does) when the transaction next uses its
        connection, at the latest before it commits; their recorded events are then in
        the result's `recorded`.

        On PostgreSQL a transaction that sent nothing before its commit (only deferred
        appends, deferred writes and notices) goes as ONE statement in autocommit:
        the append, the hooks' rows, the deferred writes and the notices, one round
        trip instead of four (BEGIN, append, writes, COMMIT). That takes an expected
        version on every append, one append per stream, and every hook staging its
        rows; otherwise the events are written as `append` writes them.
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
            fastpath.execute_all(self._conn, batches)

    def notify(self, channel: str, payload: str = "") -> None:
        """PostgreSQL: `pg_notify(channel, payload)` in this transaction, so listeners
        hear it when (and only if) it commits; the same notice twice is sent once.
        Nothing on SQLite, which has no notifications (its workers poll)."""
        if self.store.is_postgres:
            self._notices[(channel, payload)] = None

    def _finish(self) -> None:
        """Before the commit: the deferred appends and writes, then the notices."""
        if self._staged and self.store.is_postgres and self._as_one_statement():
            return
        self.flush()
        if self._notices:
            fastpath.execute(self._conn, _NOTIFY, [
                {"channel": channel, "payload": payload} for channel, payload in self._notices])
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
        now = store.clock()
        if store.is_postgres:
            recorded = self._append_postgres(appends, now)
        else:
            recorded = self._append_sqlite(appends, now)
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

    def _append_postgres(self, appends: Sequence[StreamAppend],
                         now: datetime) -> list[RecordedEvent]:
        encoded = _encode(appends)
        try:
            rows = postgres.insert_events(self._conn, appends, encoded, now)
        except Exception as error:
            if not _errors.is_unique_violation(error):
                raise
            translated = _errors.integrity_error(error, appends, self.store.stream_version)
            raise (translated or error) from None
        if rows is None:
            ids = [a.stream_id for a in appends]
            raise _errors.conflict(appends, postgres.current_versions(self._conn, ids))
        pairs = iter(rows)
        return [
            RecordedEvent(position, append.stream_id, version, new.event_id, type_name,
                          schema_version, new.event, new.metadata, now)
            for append, events in zip(appends, encoded, strict=True)
            for new, (type_name, schema_version, _data, _meta), (position, version)
            in zip(append.events, events, pairs, strict=False)  # pairs: one iterator for all
        ]

    def _as_one_statement(self) -> bool:
        """Write the deferred appends, their hooks' rows, the deferred writes and the
        notices as one statement in autocommit (see `append_deferred`); False, with
        nothing sent, when this transaction cannot."""
        appends = [append for pending in self._staged for append in pending.appends]
        if any(a.expected_version is None for a in appends) \
                or len({a.stream_id for a in appends}) != len(appends):
            return False
        raw: Any = self._conn.connection.dbapi_connection
        if raw.info.transaction_status != _IDLE or raw.isolation_level is not None:
            return False  # a statement ran already, or BEGIN sets an isolation level
        now = self.store.clock()
        encoded = _encode(appends)
        provisional = [  # every expected version is known (checked above)
            RecordedEvent(0, append.stream_id, (append.expected_version or 0) + n,
                          new.event_id, type_name, schema_version, new.event, new.metadata,
                          now)
            for append, texts in zip(appends, encoded, strict=True)
            for n, (new, (type_name, schema_version, _data, _meta))
            in enumerate(zip(append.events, texts, strict=True), 1)]
        batches: list[fastpath.Batch] = []
        for hook in self.store.hooks:
            found = hook.staged(self._conn, provisional)
            if found is None:
                return False
            batches.extend(found)
        batches.extend(self._deferred)
        key, head, params = postgres.insert_head(appends, encoded, now)
        head, tail = postgres.with_notices(head, params, list(self._notices))
        built = fastpath.statement_with(self._conn, (key, len(self._notices)), head, params,
                                        batches, tail)
        if built is None:
            return False
        try:
            rows = _autocommit(raw, fastpath.raw_cursor(self._conn), *built)
        except psycopg.Error as error:
            raise self._statement_error(error, appends) from None
        recorded = [rec._replace(position=row[0])
                    for rec, row in zip(provisional, rows, strict=True)]
        start = 0
        for pending in self._staged:
            end = start + sum(len(append.events) for append in pending.appends)
            pending._recorded, start = recorded[start:end], end
        self.recorded.extend(recorded)
        self._staged, self._deferred = [], []
        self._notices.clear()
        return True

    def _statement_error(self, error: psycopg.Error,
                         appends: Sequence[StreamAppend]) -> BaseException:
        """What a failed one-statement transaction raises (nothing of it was written)."""
        if error.sqlstate == VERSION_CONFLICT:
            ids = [a.stream_id for a in appends]
            return _errors.conflict(appends, postgres.current_versions(self._conn, ids))
        if error.sqlstate == postgres.UNDEFINED_FUNCTION and "ledgerflow_" in str(error):
            return StoreUnavailable(
                f"the database schema is older than this ledgerflow ({error}): "
                "run `ledgerflow db upgrade`; nothing was appended")
        if _errors.is_unique_violation(error):
            return _errors.integrity_error(error, appends, self.store.stream_version) or error
        return error

    def _append_sqlite(self, appends: Sequence[StreamAppend],
                       now: datetime) -> list[RecordedEvent]:
        _encode(appends)  # refuses what no backend can store, before any statement
        actual = sqlite.current_versions(self._conn, [a.stream_id for a in appends])
        params: list[dict[str, Any]] = []
        pending: list[tuple[StreamAppend, NewEvent, int, str, int]] = []
        for append in appends:
            version = actual[append.stream_id]
            if append.expected_version is not None and append.expected_version != version:
                raise ConcurrencyError(append.stream_id, append.expected_version, version)
            for new in append.events:
                version += 1
                type_name, schema_version, data = encode(new.event)
                params.append({
                    "stream_id": append.stream_id, "version": version,
                    "event_id": new.event_id, "type": type_name,
                    "schema_version": schema_version, "data": data,
                    "metadata": new.metadata, "recorded_at": now,
                })
                pending.append((append, new, version, type_name, schema_version))
        try:
            positions = [row[0] for row in self._conn.execute(_INSERT, params)]
        except sa_exc.IntegrityError as error:
            translated = _errors.integrity_error(error, appends, self.store.stream_version)
            if translated is None:
                raise
            raise translated from None
        return [
            RecordedEvent(position, append.stream_id, version, new.event_id, type_name,
                          schema_version, new.event, new.metadata, now)
            for position, (append, new, version, type_name, schema_version)
            in zip(positions, pending, strict=True)
        ]


def _on_held_postgres(store: EventStore, held: Connection) -> Iterator[Transaction]:
    """A transaction on a held PostgreSQL connection, committed on the driver when only
    the driver was used (the hot path: fastpath statements): psycopg begins it at the
    first statement; SQLAlchemy's transaction object is made only if Core runs
    something in it (then SQLAlchemy commits). Spares ~20 us per transaction."""
    raw: Any = held.connection.dbapi_connection
    tx = Transaction(store, held)
    try:
        yield tx
        tx._finish()
    except (psycopg.OperationalError, psycopg.InterfaceError):
        held.invalidate()  # the server or the socket is gone: the next use reconnects
        raise
    except BaseException:
        if held.in_transaction():
            held.rollback()
        else:
            raw.rollback()
        raise
    if held.in_transaction():
        held.commit()
    else:
        raw.commit()


def _autocommit(raw: Any, cursor: Any, sql: str, values: list[Any]) -> list[Any]:
    """Run one statement on `raw` in autocommit (a transaction of its own); its rows."""
    autocommit = raw.autocommit
    raw.autocommit = True
    try:
        rows: list[Any] = cursor.execute(sql, values, prepare=True).fetchall()
        return rows
    finally:  # back to transactions (a broken connection is replaced, not reused)
        if raw.info.transaction_status == _IDLE:
            raw.autocommit = autocommit


def _encode(appends: Sequence[StreamAppend]) -> Encoded:
    """(type, schema version, data JSON, metadata JSON) of each event."""
    return [[_texts(append, new) for new in append.events] for append in appends]


def _texts(append: StreamAppend, new: NewEvent) -> tuple[str, int, str, str]:
    """(type, schema version, data JSON, metadata JSON) of an event; refused with
    `InvalidEvent`, on both backends alike and before anything is written, what
    PostgreSQL cannot store: a NUL character (U+0000) or text that is not valid Unicode
    (an unpaired surrogate), in the ids, the data or the metadata."""
    type_name = new.event.type_name()
    try:
        data = new.event.model_dump_json()
        meta = orjson.dumps(new.metadata).decode()
        append.stream_id.encode()
        new.event_id.encode()
    except (ValueError, TypeError) as error:  # surrogates; orjson: also ints over 64 bits
        raise InvalidEvent(f"{type_name} for stream {append.stream_id!r} cannot be stored "
                           f"({error}); nothing was appended") from None
    where = ("its stream id" if "\x00" in append.stream_id else
             "its event id" if "\x00" in new.event_id else
             "its data" if nul_in_json(data) else
             "its metadata" if nul_in_json(meta) else None)
    if where is not None:
        raise InvalidEvent(
            f"{type_name} for stream {append.stream_id!r} holds a NUL character (\\u0000) "
            f"in {where}, which the store cannot keep (PostgreSQL refuses it); "
            "nothing was appended")
    return type_name, new.event.schema_version, data, meta


class EventStore(GlobalReader):
    """Append-only event store on SQLAlchemy Core, for PostgreSQL and SQLite."""

    def __init__(
        self,
        engine: Engine,
        *,
        hooks: Sequence[AppendHook] = (),
        clock: Clock = utcnow,
        read_wait: float = 1.0,
    ) -> None:
        self.engine = engine
        self.hooks: list[AppendHook] = list(hooks)
        self.clock = clock
        self.read_wait = read_wait
        self._adapter = postgres if is_postgres(engine) else sqlite
        self._held = threading.local()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> EventStore:
        return cls(create_engine(url), **kwargs)

    @property
    def is_postgres(self) -> bool:
        return self._adapter is postgres

    def add_hook(self, hook: AppendHook) -> None:
        self.hooks.append(hook)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction: everything in it commits together or not at all.

        On the connection this thread holds (see `held_connection`), else on one from
        the pool."""
        held: Connection | None = getattr(self._held, "conn", None)
        with _errors.translated():
            if held is None or self._held.busy:  # none held, or nested: its own connection
                with self.engine.begin() as conn:
                    tx = Transaction(self, conn)
                    yield tx
                    tx._finish()
                return
            self._held.busy = True
            try:
                if self.is_postgres:
                    yield from _on_held_postgres(self, held)
                else:
                    with held.begin():
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
        with _errors.translated():
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
        query = (
            sa.select(*_ROW).where(events.c.stream_id == stream_id,
                                   events.c.version >= from_version)
            .order_by(events.c.version)
        )
        with _errors.translated(), self._read() as conn:
            return [_decode_row(row) for row in conn.execute(query)]

    def stream_version(self, stream_id: str) -> int:
        query = sa.select(sa.func.coalesce(sa.func.max(events.c.version), 0)).where(
            events.c.stream_id == stream_id)
        with _errors.translated(), self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events after `after_position` in position order; never skips a late commit."""
        with _errors.translated():
            recorded: list[RecordedEvent] = self._adapter.read_all(
                self.engine, after_position, limit, self.read_wait, _decode_row)
        return recorded

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
        with _errors.translated(), self._read() as conn:
            return int(conn.execute(query).scalar_one())

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(readonly=True) as conn:
            yield conn


_ROW = (events.c.position, events.c.stream_id, events.c.version, events.c.event_id,
        events.c.type, events.c.schema_version, events.c.data, events.c.metadata,
        events.c.recorded_at)


def _decode_row(row: Any) -> RecordedEvent:
    position, stream_id, version, event_id, type_name, schema_version, data, meta, at = row
    if not isinstance(meta, dict):
        meta = orjson.loads(meta)
    return RecordedEvent(position, stream_id, version, event_id, type_name, schema_version,
                         decode(type_name, schema_version, data), meta, at)
