"""Async workflows: I/O-bound runs on one worker process, async vs sync with threads.

Workload: runs of a workflow with one step that waits 1 s on I/O (`await
asyncio.sleep(1)` in the async workflow's `async def` step; `time.sleep(1)` in the sync
twin's step). All runs are triggered into the queue first (no eager start), then one
`Worker` with the default 4 threads starts in this process and the clock runs until
every run completed (polled every 0.1 s from the run views).

- async: ASYNC_N (2,000) runs of the async workflow: they execute as coroutines on the
  worker's event loop, all at once.
- threads: SYNC_N (200) runs of the sync twin, with the same worker (4 threads: 4 runs
  at a time, so 2,000 of them would take 500 s; throughput is what is compared).

Figures: `async_runs_per_s` (runs / s from the worker's start to the last completion),
`async_vs_threads` (that / the sync twin's runs / s), `async_peak_rss_mb` (this
process's peak RSS at the end of the async phase, client included).

Run: `LEDGERFLOW_BENCH_DB=ledgerflow_bench_async bash bench/run async`.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from typing import Any

import sqlalchemy as sa

ASYNC_N = int(os.environ.get("ASYNC_N", "2000"))
SYNC_N = int(os.environ.get("SYNC_N", "200"))
URL = os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL",
                     "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench")


async def io_async() -> str:
    await asyncio.sleep(1.0)
    return "ok"


def io_sync() -> str:
    time.sleep(1.0)
    return "ok"


def fresh_app() -> Any:
    from ledgerflow import Ledgerflow, Settings, WorkflowRegistry
    from ledgerflow.eventstore.schema import metadata

    registry = WorkflowRegistry()

    @registry.workflow("io-async")
    async def io_async_wf(ctx: Any, data: Any) -> Any:
        return await ctx.step("io", io_async)

    @registry.workflow("io-sync")
    def io_sync_wf(ctx: Any, data: Any) -> Any:
        return ctx.step("io", io_sync)

    app = Ledgerflow.open(Settings(database_url=URL, kafka_bootstrap=None,
                                   sink_path="/dev/null"), registry=registry)
    with app.db.begin() as conn:
        names = [t.name for t in metadata.sorted_tables if t.name != "schema_migrations"]
        existing = set(sa.inspect(conn).get_table_names())
        conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{n}"' for n in names if n in existing)
                             + " RESTART IDENTITY CASCADE"))
    return app


def phase(app: Any, workflow: str, n: int) -> float:
    """Trigger `n` runs into the queue, start a default worker, wait until all
    completed; runs per second from the worker's start."""
    t0 = time.perf_counter()
    for i in range(n):
        app.engine.trigger(workflow, i, eager=False)
    print(f"{workflow}: {n} runs triggered in {time.perf_counter() - t0:.1f}s")
    worker = app.worker()  # the default: 4 threads
    start = time.perf_counter()
    worker.start()
    query = sa.text("SELECT count(*) FROM run_views WHERE workflow_id = :w AND status = "
                    "'completed'")
    try:
        done = 0
        while done < n:
            time.sleep(0.1)
            with app.db.connect() as conn:
                done = conn.execute(query, {"w": workflow}).scalar_one()
            if time.perf_counter() - start > 900:
                raise RuntimeError(f"{workflow}: only {done}/{n} completed after 900 s")
        elapsed = time.perf_counter() - start
    finally:
        worker.stop()
    per_s = n / elapsed
    print(f"{workflow}: {n} runs completed in {elapsed:.2f}s: {per_s:.1f} runs/s")
    return per_s


def main() -> None:
    app = fresh_app()
    try:
        async_per_s = phase(app, "io-async", ASYNC_N)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS after the async phase: {rss_mb:.0f} MB")
        sync_per_s = phase(app, "io-sync", SYNC_N)
    finally:
        app.close()
    print(f"BENCH async_runs_per_s {async_per_s:.1f}")
    print(f"BENCH async_vs_threads {async_per_s / sync_per_s:.2f}")
    print(f"BENCH async_peak_rss_mb {rss_mb:.0f}")


if __name__ == "__main__":
    main()
