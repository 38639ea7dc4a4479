"""Dashboard render latency (a benchmark, not a test).

Loads 100,000 finished runs (4 events each, by COPY, then a projection rebuild) and
one 501-event run executed by the engine (so its outbox rows, journal and views are
the real ones), then renders, in process through the ASGI app (`TestClient`, no
network): the runs list (no filter, and filtered by status, workflow, tenant, tag:
each with the status counts) and the 501-event run's detail page (timeline, journal
with bars, delivery state, lineage), viewed again (as a person or the page's live
refresh does: what the run's stream fixes is kept between views) and as a first view
(nothing kept). Reports p50/p99 in milliseconds.

Run with `LEDGERFLOW_BENCH_DB=ledgerflow_bench_ui bash bench/run ui`
(`LEDGERFLOW_BENCH_UI_REUSE=1`: keep the loaded runs of an earlier run).
Ends with `BENCH ui_list_p99_ms`, `BENCH ui_detail_p99_ms`,
`BENCH ui_detail_first_view_p99_ms`.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ledgerflow import Context, WorkflowRegistry
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import EventStore, create_engine
from ledgerflow.eventstore.database import create_database
from ledgerflow.migrations import upgrade_all
from ledgerflow.projections import default_projections, rebuild

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench_ui"
RUNS = int(os.environ.get("LEDGERFLOW_BENCH_UI_RUNS", "100000"))
STEPS = 498  # + RunCreated, RunStarted, RunCompleted = 501 events
REQUESTS = int(os.environ.get("LEDGERFLOW_BENCH_UI_REQUESTS", "300"))
START = datetime(2024, 1, 1, tzinfo=UTC)


def _url() -> str:
    return os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL", DEFAULT_URL)


def _events(n: int) -> list[tuple[str, int, dict[str, Any]]]:
    return [
        ("RunCreated", 2, {"workflow_id": f"wf-{n % 7}", "workflow_version": "1",
                           "input": {"bookingId": n, "amount": n % 997},
                           "tenant_meta": {"tenantId": f"tenant-{n % 13}"},
                           "tags": ["bench", f"shard-{n % 5}"], "parent_run_id": None,
                           "parent_step_id": None, "rerun_of": None, "resumed_from": None,
                           "resume_from_step": None, "seed_results": {}, "priority": 0,
                           "not_before": None}),
        ("RunStarted", 1, {"worker": "worker-1"}),
        ("StepCompleted", 1, {"step_id": "reserve", "result": {"reservation": n},
                              "attempt": 1, "started_at": None}),
        ("RunCompleted", 1, {"result": {"ok": True, "bookingId": n}}),
    ]


def _rows() -> Iterator[tuple[Any, ...]]:
    moment = START
    for n in range(RUNS):
        run_id = str(uuid.uuid4())
        meta = json.dumps(run_metadata(f"wf-{n % 7}", "1", f"tenant-{n % 13}",
                                       correlation_id=run_id, actor="worker-1"))
        for version, (type_name, schema, data) in enumerate(_events(n), start=1):
            moment += timedelta(microseconds=50)
            yield (run_id, version, str(uuid.uuid4()), type_name, schema, json.dumps(data),
                   meta, moment)


def load() -> None:
    """A fresh database with `RUNS` finished runs, their projections rebuilt."""
    url = sa.engine.make_url(_url())
    engine = create_engine(create_database(_url(), str(url.database), replace=True))
    upgrade_all(engine)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy("COPY events (stream_id, version, event_id, type, schema_version,"  # type: ignore[attr-defined]
                      " data, metadata, recorded_at) FROM STDIN") as copy:
            for row in _rows():
                copy.write_row(row)
        cur.execute("ANALYZE events")
        raw.commit()
    finally:
        raw.close()
    rebuild(EventStore(engine), default_projections())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")  # as autovacuum leaves a settled store
    engine.dispose()


def long_run(ctx: Context, _input: Any) -> int:
    """`STEPS` steps, one after the other."""
    total = 0
    for i in range(STEPS):
        total += ctx.step(f"step-{i:03d}", lambda i=i: i)
    return total


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(client: Any, paths: list[str], before: Callable[[], None] = lambda: None,
          ) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each request (CPU: this process, client included);
    `before` runs before each one, untimed."""
    for path in paths[:20]:  # warm up
        assert client.get(path).status_code == 200, path
    walls, cpus = [], []
    for i in range(REQUESTS):
        path = paths[i % len(paths)]
        before()
        started, cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return walls, cpus


def loaded() -> bool:
    """The bench database holds the runs already (LEDGERFLOW_BENCH_UI_REUSE=1 keeps it)."""
    if os.environ.get("LEDGERFLOW_BENCH_UI_REUSE") != "1":
        return False
    try:
        engine = create_engine(_url())
        with engine.connect() as conn:
            runs = conn.exec_driver_sql("SELECT count(*) FROM run_views").scalar_one()
        engine.dispose()
    except sa.exc.SQLAlchemyError:
        return False
    return int(runs) >= RUNS


def main() -> None:
    from fastapi.testclient import TestClient

    from ledgerflow._app import Ledgerflow
    from ledgerflow.api import create_app
    from ledgerflow.api.ui._detail import kept
    from ledgerflow.settings import Settings

    started = time.perf_counter()
    if not loaded():
        load()
    print(f"{RUNS} runs loaded in {time.perf_counter() - started:.1f}s", flush=True)
    registry = WorkflowRegistry()
    registry.register("bench.long", long_run)
    sink = os.path.join(tempfile.mkdtemp(), "events.jsonl")
    lf = Ledgerflow.open(Settings(database_url=_url(), sink_path=sink), registry=registry,
                         upgrade=False)
    try:
        big = lf.engine.trigger("bench.long", None).run_id
        lf.engine.run_due()
        lf.relay().run_once()
        events = len(lf.store.read_stream(big))
        print(f"the long run has {events} events", flush=True)
        with TestClient(create_app(lf)) as client:
            lists, list_cpu = timed(client, ["/ui", "/ui?status=completed", "/ui?workflow=wf-3",
                                   "/ui?tenant=tenant-5", "/ui?tag=shard-2"])
            details, detail_cpu = timed(client, [f"/ui/runs/{big}"])
            # the first view of a run: nothing of it kept from an earlier view
            colds, cold_cpu = timed(client, [f"/ui/runs/{big}"], kept(lf).clear)
    finally:
        lf.close()
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    for name, samples, cpu in (("list", lists, list_cpu), ("detail", details, detail_cpu),
                               ("detail, first view", colds, cold_cpu)):
        print(f"{name}: p50 {statistics.median(samples):.1f} ms, "
              f"p99 {percentile(samples, 0.99):.1f} ms over {len(samples)} requests; "
              f"CPU p50 {statistics.median(cpu):.1f} ms")
    print(f"BENCH ui_list_p99_ms {percentile(lists, 0.99):.1f}")
    print(f"BENCH ui_detail_p99_ms {percentile(details, 0.99):.1f}")
    print(f"BENCH ui_detail_first_view_p99_ms {percentile(colds, 0.99):.1f}")


if __name__ == "__main__":
    main()
