"""Claims under queue limits (100,000 waiting runs over 1,000 concurrency keys), then
schedule fire lag.

Setup (bulk, not measured: what is measured is the claim, not the trigger): 100,000
runs of one workflow in queue "bench", 100 per key over 1,000 keys, written with COPY:
their RunCreated events (hash-chained as the store chains them, shaped after one run
the store created) and their `run_queue` rows with their fairness turns, then ANALYZE.
The claims use the app's store (inline projections and outbox writer); the bulk runs
have no projection rows (RunStarted updates none), alike in every phase.

Claim phases, each on Q_THREADS threads (4) taking a sample window of Q_CLAIMS claims
(3,000) between them, out of the 100,000 (the backlog is never drained):
- plain: the queue has no limits;
- limited: the same queue with a per-key limit of 1 (`QueueBook.change`, as an operator
  would at run time).
A claim is `claim_next` as a worker makes it (the one claim statement, the run's
stream read, RunStarted appended, commit); then the thread ends the run's lease at
once (its queue row removed, its slots given back: one statement, in a transaction of
its own, not timed but inside the phase's wall time), as an execution of zero length
would. A warm-up of Q_WARMUP claims (200) comes first; `VACUUM ANALYZE run_queue`
before each phase (the rows the previous one removed, as autovacuum would). Phases
alternate (plain, limited, plain, limited); each figure is the median of its two.

Figures: `q_claims_per_s` (limited), `q_claims_vs_plain` (limited / plain claims per
second, target >= 0.7), `q_claim_p99_ms` (limited: the 99th percentile of one
claim's latency, target <= 20), `q_floor_p99_ms` (what the machine gives at that
moment: the p99 of a one-row UPDATE and commit on as many threads; a claim is four
statements and a commit, so on a loaded machine its p99 is several floors); then
`bench/schedules.py`'s phase (100 schedules at everySeconds=5 for 60 s on two
servers): `sched_fire_lag_p99_ms` (target <= 500).

Run: `LEDGERFLOW_BENCH_DB=ledgerflow_bench_queues bash bench/run queues` (env Q_RUNS,
Q_KEYS, Q_CLAIMS, Q_THREADS, Q_WARMUP override the sizes; SCHED_BENCH_SECONDS=0 skips
the schedules). About 3 minutes.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
CLAIMS = int(os.environ.get("Q_CLAIMS", "3000"))
WARMUP = int(os.environ.get("Q_WARMUP", "200"))
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


def floor_phase(db: sa.engine.Engine) -> list[float]:
    """The machine's floor for a claim's latency: CLAIMS one-row transactions (UPDATE
    of one of THREADS rows, commit) on THREADS threads; each one's seconds."""
    with db.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS bench_floor (id int PRIMARY KEY, n int)"))
        conn.execute(sa.text("TRUNCATE bench_floor"))
        conn.execute(sa.text("INSERT INTO bench_floor SELECT i, 0 FROM generate_series(0, :k) i"),
                     {"k": THREADS - 1})
    latencies: list[float] = []
    lock = threading.Lock()

    def work(row: int) -> None:
        mine = []
        for _ in range(CLAIMS // THREADS):
            began = time.perf_counter()
            with db.begin() as conn:
                conn.execute(sa.text("UPDATE bench_floor SET n = n + 1 WHERE id = :i"), {"i": row})
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def claim_phase(engine: Engine, claims: int = CLAIMS) -> tuple[float, list[float]]:
    """`claims` claims on THREADS threads: claims per second and each claim's seconds."""
    latencies: list[float] = []
    lock = threading.Lock()
    left = [claims]

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
    return claims / (time.perf_counter() - began), latencies


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
    claim_phase(engine, WARMUP)
    rates: dict[str, list[float]] = {"plain": [], "limited": []}
    tails: dict[str, list[float]] = {"plain": [], "limited": []}
    for name in ("plain", "limited", "plain", "limited"):
        engine.queues.change(QUEUE, {"per_key_concurrency": 1 if name == "limited" else None})
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE run_queue"))
        rate, latencies = claim_phase(engine)
        rates[name].append(rate)
        tails[name].append(p99(latencies) * 1000)
        print(f"{name}: {rate:.0f} claims/s, p50 {statistics.median(latencies) * 1000:.2f} ms,"
              f" p99 {p99(latencies) * 1000:.2f} ms (load {os.getloadavg()[0]:.1f})")
    floor = floor_phase(db)
    print(f"floor (one-row UPDATE + commit, {THREADS} threads): p50 "
          f"{statistics.median(floor) * 1000:.2f} ms, p99 {p99(floor) * 1000:.2f} ms "
          f"(load {os.getloadavg()[0]:.1f})")
    db.dispose()
    limited = statistics.median(rates["limited"])
    return {"q_claims_per_s": limited,
            "q_claims_vs_plain": limited / statistics.median(rates["plain"]),
            "q_claim_p99_ms": statistics.median(tails["limited"]),
            "q_floor_p99_ms": p99(floor) * 1000}


def schedule_figures() -> dict[str, float]:
    """`bench/schedules.py`'s phase (loaded by path: bench/ is not a package)."""
    if float(os.environ.get("SCHED_BENCH_SECONDS", "60")) <= 0:
        return {}
    spec = importlib.util.spec_from_file_location(
        "bench_schedules", Path(__file__).with_name("schedules.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures: dict[str, float] = module.fire_lag_figures()
    return figures


def main() -> None:
    figures = {**queue_figures(), **schedule_figures()}
    print(f"load average {os.getloadavg()[0]:.2f}")
    for name, value in figures.items():
        print(f"BENCH {name} {value:.3f}")


if __name__ == "__main__":
    main()
