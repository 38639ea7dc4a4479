"""Claims under queue limits: 100,000 waiting runs over 1,000 concurrency keys.

Setup (bulk, not measured): 100,000 runs of one workflow in queue "bench", 100 per
key over 1,000 keys, created through the store (RunCreated; without the projection
and outbox hooks, to keep the setup short) and their `run_queue` rows inserted in
batches, each with its fairness turn. The claims use the app's store (inline
projections and outbox writer).

Phases, each on Q_THREADS threads (4) claiming Q_CLAIMS runs (4,000) between them:
- plain: the queue has no limits;
- limited: the same queue with a per-key limit of 1 (`PUT`-equivalent
  `QueueBook.change`, as an operator would at run time).
A claim is `claim_next` as a worker makes it (the one claim statement, the run's
stream read, RunStarted appended, commit); then the thread ends the run's lease at
once (its queue row removed, its slots given back, in a transaction of its own, not
timed), as an execution of zero length would. Phases alternate (plain, limited,
plain, limited); each figure is the median of its two.

Figures: `q_claims_per_s` (limited), `q_claims_vs_plain` (limited / plain claims per
second), `q_claim_p99_ms` (limited: the 99th percentile of one claim's latency).

Run: `LEDGERFLOW_BENCH_DB=ledgerflow_bench_queues bash bench/run queues` (env Q_RUNS,
Q_KEYS, Q_CLAIMS, Q_THREADS override the sizes).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from ledgerflow import Engine, WorkflowRegistry
from ledgerflow._app import build_store
from ledgerflow.domain import events as ev
from ledgerflow.eventstore import EventStore, chain, create_engine
from ledgerflow.eventstore.records import NewEvent, StreamAppend
from ledgerflow.eventstore.schema import events, metadata
from ledgerflow.migrations import upgrade_all
from ledgerflow.runtime import queue
from ledgerflow.runtime.executor import claim_next
from ledgerflow.settings import Settings

URL = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                     "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench")
RUNS = int(os.environ.get("Q_RUNS", "100000"))
KEYS = int(os.environ.get("Q_KEYS", "1000"))
CLAIMS = int(os.environ.get("Q_CLAIMS", "4000"))
THREADS = int(os.environ.get("Q_THREADS", "4"))
QUEUE = "bench"


def reset(db: sa.engine.Engine) -> None:
    """Every ledgerflow table emptied (the bench database is the bench's own)."""
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables
                      if t.name != "schema_migrations")
    with db.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def populate(engine: Engine) -> None:
    """RUNS runs over KEYS keys, all due, written in bulk (COPY): their RunCreated
    events (hash-chained as the store chains them) and their queue rows with turns.
    One run is created through the store first; the others copy its event's shape."""
    engine.queues.change(QUEUE, {})
    template = ev.RunCreated(workflow_id="bench", workflow_version="1", input={"n": 0},
                             queue=QUEUE, concurrency_key="key-0")
    with EventStore(engine.store.engine).transaction() as tx:
        tx.append(StreamAppend("bench-template", [NewEvent(template)], 0))
    with engine.store.engine.connect() as conn:
        shape = conn.execute(sa.select(events.c.type, events.c.schema_version, events.c.data)
                             .where(events.c.stream_id == "bench-template")).one()
    due = datetime.now(UTC) - timedelta(minutes=5)
    recorded = chain.recorded_text(due)
    raw = engine.store.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy("COPY events (stream_id, version, event_id, type, schema_version, "  # type: ignore[attr-defined]
                      "data, metadata, recorded_at, hash) FROM STDIN") as copy:
            for n in range(RUNS):
                run_id, event_id = f"bench-{n:06d}", str(uuid.uuid4())
                data = {**shape.data, "input": {"n": n}, "concurrency_key": f"key-{n % KEYS}"}
                prefix = chain.canonical_prefix(run_id, event_id, shape.type,
                                                shape.schema_version, data, {}, recorded)
                copy.write_row((run_id, 1, event_id, shape.type, shape.schema_version,
                                orjson.dumps(data).decode(), "{}", due,
                                chain.link("", prefix, 1)))
        with cur.copy("COPY run_queue (run_id, workflow_id, priority, due_at, created_at, "  # type: ignore[attr-defined]
                      "queue, concurrency_key, turn, holds) FROM STDIN") as copy:
            for n in range(RUNS):
                copy.write_row((f"bench-{n:06d}", "bench", 0, due, due, QUEUE,
                                f"key-{n % KEYS}", n // KEYS + 1, 0))
        cur.execute("INSERT INTO queue_keys (queue, key, executing) "
                    "SELECT %s, 'key-' || k, 0 FROM generate_series(0, %s) AS k",
                    (QUEUE, KEYS - 1))
        raw.commit()
    finally:
        raw.close()
    with engine.store.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))


def claim_phase(engine: Engine) -> tuple[float, list[float]]:
    """CLAIMS claims on THREADS threads: claims per second and each claim's seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    left = [CLAIMS]

    def work() -> None:
        mine: list[float] = []
        while True:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            began = time.perf_counter()
            claimed = claim_next(engine.runtime)
            mine.append(time.perf_counter() - began)
            if not claimed:
                continue
            with engine.store.transaction() as tx:
                queue.remove(tx, claimed.run_id, claimed.held)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return CLAIMS / (time.perf_counter() - began), latencies


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def queue_figures() -> dict[str, float]:
    """The queue phases (see the module); the figures they give."""
    db = create_engine(URL)
    upgrade_all(db)
    reset(db)
    registry = WorkflowRegistry()
    registry.register("bench", lambda ctx, data: data)
    engine = Engine(build_store(db, Settings(database_url=URL)), registry)
    began = time.perf_counter()
    populate(engine)
    print(f"populated {RUNS} runs over {KEYS} keys in {time.perf_counter() - began:.1f} s")
    rates: dict[str, list[float]] = {"plain": [], "limited": []}
    tails: dict[str, list[float]] = {"plain": [], "limited": []}
    for name in ("plain", "limited", "plain", "limited"):
        engine.queues.change(QUEUE, {"per_key_concurrency": 1 if name == "limited" else None})
        rate, latencies = claim_phase(engine)
        rates[name].append(rate)
        tails[name].append(p99(latencies) * 1000)
        print(f"{name}: {rate:.0f} claims/s, p50 {statistics.median(latencies) * 1000:.2f} ms,"
              f" p99 {p99(latencies) * 1000:.2f} ms")
    db.dispose()
    limited = statistics.median(rates["limited"])
    return {"q_claims_per_s": limited,
            "q_claims_vs_plain": limited / statistics.median(rates["plain"]),
            "q_claim_p99_ms": statistics.median(tails["limited"])}


def main() -> None:
    figures: dict[str, Any] = dict(queue_figures())
    # Schedules (h-schedules) add their phase here: figures["sched_fire_lag_p99_ms"] = ...
    for name, value in figures.items():
        print(f"BENCH {name} {value:.3f}")


if __name__ == "__main__":
    main()
