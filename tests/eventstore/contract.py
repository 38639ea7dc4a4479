"""The event store's behavioural contract. Each backend module subclasses
`StoreContract` and provides the `engine` fixture; pytest does not collect the base."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import (
    ConcurrencyError,
    DuplicateEventId,
    EventTooLarge,
    IdempotencyConflict,
    InvalidEvent,
)
from ledgerflow.eventstore import (
    Acquired,
    Batch,
    EventStore,
    FunctionHook,
    IdempotencyKeys,
    InProgress,
    NewEvent,
    Position,
    RecordedEvent,
    Replay,
    StreamAppend,
    backend_for,
)
from ledgerflow.eventstore.schema import PositionType, events, idempotency_keys


def created() -> NewEvent:
    return NewEvent(ev.RunCreated(workflow_id="w", workflow_version="1", input={"n": 1}),
                    metadata={"actor": "tester", "correlation_id": "c-1"})


def started() -> NewEvent:
    return NewEvent(ev.RunStarted(worker="w1"))


def sid() -> str:
    return str(uuid.uuid4())


def completed_step(step: str) -> NewEvent:
    return NewEvent(ev.StepCompleted(step_id=step, attempt=1, result={"ok": True},
                                     started_at=datetime(2026, 1, 1, tzinfo=UTC)))


def key_row(key: str) -> dict[str, object]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {"scope": "s", "key": key, "fingerprint": "f", "status": "completed",
            "result": None, "locked_until": None, "expires_at": now, "created_at": now}


_test_tables = sa.MetaData()
hook_log = sa.Table(
    "test_hook_log", _test_tables,
    sa.Column("id", PositionType, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)
_LOG = hook_log.insert()


class PositionLog:
    """An append hook of the tests' own (the outbox and the projections are hooks of the
    same kind): one `test_hook_log` row per recorded event, holding its position as a
    number and inside a text, as an outbox payload holds it. It offers `batches` and
    `staged`, so the store may send its rows with the append (`append_deferred`)."""

    def rows(self, recorded: Sequence[RecordedEvent],
             staged: bool = False) -> list[dict[str, object]]:
        return [{"event_id": r.event_id, "stream_id": r.stream_id, "version": r.version,
                 "position": Position(r.event_id) if staged else r.position,
                 "note": Position(r.event_id, f"{r.type} at ", ".") if staged
                 else f"{r.type} at {r.position}."} for r in recorded]

    def write(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        backend_for(conn).execute(conn, _LOG, self.rows(recorded))

    def batches(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> list[Batch]:
        return [(_LOG, self.rows(recorded))]

    def staged(self, conn: Connection, recorded: Sequence[RecordedEvent]) -> list[Batch]:
        return [(_LOG, self.rows(recorded, staged=True))]


@contextmanager
def hook_log_created(engine: Engine) -> Iterator[None]:
    """`test_hook_log`, made empty for a test and dropped after it."""
    _test_tables.drop_all(engine)
    _test_tables.create_all(engine)
    try:
        yield
    finally:
        _test_tables.drop_all(engine)


def logged(engine: Engine) -> list[tuple[object, ...]]:
    """(event id, stream, version, position, note) of every hook row, in write order."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            sa.select(hook_log.c.event_id, hook_log.c.stream_id, hook_log.c.version,
                      hook_log.c.position, hook_log.c.note).order_by(hook_log.c.id))]


def as_logged(recorded: Sequence[RecordedEvent]) -> list[tuple[object, ...]]:
    """What `PositionLog` writes for `recorded` once their positions are known."""
    return [(r.event_id, r.stream_id, r.version, r.position, f"{r.type} at {r.position}.")
            for r in recorded]


def _row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table))
                                .scalar_one())
                for table in (events, hook_log, idempotency_keys)}


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


