"""`read_all` never skips an event that commits late, and writers do not serialise.

PostgreSQL hands out positions from a sequence at insert time, but transactions
commit in any order. These tests hold transactions open on purpose.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Sequence

from sqlalchemy.engine import Connection, Engine

from ledgerflow.domain import events as ev
from ledgerflow.eventstore import EventStore, FunctionHook, NewEvent, RecordedEvent, StreamAppend


def _event() -> NewEvent:
    return NewEvent(ev.SignalReceived(name="s", payload={"n": 1}))


def test_late_commit_is_not_skipped_and_other_writers_do_not_wait(pg_engine: Engine) -> None:
    held = threading.Event()
    release = threading.Event()

    def hold(conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        if recorded[0].stream_id == "slow":
            held.set()
            assert release.wait(30), "test did not release the slow writer"

    store = EventStore(pg_engine, hooks=[FunctionHook(hold)], read_wait=0.05)
    slow = threading.Thread(target=lambda: store.append(StreamAppend("slow", [_event()], 0)))
    slow.start()
    assert held.wait(30)
    # The slow transaction holds position 1 and is still open; another writer commits 2.
    fast = store.append(StreamAppend("fast", [_event()], 0))
    assert fast[0].position == 2  # it did not wait for the open transaction
    assert store.read_all(0, 10) == []  # 2 is committed, but 1 may still commit: wait
    release.set()
    slow.join(30)
    seen = store.read_all(0, 10)
    assert [(r.position, r.stream_id) for r in seen] == [(1, "slow"), (2, "fast")]


def test_rolled_back_position_is_a_permanent_hole_not_a_stall(pg_engine: Engine) -> None:
    store = EventStore(pg_engine)
    store.append(StreamAppend("a", [_event()], 0))
    try:
        with store.transaction() as tx:
            tx.append(StreamAppend("b", [_event()], 0))
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    store.append(StreamAppend("c", [_event()], 0))
    # The first read may stop before the hole until it is settled (every writer with
    # an older xid in the cluster has ended); draining must get past it, once.
    assert [r.stream_id for r in drain(store)] == ["a", "c"]


def drain(store: EventStore, deadline: float = 30.0) -> list[RecordedEvent]:
    """Read everything up to the store's current end, as a tailing reader would."""
    end, after, seen = store.max_position(), 0, []
    stop = time.monotonic() + deadline
    while after < end and time.monotonic() < stop:
        batch = store.read_all(after, 10)
        seen.extend(batch)
        after = batch[-1].position if batch else after
    return seen


def test_tailing_reader_sees_every_event_once_in_order(pg_engine: Engine) -> None:
    writers, per_writer = 6, 25
    rng = random.Random(7)
    delays = {i: [rng.uniform(0, 0.02) for _ in range(per_writer)] for i in range(writers)}

    def linger(conn: Connection, recorded: Sequence[RecordedEvent]) -> None:
        writer, n = recorded[0].stream_id.split(":")[0], recorded[0].version
        time.sleep(delays[int(writer)][n - 1])  # a long transaction, positions already taken

    store = EventStore(pg_engine, hooks=[FunctionHook(linger)], read_wait=5.0)
    reader_store = EventStore(pg_engine, read_wait=5.0)
    done = threading.Event()

    def write(i: int) -> None:
        stream = f"{i}:{uuid.uuid4()}"
        for n in range(per_writer):
            store.append(StreamAppend(stream, [_event()], n))

    seen: list[RecordedEvent] = []

    def read() -> None:
        after = 0
        while True:
            finished = done.is_set()
            batch = reader_store.read_all(after, 7)
            seen.extend(batch)
            if batch:
                after = batch[-1].position
            elif finished:
                return
            else:
                time.sleep(0.002)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join(60)
    positions = [r.position for r in seen]
    assert len(seen) == writers * per_writer
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert {r.event_id for r in seen} == {r.event_id for r in reader_store.read_all(0, 10_000)}
