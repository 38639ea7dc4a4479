"""Schedule fire lag (a benchmark, not a test).

Two "servers" (two `Ledgerflow` apps on their own connection pools, each with a worker
of 2 threads and its scheduler, as `ledgerflow worker` runs them) on PostgreSQL, 100
schedules at `everySeconds=5` for 60 s (every fire time of all 100 falls on the same
second: a burst of 100 runs every 5 s). Fire lag = when the fire's run was created
(the `recorded_at` of its ScheduleFired, written in the run's transaction) minus the
fire time. Reports p50 / p99 / max, fires and runs, and checks one run per fire time.

Run with `LEDGERFLOW_BENCH_DB=ledgerflow_bench_sched bash bench/run schedules`.
Ends with `BENCH sched_fire_lag_p99_ms <value>` (target <= 500). `bench/queues.py` runs
this phase too (`fire_lag_figures`), after its claims.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from ledgerflow import Ledgerflow, Settings, WorkflowRegistry
from ledgerflow.domain import schedules as sch
from ledgerflow.eventstore.database import create_database, drop_database

SERVER = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench")
SCHEDULES = int(os.environ.get("SCHED_BENCH_SCHEDULES", "100"))
SECONDS = float(os.environ.get("SCHED_BENCH_SECONDS", "60"))
EVERY = 5


def noop(ctx: Any, data: Any) -> Any:
    return data


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fire_lag_figures() -> dict[str, float]:
    """The phase (see the module) on a database of its own: {"sched_fire_lag_p99_ms": …}."""
    name = f"ledgerflow_bench_sched_{uuid.uuid4().hex[:8]}"
    url = create_database(SERVER, name)
    registry = WorkflowRegistry()
    registry.register("bench.noop", noop)
    settings = Settings(database_url=url, kafka_bootstrap=None,
                        sink_path=f"/tmp/{name}.jsonl")
    apps = [Ledgerflow.open(settings, registry=registry, upgrade=i == 0) for i in range(2)]
    try:
        schedules = apps[0].schedules
        assert schedules is not None
        for i in range(SCHEDULES):
            schedules.create(f"s{i:03d}", sch.ScheduleSpec(workflow_id="bench.noop",
                                                           input=i, every_seconds=EVERY))
        workers = [app.worker(threads=2) for app in apps]
        started = time.time()
        for worker in workers:
            worker.start()
        since = datetime.fromtimestamp(started, UTC)  # fires before: made while creating
        time.sleep(SECONDS)
        for worker in workers:
            worker.stop()
        elapsed = time.time() - started
        lags, runs, skipped = [], set(), 0
        for i in range(SCHEDULES):
            for recorded in apps[0].store.read_stream(sch.stream_id(f"s{i:03d}")):
                event = recorded.event
                if isinstance(event, sch.ScheduleFired) and event.fire_time >= since:
                    lags.append((recorded.recorded_at - event.fire_time).total_seconds() * 1000)
                    runs.add(event.run_id)
                elif isinstance(event, sch.ScheduleSkipped):
                    skipped += event.count
        expected = SCHEDULES * int(elapsed // EVERY)
        print(f"{SCHEDULES} schedules every {EVERY}s for {elapsed:.0f}s on 2 servers: "
              f"{len(lags)} fires (about {expected} fire times), {len(runs)} distinct runs, "
              f"{skipped} skipped (overlap: the previous run had not finished)")
        assert len(runs) == len(lags), "a fire time started two runs"
        print(f"fire lag ms: p50 {percentile(lags, 0.5):.1f}  p99 {percentile(lags, 0.99):.1f}"
              f"  max {max(lags):.1f}  mean {statistics.fmean(lags):.1f}")
        return {"sched_fire_lag_p99_ms": percentile(lags, 0.99)}
    finally:
        for app in apps:
            app.close()
        drop_database(SERVER, name)


def main() -> None:
    for name, value in fire_lag_figures().items():
        print(f"BENCH {name} {value:.1f}")


if __name__ == "__main__":
    main()
