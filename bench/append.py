"""Append and read throughput of the event store on PostgreSQL (a benchmark, not a test).

Measured in one run, against two baselines on the same database:
- raw: a SQLAlchemy Core insert of the same rows into a table of the same shape,
  in the same transaction pattern (the ceiling for any store on this server);
- eventsourcing: the `eventsourcing` library's Application saving aggregates.
And the audit: events read from the store and checked against their hash chains, per second.

Run with `bash bench/run append`. Ends with `BENCH <figure> <value>` lines.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from ledgerflow.domain import events as ev
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend, create_engine
from ledgerflow.eventstore.chain import verify_each
from ledgerflow.eventstore.database import create_database
from ledgerflow.eventstore.migrations import MIGRATIONS, upgrade

SINGLE, BATCHES, BATCH, PER_WRITER, WRITERS = 2000, 500, 10, 500, 8
SERVER = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench")
DBNAME = "ledgerflow_bench_append"


def fresh_database() -> str:
    return create_database(SERVER, DBNAME, replace=True)


def step_event(i: int) -> NewEvent:
    return NewEvent(
        ev.StepCompleted(step_id=f"step-{i % 3}", result={"ok": True, "n": i}, attempt=1),
        metadata=run_metadata("checkout", "1", "acme", correlation_id=str(uuid.uuid4())),
    )


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_threads(work: Callable[[int], None], n: int) -> float:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


# ------------------------------------------------------------------------ raw ceiling

def raw_table(engine: sa.Engine) -> sa.Table:
    md = sa.MetaData()
    table = sa.Table(
        "raw_events", md,
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("type", sa.String(120), nullable=False),
        sa.Column("schema_version", sa.SmallInteger, nullable=False),
        sa.Column("data", sa.dialects.postgresql.JSONB, nullable=False),
        sa.Column("metadata", sa.dialects.postgresql.JSONB, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("stream_id", "version"),
    )
    md.create_all(engine)
    return table


def raw_rows(stream: str, events: list[NewEvent]) -> list[dict[str, object]]:
    now = datetime.now(UTC)
    return [{"stream_id": stream, "version": v, "event_id": e.event_id, "type": "StepCompleted",
             "schema_version": 1, "data": e.event.model_dump(mode="json"),
             "metadata": e.metadata, "recorded_at": now} for v, e in enumerate(events, 1)]


def raw_append(engine: sa.Engine, table: sa.Table, stream: str, events: list[NewEvent]) -> None:
    with engine.begin() as conn:
        conn.execute(table.insert(), raw_rows(stream, events))


# --------------------------------------------------------------------- eventsourcing

def eventsourcing_app(url: str) -> object:
    from eventsourcing.application import Application

    parsed = sa.engine.make_url(url)
    os.environ.update({
        "PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": str(parsed.database),
        "POSTGRES_HOST": str(parsed.host), "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": str(parsed.username), "POSTGRES_PASSWORD": "",
        "CREATE_TABLE": "y", "POSTGRES_POOL_SIZE": "10",
    })
    return Application()


def eventsourcing_runs(app: object) -> tuple[float, float]:
    from eventsourcing.domain import Aggregate, event

    class Run(Aggregate):
        @event("Created")
        def __init__(self, n: int) -> None:
            self.n = n

        @event("StepCompleted")
        def step(self, i: int) -> None:
            self.n = i

    save = app.save  # type: ignore[attr-defined]
    single = timed(lambda: [save(Run(i)) for i in range(SINGLE)] and None)

    def batches() -> None:
        for i in range(BATCHES):
            run = Run(i)
            for j in range(BATCH - 1):
                run.step(j)
            save(run)

    return rate(SINGLE, single), rate(BATCHES * BATCH, timed(batches))


# ------------------------------------------------------------------------------ read

def read_passes(store: EventStore, total: int) -> list[float]:
    """Seconds for three full decoded reads of the store (the first warms the connection)."""
    passes = []
    for _ in range(3):
        start = time.perf_counter()
        after, decoded = 0, 0
        while True:
            chunk = store.read_all(after, 5000)
            if not chunk:
                break
            decoded += len(chunk)
            after = chunk[-1].position
        passes.append(time.perf_counter() - start)
        assert decoded == total, (decoded, total)
    return passes


def read_in_this_process(url: str, total: int) -> None:
    """`--read URL TOTAL`: a fresh reader process, as a catch-up projector runs."""
    print(" ".join(f"{p:.6f}" for p in read_passes(EventStore(create_engine(url)), total)))


def audit(store: EventStore) -> int:
    """Read the whole store as stored (in pages) and check every stream's hash chain, as
    `ledgerflow audit verify --all` does; how many events."""
    verdicts = list(verify_each(store.iter_stored()))
    assert all(v.verified for v in verdicts), [v for v in verdicts if not v.verified][:1]
    return sum(v.events for v in verdicts)


# ------------------------------------------------------------------------------ main

def main() -> None:
    url = fresh_database()
    engine = create_engine(url, pool_size=WRITERS + 2)
    upgrade(engine, MIGRATIONS)
    table = raw_table(engine)
    store = EventStore(engine)

    def ours_single() -> None:
        for i in range(SINGLE):
            store.append(StreamAppend(str(uuid.uuid4()), [step_event(i)], 0))

    def raw_single() -> None:
        for i in range(SINGLE):
            raw_append(engine, table, str(uuid.uuid4()), [step_event(i)])

    def ours_batches() -> None:
        for _ in range(BATCHES):
            store.append(StreamAppend(str(uuid.uuid4()), [step_event(j) for j in range(BATCH)], 0))

    def raw_batches() -> None:
        for _ in range(BATCHES):
            raw_append(engine, table, str(uuid.uuid4()), [step_event(j) for j in range(BATCH)])

    def ours_writer(_: int) -> None:
        for i in range(PER_WRITER):
            store.append(StreamAppend(str(uuid.uuid4()), [step_event(i)], 0))

    def raw_writer(_: int) -> None:
        for i in range(PER_WRITER):
            raw_append(engine, table, str(uuid.uuid4()), [step_event(i)])

    raw_single_s, ours_single_s = timed(raw_single), timed(ours_single)  # warm both first
    raw_single_s, ours_single_s = timed(raw_single), timed(ours_single)
    raw_batch_s, ours_batch_s = timed(raw_batches), timed(ours_batches)
    raw_8w_s, ours_8w_s = in_threads(raw_writer, WRITERS), in_threads(ours_writer, WRITERS)

    total = store.max_position()
    with engine.begin() as conn:  # what autovacuum would have done by now on a live system
        conn.execute(sa.text("ANALYZE events"))
    passes = read_passes(store, total)
    child = subprocess.run([sys.executable, __file__, "--read", url, str(total)],
                           check=True, capture_output=True, text=True).stdout.split()
    child_passes = [float(x) for x in child]
    read_s = min(child_passes)
    decoded = total

    audit_start = time.perf_counter()
    audited = audit(store)
    audit_s = time.perf_counter() - audit_start

    es_single, es_batch = eventsourcing_runs(eventsourcing_app(url))

    a_eps, a_raw = rate(SINGLE, ours_single_s), rate(SINGLE, raw_single_s)
    b_eps, b_raw = rate(BATCHES * BATCH, ours_batch_s), rate(BATCHES * BATCH, raw_batch_s)
    n8 = WRITERS * PER_WRITER
    c_eps, c_raw = rate(n8, ours_8w_s), rate(n8, raw_8w_s)
    d_eps = rate(decoded, read_s)
    e_eps = rate(audited, audit_s)
    print(f"(a) {SINGLE} single-event appends, 1 writer: ledgerflow {a_eps:,.0f}/s, "
          f"raw {a_raw:,.0f}/s, eventsourcing {es_single:,.0f}/s")
    print(f"    4x eventsourcing would be {4 * es_single:,.0f}/s: "
          f"{4 * es_single / a_raw:.1f}x the raw single-writer ceiling measured here "
          "(one commit per event; no store can pass it)")
    print(f"(b) {BATCHES} appends x {BATCH} events: ledgerflow {b_eps:,.0f}/s, raw {b_raw:,.0f}/s,"
          f" eventsourcing {es_batch:,.0f}/s")
    print(f"(c) {WRITERS} writers x {PER_WRITER}: ledgerflow {c_eps:,.0f}/s, raw {c_raw:,.0f}/s")
    print(f"(d) read_all decoded, {decoded:,} events, 3 passes each: reader process "
          + ", ".join(f"{decoded / p:,.0f}/s" for p in child_passes)
          + "; inside the writer process " + ", ".join(f"{decoded / p:,.0f}/s" for p in passes))
    print(f"(e) audit of the whole store, {audited:,} events (read in pages + verify): "
          f"{e_eps:,.0f} events/s")
    print(f"BENCH append_1w_eps {a_eps:.0f}")
    print(f"BENCH append_1w_vs_raw {a_eps / a_raw:.2f}")
    print(f"BENCH append_1w_vs_eventsourcing {a_eps / es_single:.2f}")
    print(f"BENCH append10_eps {b_eps:.0f}")
    print(f"BENCH append10_vs_raw {b_eps / b_raw:.2f}")
    print(f"BENCH append_8w_eps {c_eps:.0f}")
    print(f"BENCH append_8w_vs_raw {c_eps / c_raw:.2f}")
    print(f"BENCH read_all_decoded_eps {d_eps:.0f}")
    print(f"BENCH audit_verify_eps {e_eps:.0f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--read":
        read_in_this_process(sys.argv[2], int(sys.argv[3]))
    else:
        main()
