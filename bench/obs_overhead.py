"""Observability's cost, as figures of the workflows bench (`bench/workflows.py`).

- `wf_obs_overhead`: conc8 throughput of the 3-step workflow with observability off
  (the runtime's no-op observer) divided by the same with metrics and tracing on
  (`Metrics` + `Tracing` on an OpenTelemetry SDK `TracerProvider` with a batch
  processor and an exporter that drops the spans), measured in the same run, phases
  alternating off/spans/on `max(REPEATS, 7)` times: the figure is the median of the
  ratios of each pair of neighbouring phases, which cancels the machine's drift
  between pairs (the ratio of the two medians is printed beside it). Target <= 1.10.
  On a machine shared with other work the phases' throughput drifts by more than the
  cost measured (+-30% between phases at load 8; +-5% between pairs on a quiet
  machine), so `wf_obs_cpu_overhead` is printed too: this process's CPU per
  workflow on / off (client, worker threads and the exporter thread are all in
  it). Where the time goes per 3-step workflow (eager: the run span the trigger
  starts, 3 step spans, the histogram and counter): ~630 Python calls (cProfile), of
  which the SDK's span creation and attribute checks are four fifths; a step span
  with its four attributes is ~140 calls, ~3x more time in the engine than in a
  loop of spans alone.
- `wf_obs_spans_overhead`: the floor under the first figure: off / a phase with the
  same spans recorded by the SDK (`Tracing` on a `TracerProvider` with no span
  processor: no export, no metrics, nothing stored beyond the run's `traceparent`),
  in the same alternation (off, spans, on), median of the pairs' ratios. What the
  design's spans cost before anything is exported: 1.09-1.12 in four runs on this
  2-core VM (2026-11-30); with the export and metrics the figure above also has on
  top, `wf_obs_overhead` <= 1.10 is out of reach without fewer spans.
- `metrics_scrape_ms`: the median time of a `/metrics` rendering (`Metrics.render`,
  store gauges read afresh: cache 0) with 100,000 runs in the store (run views and
  their `run_status_counts` inserted in bulk: the gauges read `run_status_counts`,
  `run_views`, `run_queue`, `outbox`; then VACUUM ANALYZE, the state autovacuum keeps
  a busy table in). Target <= 50. The process's first rendering (the statement
  compiled and planned) is printed beside it.

Run alone (a reduced run): `WF_ONLY=obs WF_N=200 WF_REPEATS=1 bash bench/run workflows`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

SCRAPE_RUNS = 100_000
PAIRS = 7
"""Off/spans/on rounds at least (each phase ~1.5 s on a quiet machine)."""


def _tracing(exported: bool = True) -> Any:
    """`Tracing` on an SDK provider whose batch processor drops the spans (`exported`),
    or that has no span processor at all (spans recorded, handed to nothing)."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from ledgerflow.observability.tracing import Tracing

    class Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    if exported:
        provider.add_span_processor(BatchSpanProcessor(Drop()))
    return Tracing(provider), provider