class StoreContract:
    @pytest.fixture
    def engine(self) -> Engine:
        raise NotImplementedError

    @pytest.fixture
    def store(self, engine: Engine) -> EventStore:
        return EventStore(engine)

    @pytest.fixture
    def logging_store(self, engine: Engine) -> Iterator[EventStore]:
        """A store whose appends write `PositionLog` rows."""
        with hook_log_created(engine):
            yield EventStore(engine, hooks=[PositionLog()])

    def test_append_and_read_stream(self, store: EventStore) -> None:
        stream = sid()
        recorded = store.append(StreamAppend(stream, [created(), started()], 0))
        assert [r.version for r in recorded] == [1, 2]
        assert recorded[0].position < recorded[1].position
        read = store.read_stream(stream)
        assert [r.event for r in read] == [r.event for r in recorded]
        assert [r.event_id for r in read] == [r.event_id for r in recorded]
        assert read[0].metadata == {"actor": "tester", "correlation_id": "c-1"}
        assert read[0].recorded_at.tzinfo is not None
        assert store.stream_version(stream) == 2
        assert [r.version for r in store.read_stream(stream, from_version=2)] == [2]

    def test_wrong_expected_version_names_stream_and_versions(self, store: EventStore,
                                                              engine: Engine) -> None:
        stream = sid()
        store.append(StreamAppend(stream, [created()], 0))
        before = count(engine)
        for expected in (0, 2, 5):
            with pytest.raises(ConcurrencyError) as info:
                store.append(StreamAppend(stream, [started()], expected))
            assert (info.value.stream, info.value.expected, info.value.actual) == (
                stream, expected, 1)
            assert stream in str(info.value)
        assert count(engine) == before
        store.append(StreamAppend(stream, [started()], 1))
        assert store.stream_version(stream) == 2

    def test_no_expected_version_appends_after_the_end(self, store: EventStore) -> None:
        stream = sid()
        store.append(StreamAppend(stream, [created()], 0))
        recorded = store.append(StreamAppend(stream, [NewEvent(ev.SignalReceived(name="s"))]))
        assert recorded[0].version == 2

    def test_multi_stream_append_is_all_or_nothing(self, store: EventStore,
                                                   engine: Engine) -> None:
        parent, child = sid(), sid()
        store.append(StreamAppend(parent, [created()], 0))
        before = count(engine)
        with pytest.raises(ConcurrencyError) as info:
            store.append(StreamAppend(child, [created()], 0),
                         StreamAppend(parent, [started()], 7))
        assert info.value.stream == parent
        assert count(engine) == before and store.stream_version(child) == 0
        recorded = store.append(StreamAppend(child, [created()], 0),
                                StreamAppend(parent, [started()], 1))
        assert [(r.stream_id, r.version) for r in recorded] == [(child, 1), (parent, 2)]
        read_back = {r.event_id: r for r in store.read_all(0, 100)}
        for r in recorded:
            assert (read_back[r.event_id].position, read_back[r.event_id].version) == (
                r.position, r.version)

    def test_duplicate_event_id_is_refused_and_nothing_written(self, store: EventStore,
                                                                engine: Engine) -> None:
        first = created()
        store.append(StreamAppend(sid(), [first], 0))
        before = count(engine)
        with pytest.raises(DuplicateEventId) as info:
            store.append(StreamAppend(sid(), [NewEvent(first.event, event_id=first.event_id)], 0))
        assert first.event_id in str(info.value)
        assert count(engine) == before

    def test_hooks_write_in_the_append_transaction(self, engine: Engine) -> None:
        seen: list[tuple[int, str]] = []

        def hook(conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
            n = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
            seen.extend((int(n), r.type) for r in recorded)

        store = EventStore(engine, hooks=[FunctionHook(hook)])
        store.append(StreamAppend(sid(), [created(), started()], 0))
        assert seen == [(2, "RunCreated"), (2, "RunStarted")]

    def test_failing_hook_rolls_the_append_back(self, engine: Engine) -> None:
        def hook(conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
            raise RuntimeError("projection broke")

        store = EventStore(engine, hooks=[FunctionHook(hook)])
        with pytest.raises(RuntimeError):
            store.append(StreamAppend(sid(), [created()], 0))
        assert count(engine) == 0

    def test_transaction_groups_appends_and_own_writes(self, store: EventStore,
                                                       engine: Engine) -> None:
        a, b = sid(), sid()
        with pytest.raises(ZeroDivisionError), store.transaction() as tx:
            tx.append(StreamAppend(a, [created()], 0))
            tx.append(StreamAppend(b, [created()], 0))
            raise ZeroDivisionError
        assert count(engine) == 0
        with store.transaction() as tx:
            tx.append(StreamAppend(a, [created()], 0))
            tx.append(StreamAppend(a, [started()], 1))
        assert store.stream_version(a) == 2

    def test_deferred_writes_are_seen_in_the_transaction_and_commit_with_it(
            self, store: EventStore, engine: Engine) -> None:
        keys = idempotency_keys
        now = datetime(2026, 1, 1, tzinfo=UTC)

        def row(key: str) -> dict[str, object]:
            return {"scope": "s", "key": key, "fingerprint": "f", "status": "completed",
                    "result": {"k": key}, "locked_until": None, "expires_at": now,
                    "created_at": now}

        stream = sid()
        with store.transaction() as tx:
            tx.append(StreamAppend(stream, [created()], 0))
            tx.defer(keys.insert(), [row("a"), row("b")])
            seen = tx.conn.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one()
            tx.defer(keys.insert(), [row("c")])
        assert seen == 2
        with engine.connect() as conn:
            stored = conn.execute(sa.select(keys.c.key, keys.c.result, keys.c.expires_at)
                                  .order_by(keys.c.key)).all()
        assert [tuple(r) for r in stored] == [
            ("a", {"k": "a"}, now), ("b", {"k": "b"}, now), ("c", {"k": "c"}, now)]

        other = sid()  # a deferred write that fails at commit takes the append with it
        with pytest.raises(sa.exc.IntegrityError if engine.dialect.name == "sqlite"
                           else psycopg.errors.UniqueViolation), store.transaction() as tx:
            tx.append(StreamAppend(other, [created()], 0))
            tx.defer(keys.insert(), [row("a")])
        assert store.stream_version(other) == 0

        with pytest.raises(ZeroDivisionError), store.transaction() as tx:
            tx.append(StreamAppend(other, [created()], 0))
            tx.defer(keys.insert(), [row("d")])
            raise ZeroDivisionError
        assert store.stream_version(other) == 0
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(keys)).scalar_one() == 3

    def test_deferred_appends_commit_with_their_hooks_rows_and_writes(
            self, logging_store: EventStore, engine: Engine) -> None:
        """`append_deferred` + `defer`: on PostgreSQL one statement; the positions that
        hook rows hold (as a number, inside a text) are the events' own, as an eager
        append writes them."""
        store = logging_store
        run, other = sid(), sid()
        eager = store.append(StreamAppend(sid(), [created()], 0))  # positions are not 1, 2 ...
        with store.transaction() as tx:
            first = tx.append_deferred(StreamAppend(run, [created(), started()], 0))
            second = tx.append_deferred(StreamAppend(other, [created()], 0))
            tx.defer(idempotency_keys.insert(), [key_row("deferred")])
            with pytest.raises(RuntimeError, match="not appended yet"):
                first.recorded  # noqa: B018
        with store.transaction() as tx:
            step = tx.append_deferred(StreamAppend(run, [completed_step("a")], 2))
        recorded = [*first.recorded, *second.recorded, *step.recorded]
        assert recorded == [*store.read_stream(run)[:2], *store.read_stream(other),
                            store.read_stream(run)[2]]
        assert logged(engine) == as_logged([*eager, *recorded])
        with engine.connect() as conn:
            keys = conn.execute(sa.select(idempotency_keys.c.key)).scalars().all()
        assert keys == ["deferred"]

    def test_deferred_append_off_its_expected_version_writes_nothing(
            self, logging_store: EventStore, engine: Engine) -> None:
        store = logging_store
        run, fresh = sid(), sid()
        first = created()
        store.append(StreamAppend(run, [first], 0))
        before = _row_counts(engine)
        with pytest.raises(ConcurrencyError) as info, store.transaction() as tx:
            tx.append_deferred(StreamAppend(run, [started()], 5))  # ahead of the stream
            tx.defer(idempotency_keys.insert(), [key_row("lost")])
            tx.notify("ledgerflow_test", "lost")
        assert (info.value.stream, info.value.expected, info.value.actual) == (run, 5, 1)
        with pytest.raises(ConcurrencyError) as info, store.transaction() as tx:
            tx.append_deferred(StreamAppend(fresh, [created()], 0))
            tx.append_deferred(StreamAppend(run, [created()], 0))  # behind it
            tx.defer(idempotency_keys.insert(), [key_row("lost")])
        assert (info.value.stream, info.value.expected, info.value.actual) == (run, 0, 1)
        with pytest.raises(DuplicateEventId), store.transaction() as tx:
            tx.append_deferred(StreamAppend(fresh, [created()], 0))
            tx.append_deferred(StreamAppend(sid(), [NewEvent(first.event,
                                                             event_id=first.event_id)], 0))
        assert _row_counts(engine) == before
        assert store.stream_version(fresh) == 0

        with pytest.raises(ZeroDivisionError), store.transaction() as tx:
            tx.append_deferred(StreamAppend(fresh, [created()], 0))
            raise ZeroDivisionError
        assert store.stream_version(fresh) == 0

    def test_deferred_append_is_written_before_a_read_or_an_eager_append(
            self, logging_store: EventStore, engine: Engine) -> None:
        store = logging_store
        run = sid()
        with store.transaction() as tx:
            pending = tx.append_deferred(StreamAppend(run, [created()], 0))
            seen = tx.conn.execute(sa.select(sa.func.count()).select_from(events)
                                   .where(events.c.stream_id == run)).scalar_one()
            assert [r.version for r in pending.recorded] == [1]
            tx.append_deferred(StreamAppend(run, [started()]))  # no expected version
            tx.append(StreamAppend(run, [completed_step("a")], 2))
        assert seen == 1
        assert [r.type for r in store.read_stream(run)] == [
            "RunCreated", "RunStarted", "StepCompleted"]
        assert logged(engine) == as_logged(store.read_stream(run))

    def test_concurrent_deferred_appends_to_one_stream_one_wins_each_version(
            self, logging_store: EventStore, engine: Engine) -> None:
        store = logging_store
        stream = sid()

        def append(version: int) -> None:
            with store.held_connection(), store.transaction() as tx:
                tx.append_deferred(StreamAppend(stream, [started()], version))

        race_one_stream(store, stream, append)
        assert logged(engine) == as_logged(store.read_stream(stream))  # no loser's row

    def test_nul_in_event_data_is_refused_and_nothing_written(self, store: EventStore,
                                                               engine: Engine) -> None:
        before = count(engine)
        bad = NewEvent(ev.RunCreated(workflow_id="w", workflow_version="1", input="a\x00"))
        with pytest.raises(InvalidEvent, match=r"NUL character .* in its data"):
            store.append(StreamAppend(sid(), [created()], 0), StreamAppend(sid(), [bad], 0))
        with pytest.raises(InvalidEvent, match="in its metadata"):
            store.append(StreamAppend(sid(), [NewEvent(ev.RunStarted(worker="w"),
                                                       metadata={"actor": "a\x00"})], 0))
        with pytest.raises(InvalidEvent, match="in its stream id"):
            store.append(StreamAppend("run\x00", [created()], 0))
        assert count(engine) == before

    def test_text_that_is_not_unicode_is_refused_and_nothing_written(
            self, store: EventStore, engine: Engine) -> None:
        """An unpaired surrogate (Python allows it in a str; UTF-8 and PostgreSQL do not),
        found by the projections' hypothesis test as a run input."""
        before = count(engine)
        bad = NewEvent(ev.RunCreated(workflow_id="w", workflow_version="1", input="a\ud800"))
        with pytest.raises(InvalidEvent, match=r"RunCreated .* cannot be stored .*surrogates"):
            store.append(StreamAppend(sid(), [created()], 0), StreamAppend(sid(), [bad], 0))
        with pytest.raises(InvalidEvent, match="cannot be stored"):
            store.append(StreamAppend(sid(), [NewEvent(ev.RunStarted(worker="w"),
                                                       metadata={"actor": "\udfff"})], 0))
        with pytest.raises(InvalidEvent, match="cannot be stored"):
            store.append(StreamAppend("run\ud800", [created()], 0))
        with pytest.raises(InvalidEvent, match="cannot be stored"), store.transaction() as tx:
            tx.append_deferred(StreamAppend(sid(), [bad], 0))
        assert count(engine) == before

    def test_an_event_over_the_size_limit_is_refused_and_nothing_written(
            self, engine: Engine) -> None:
        """`max_event_bytes` counts the event's data and metadata JSON as stored (UTF-8
        bytes); a larger event is refused before any statement, in an eager and in a
        deferred append alike, naming the event, its stream, its size and the limit."""
        with hook_log_created(engine):
            store = EventStore(engine, hooks=[PositionLog()], max_event_bytes=2_000)
            before = _row_counts(engine)
            meta = {"actor": "tester"}
            fits = NewEvent(ev.RunStarted(worker="é" * 950), metadata=meta)  # 2 bytes each
            data, meta_json = fits.event.model_dump_json(), '{"actor":"tester"}'
            size = len(data.encode()) + len(meta_json)
            grown = NewEvent(ev.RunStarted(worker="é" * (950 + (2_000 - size) // 2 + 1)),
                             metadata=meta)
            run = sid()
            with pytest.raises(EventTooLarge) as info:
                store.append(StreamAppend(sid(), [created()], 0),
                             StreamAppend(run, [grown], 0))
            assert (info.value.type_name, info.value.stream, info.value.limit) == (
                "RunStarted", run, 2_000)
            assert 2_000 < info.value.size <= 2_002
            assert f"RunStarted for stream {run!r} is {info.value.size} bytes" in str(
                info.value)
            assert "nothing was appended" in str(info.value)
            with pytest.raises(EventTooLarge), store.transaction() as tx:
                tx.append_deferred(StreamAppend(sid(), [created()], 0))
                tx.append_deferred(StreamAppend(run, [grown], 0))
            assert _row_counts(engine) == before
            assert size <= 2_000 and store.append(StreamAppend(run, [fits], 0))
            assert EventTooLarge.http_status == 413 and issubclass(EventTooLarge, InvalidEvent)

    def test_read_all_in_position_order_with_after_and_limit(self, store: EventStore) -> None:
        streams = [sid() for _ in range(5)]
        for stream in streams:
            store.append(StreamAppend(stream, [created(), started()], 0))
        everything = store.read_all(0, 100)
        positions = [r.position for r in everything]
        assert len(everything) == 10 and positions == sorted(positions)
        page = store.read_all(positions[3], 4)
        assert [r.position for r in page] == positions[4:8]
        assert store.read_all(positions[-1], 10) == []
        assert store.max_position() == positions[-1]
        assert [r.position for r in store.iter_all(0, batch=3)] == positions
        assert isinstance(everything[0].event, ev.RunCreated)

    def test_stored_old_schema_version_reads_back_upcast(self, store: EventStore,
                                                        engine: Engine) -> None:
        stream = sid()
        from ledgerflow.eventstore.schema import events

        with engine.begin() as conn:
            conn.execute(events.insert().values(
                stream_id=stream, version=1, event_id=str(uuid.uuid4()), type="RunCreated",
                schema_version=1, data={"workflow_id": "w", "workflow_version": "1",
                                        "tenant": "acme"},
                metadata={}, recorded_at=datetime.now(UTC)))
        [record] = store.read_stream(stream)
        assert isinstance(record.event, ev.RunCreated)
        assert record.event.tenant_meta == {"tenantId": "acme"}

    def test_concurrent_writers_to_one_stream_one_wins_each_version(self, engine: Engine) -> None:
        store = EventStore(engine)
        stream = sid()
        race_one_stream(store, stream, lambda version: store.append(
            StreamAppend(stream, [started()], version)))


def record_statements(monkeypatch: pytest.MonkeyPatch, method: str = "execute") -> list[str]:
    """The SQL of every `psycopg.Cursor.<method>` call from now on (until
    monkeypatch.undo)."""
    sent: list[str] = []
    original = getattr(psycopg.Cursor, method)

    def recorded(cur: psycopg.Cursor[Any], sql: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(sql))
        return original(cur, sql, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, method, recorded)
    return sent


def one_statement_transactions(store: EventStore, sent: list[str]) -> str:
    """A trigger-like transaction (deferred append, deferred write, notice) on a pooled
    connection, then two step-like ones on a held connection: on PostgreSQL each must
    be ONE statement in `sent` (from `record_statements`). Returns the run (version 4)."""
    run = sid()
    with store.transaction() as tx:
        tx.append_deferred(StreamAppend(run, [created(), started()], 0))
        tx.defer(idempotency_keys.insert(), [key_row("k")])
        tx.notify("ledgerflow_test", "x")
    assert len(sent) == 1 and sent[0].startswith("WITH v AS"), sent
    with store.held_connection():
        for version in (2, 3):
            sent.clear()
            with store.transaction() as tx:
                tx.append_deferred(StreamAppend(run, [completed_step(f"s{version}")], version))
            assert len(sent) == 1, sent
    return run


def race_one_stream(store: EventStore, stream: str,
                    append: Callable[[int], object]) -> list[int]:
    """Four writers, ten tries each, `append(version read)` to one new stream: every
    version is taken once, by one winner; returns the stream's versions."""
    store.append(StreamAppend(stream, [created()], 0))
    outcomes: list[str] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(10):
            try:
                append(store.stream_version(stream))
                result = "ok"
            except ConcurrencyError:
                result = "conflict"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = [r.version for r in store.read_stream(stream)]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) == 1 + outcomes.count("ok")
    return versions


class IdempotencyContract:
    @pytest.fixture
    def engine(self) -> Engine:
        raise NotImplementedError

    def test_acquire_replay_in_progress_conflict(self, engine: Engine) -> None:
        keys = IdempotencyKeys(engine)
        key = sid()
        assert keys.acquire("trigger", key, "fp1") == Acquired()
        assert keys.acquire("trigger", key, "fp1") == InProgress()
        keys.complete("trigger", key, {"runId": "r1"})
        assert keys.acquire("trigger", key, "fp1") == Replay({"runId": "r1"})
        with pytest.raises(IdempotencyConflict, match=key):
            keys.acquire("trigger", key, "other body")
        assert keys.acquire("other-scope", key, "fp2") == Acquired()

    def test_release_lets_the_next_caller_run(self, engine: Engine) -> None:
        keys = IdempotencyKeys(engine)
        key = sid()
        assert keys.acquire("s", key, "f") == Acquired()
        keys.release("s", key)
        assert keys.acquire("s", key, "f") == Acquired()

    def test_complete_in_the_callers_transaction_rolls_back_with_it(self, engine: Engine) -> None:
        keys = IdempotencyKeys(engine)
        key = sid()
        keys.acquire("s", key, "f")
        with pytest.raises(RuntimeError), engine.begin() as conn:
            keys.complete("s", key, {"x": 1}, conn=conn)
            raise RuntimeError("append failed")
        assert keys.acquire("s", key, "f") == InProgress()

    def test_expiry_and_stale_lease(self, engine: Engine) -> None:
        now = [datetime(2026, 1, 1, tzinfo=UTC)]
        keys = IdempotencyKeys(engine, clock=lambda: now[0], ttl=timedelta(hours=1),
                               lease=timedelta(seconds=30))
        done, stuck = sid(), sid()
        keys.acquire("s", done, "f")
        keys.complete("s", done, 1)
        keys.acquire("s", stuck, "f")
        now[0] += timedelta(seconds=31)
        assert keys.acquire("s", stuck, "f") == Acquired()  # holder's lease ran out
        assert keys.acquire("s", done, "f") == Replay(1)
        now[0] += timedelta(hours=2)
        assert keys.purge_expired() == 2
        assert keys.acquire("s", done, "new body") == Acquired()
