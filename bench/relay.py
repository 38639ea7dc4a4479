"""Relay benchmark (not a test): outbox relay vs a bare kafka-python producer, and lag.

Run with `bash bench/run relay` (PostgreSQL + Tansu). Measures, in one run:
  1. relay_eps: 50,000 pending outbox rows relayed to the broker (events/s);
  2. the same 50,000 messages (value, key, headers) sent by a bare KafkaProducer
     with the same settings (acks=all, idempotence) -> relay_vs_bare;
  3. end-to-end lag (append commit -> broker ack) with the relay running while
     1,000 events/s are appended (2 events per append transaction) for 10 s.
Also prints (as info, not a figure) the OutboxWriter's overhead per append.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from ledgerflow.domain.events import RunCompleted, RunCreated, RunStarted, StepCompleted
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend, create_engine
from ledgerflow.eventstore.schema import metadata
from ledgerflow.migrations import upgrade_all
from ledgerflow.outbox import KafkaPublisher, OutboundMessage, OutboxWriter, Outcome, Relay, outbox
from ledgerflow.outbox._relay import to_message

URL = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                     "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench")
BOOTSTRAP = os.environ.get("LEDGERFLOW_BENCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
ROWS = int(os.environ.get("RELAY_BENCH_ROWS", "50000"))
LAG_RATE = 1000  # events/s appended during the lag phase
LAG_SECONDS = 10.0
ROWS_PENDING = [0]


def reset(engine: sa.Engine) -> None:
    upgrade_all(engine)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables
                      if t.name != "schema_migrations")
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def run_events(meta: dict[str, str]) -> list[NewEvent]:
    events = [RunCreated(workflow_id="checkout", workflow_version="1", input={"order": 1}),
              RunStarted(worker="w1"),
              *[StepCompleted(step_id=f"s{i}", result={"i": i, "note": "x" * 80})
                for i in range(3)],
              RunCompleted(result={"ok": True})]
    return [NewEvent(e, metadata=meta) for e in events]


def fill(store: EventStore, rows: int) -> None:
    meta = run_metadata("checkout", "1", "acme")
    per_run = len(run_events(meta))
    runs = rows // per_run
    for start in range(0, runs, 50):
        with store.transaction() as tx:
            tx.append(*[StreamAppend(str(uuid.uuid4()), run_events(meta), 0)
                        for _ in range(min(50, runs - start))])


def pending_messages(engine: sa.Engine) -> list[OutboundMessage]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox).order_by(outbox.c.id)).all()
    return [to_message(row) for row in rows]


def bench_relay(engine: sa.Engine, topic: str) -> tuple[float, int]:
    publisher = KafkaPublisher(BOOTSTRAP)
    relay = Relay(engine, publisher, batch_size=1000)
    started = time.perf_counter()
    published = 0
    empty_rounds = 0
    while published < ROWS_PENDING[0] and empty_rounds < 100:
        stats = relay.run_once()
        published += stats.published
        empty_rounds = empty_rounds + 1 if stats.claimed == 0 else 0
        if stats.claimed == 0:
            time.sleep(0.01)
    elapsed = time.perf_counter() - started
    publisher.close()
    return published / elapsed, published


def bench_bare(messages: Sequence[OutboundMessage], topic: str) -> float:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True,
                             linger_ms=5, allow_auto_create_topics=False)
    producer.send(topic, b"warm-up").get(timeout=30)
    started = time.perf_counter()
    for m in messages:
        producer.send(topic, value=m.value, key=m.key.encode() if m.key else None,
                      headers=m.headers)
    producer.flush(timeout=120)
    elapsed = time.perf_counter() - started
    producer.close()
    return len(messages) / elapsed


class AckTimes:
    """Publisher wrapper: when the broker acknowledged each event id."""

    def __init__(self, inner: KafkaPublisher) -> None:
        self.inner = inner
        self.acked: dict[str, float] = {}

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        outcomes = self.inner.publish(messages)
        now = time.time()
        for m, out in zip(messages, outcomes, strict=True):
            if out is None:
                self.acked.setdefault(dict(m.headers)["idempotency-key"].decode(), now)
        return outcomes

    def close(self) -> None:
        self.inner.close()


def append_steadily(store: EventStore, seconds: float) -> dict[str, float]:
    """Append LAG_RATE events/s for `seconds` from four threads; commit time by event id."""
    committed: dict[str, float] = {}
    lock = threading.Lock()
    meta = run_metadata("checkout", "1", "acme")
    per_tx, appenders = 5, 4  # four appender threads, each on its own schedule
    interval = per_tx * appenders / LAG_RATE
    started = time.monotonic()

    def appender() -> None:
        tick = 0
        run_id, version = str(uuid.uuid4()), 0
        while time.monotonic() - started < seconds:
            delay = started + tick * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            events = [NewEvent(StepCompleted(step_id=f"s{version + i}", result={"i": i}),
                               metadata=meta) for i in range(per_tx)]
            recorded = store.append(StreamAppend(run_id, events, version))
            at = time.time()
            with lock:
                for e in recorded:
                    committed[e.event_id] = at
            version += per_tx
            if version >= 20:
                run_id, version = str(uuid.uuid4()), 0
            tick += 1

    writers = [threading.Thread(target=appender) for _ in range(appenders)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    return committed


def append_process(topic: str, out: str) -> None:
    """`--append TOPIC FILE`: the application appending, in a process of its own."""
    store = EventStore(create_engine(URL), hooks=[OutboxWriter(topic=topic)])
    Path(out).write_text(json.dumps(append_steadily(store, LAG_SECONDS)))


def bench_lag(engine: sa.Engine, topic: str) -> tuple[float, float, int]:
    """Lag from append commit (in an appender process) to broker ack (relay, this one)."""
    publisher = AckTimes(KafkaPublisher(BOOTSTRAP))
    relay = Relay(engine, publisher, batch_size=500, idle_wait=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,))
    thread.start()
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "committed.json")
        subprocess.run([sys.executable, __file__, "--append", topic, out], check=True)
        committed: dict[str, float] = json.loads(Path(out).read_text())
    deadline = time.monotonic() + 60
    while len(publisher.acked) < len(committed) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    publisher.close()
    lags = sorted((publisher.acked[k] - at) * 1000 for k, at in committed.items()
                  if k in publisher.acked)
    p50 = statistics.median(lags)
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    rate = len(committed) / LAG_SECONDS
    print(f"lag phase: {len(committed)} events appended ({rate:.0f}/s), "
          f"{len(lags)} acknowledged")
    return p50, p99, len(committed) - len(lags)


def writer_overhead(engine: sa.Engine) -> float:
    """Mean extra time per 1-event append with the OutboxWriter hook on (ms)."""
    meta = run_metadata("checkout", "1", "acme")

    def time_appends(store: EventStore, n: int = 2000) -> float:
        run_id = str(uuid.uuid4())
        started = time.perf_counter()
        for v in range(n):
            store.append(StreamAppend(run_id, [NewEvent(RunStarted(worker="w"),
                                                        metadata=meta)], v))
        return (time.perf_counter() - started) / n

    plain, hooked = EventStore(engine), EventStore(engine, hooks=[OutboxWriter()])
    time_appends(plain, 200)
    samples = [time_appends(hooked) - time_appends(plain) for _ in range(3)]
    return statistics.median(samples) * 1000


def main() -> None:
    engine = create_engine(URL)
    reset(engine)
    suffix = uuid.uuid4().hex[:8]
    store = EventStore(engine, hooks=[OutboxWriter(topic=f"bench-relay-{suffix}")])
    print(f"filling {ROWS} outbox rows ...")
    fill(store, ROWS)
    messages = pending_messages(engine)
    print(f"{len(messages)} pending rows")
    ROWS_PENDING[0] = len(messages)

    relay_eps, published = bench_relay(engine, f"bench-relay-{suffix}")
    print(f"relay: {published} events, {relay_eps:,.0f} events/s")
    bare_eps = bench_bare(messages, f"bench-bare-{suffix}")
    print(f"bare kafka-python producer: {len(messages)} events, {bare_eps:,.0f} events/s")

    reset(engine)
    p50, p99, missing = bench_lag(engine, f"bench-lag-{suffix}")
    print(f"lag append commit -> broker ack: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
          f"{f', {missing} never acknowledged' if missing else ''}")
    reset(engine)
    print(f"info: OutboxWriter overhead per 1-event append: {writer_overhead(engine):.3f} ms")

    print(f"BENCH relay_eps {relay_eps:.0f}")
    print(f"BENCH relay_vs_bare {relay_eps / bare_eps:.3f}")
    print(f"BENCH relay_lag_p50_ms {p50:.1f}")
    print(f"BENCH relay_lag_p99_ms {p99:.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--append":
        append_process(sys.argv[2], sys.argv[3])
    else:
        main()