def overhead(engine_sa: sa.engine.Engine, url: str, registry: Any,
             client: Callable[[Any], Callable[[int], None]],
             measure: Callable[..., dict[str, float]], repeats: int) -> float:
    """conc8 throughput off / on (the same registry's `bench3` workflow; `client(engine)`:
    one client's call, as the inline phase makes it)."""
    from ledgerflow import Engine, Worker
    from ledgerflow._app import build_store
    from ledgerflow.observability.metrics import Metrics
    from ledgerflow.runtime.observe import NO_OBSERVER, Observers
    from ledgerflow.settings import Settings

    store = build_store(engine_sa, Settings(database_url=url))
    tracing, provider = _tracing()
    spans_only, bare = _tracing(exported=False)
    observers = {"off": NO_OBSERVER, "spans": spans_only,
                 "on": Observers(Metrics(store), tracing)}
    per_s: dict[str, list[float]] = {label: [] for label in observers}
    cpu_ms: dict[str, list[float]] = {label: [] for label in observers}
    for _ in range(max(repeats, PAIRS)):
        for label, observer in observers.items():
            engine = Engine(store, registry, observer=observer)
            worker = Worker(engine, threads=8, poll_interval=1.0).start()
            one = client(engine)
            for i in range(20):
                one(i)
            figures = measure(f"obs {label} conc8", one, 8)
            per_s[label].append(figures["per_s"])
            cpu_ms[label].append(figures["cpu_ms"])
            worker.stop()
    provider.shutdown()
    bare.shutdown()
    off, on = statistics.median(per_s["off"]), statistics.median(per_s["on"])
    paired = statistics.median(a / b for a, b in zip(per_s["off"], per_s["on"], strict=True))
    floor = statistics.median(a / b for a, b in zip(per_s["off"], per_s["spans"], strict=True))
    cpu = statistics.median(b / a for a, b in zip(cpu_ms["off"], cpu_ms["on"], strict=True))
    print(f"observability off {off:.1f}/s, on {on:.1f}/s (medians of {len(per_s['on'])}; "
          f"their ratio {off / on:.3f}x): overhead {paired:.3f}x (median of the pairs' "
          f"ratios); this process's CPU per workflow on / off {cpu:.3f}x")
    print(f"spans recorded, no span processor, no metrics: {statistics.median(per_s['spans']):.1f}"
          f"/s, overhead {floor:.3f}x (the floor of the spans the design asks for)")
    print(f"BENCH wf_obs_cpu_overhead {cpu:.3f}")
    print(f"BENCH wf_obs_spans_overhead {floor:.3f}")
    return paired


def _fill_runs(engine_sa: sa.engine.Engine, count: int) -> None:
    from ledgerflow.eventstore.postgres import BACKEND
    from ledgerflow.projections._counts import count_batches
    from ledgerflow.projections._schema import run_status_counts, run_views

    now = datetime.now(UTC)
    statuses = ("completed", "completed", "completed", "failed", "canceled")
    rows = [{"run_id": f"scrape-{i:06d}", "workflow_id": "bench3", "workflow_version": "1",
             "status": statuses[i % len(statuses)], "children": [], "tenant_meta": {},
             "tags": [], "created_at": now, "updated_at": now, "version": 4} for i in range(count)]
    with engine_sa.begin() as conn:
        for start in range(0, count, 10_000):
            conn.execute(run_views.insert(), rows[start:start + 10_000])
        # counted as the run views projection counts finished runs
        for statement, counts in count_batches(
                BACKEND, run_status_counts, ((r["run_id"], r["status"]) for r in rows)):
            conn.execute(statement, counts)


def conn_count(engine_sa: sa.engine.Engine, sql: str) -> int:
    with engine_sa.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def scrape_ms(engine_sa: sa.engine.Engine, url: str) -> float:
    """Median ms of a /metrics rendering with SCRAPE_RUNS more runs in the store."""
    from ledgerflow._app import build_store
    from ledgerflow.observability.metrics import Metrics
    from ledgerflow.settings import Settings

    _fill_runs(engine_sa, SCRAPE_RUNS)
    # autovacuum's steady state (visibility map set: the counts are index-only scans)
    with engine_sa.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    metrics = Metrics(build_store(engine_sa, Settings(database_url=url)), cache_seconds=0)
    t0 = time.perf_counter()
    metrics.render()  # the process's first: SQL compiled, statement planned
    first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        text = metrics.render()
        times.append((time.perf_counter() - t0) * 1000)
    completed = conn_count(engine_sa, "SELECT count(*) FROM run_views WHERE status = 'completed'")
    assert f'ledgerflow_runs{{status="completed"}} {completed}.0'.encode() in text, text
    total = conn_count(engine_sa, "SELECT count(*) FROM run_views")
    ms = statistics.median(times)
    print(f"/metrics scrape with {total} runs in the store: median {ms:.1f} ms "
          f"(p90 {sorted(times)[int(len(times) * 0.9)]:.1f} ms; "
          f"the process's first {first:.1f} ms)")
    return ms
