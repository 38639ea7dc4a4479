"""`Metrics`: ledgerflow's Prometheus families, on a registry of its own.

Interface: `Metrics(store, clock=, overdue_after=, cache_seconds=)` is an
`Observer` (hand it to the `Engine`, which hands it to the executor) and
`render() -> bytes` is the Prometheus text exposition (`CONTENT_TYPE`), served as
`GET /metrics` by the API and on `--metrics-port` by worker and relay hosts
(`serve_metrics`).

Families (the README's "Operating ledgerflow" lists them for users):

- per process, counted as runs and steps end here:
  `ledgerflow_runs_finished_total{workflow,status}`,
  `ledgerflow_step_duration_seconds{workflow,step,outcome}` (outcome: completed|failed);
  a supervisor of worker processes adds its children's (`count_children`, see
  `children`);
- read from the store (`store_figures`), so true across processes, cached for
  `cache_seconds` (a scrape every second costs one reading every few seconds):
  `ledgerflow_runs{status}`, `ledgerflow_queue_depth{queue}`,
  `ledgerflow_outbox_pending`, `ledgerflow_outbox_dead`,
  `ledgerflow_outbox_oldest_pending_seconds`, `ledgerflow_projection_lag_events{projection}`,
  `ledgerflow_runs_overdue`, `ledgerflow_leases_expired`.

`ledgerflow_queue_depth{queue}`: one series per queue with due runs waiting, and
always `queue="default"`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ledgerflow.domain import events as ev
from ledgerflow.eventstore.store import Clock, EventStore, utcnow
from ledgerflow.observability.children import ChildrenDirectory, ProcessFamilies
from ledgerflow.observability.store_figures import Figures, read_figures
from ledgerflow.runtime.observe import Observer

CONTENT_TYPE = CONTENT_TYPE_LATEST
DEFAULT_QUEUE = "default"
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class StoreGauges(Collector):
    """The gauges read from the store, at most once per `cache_seconds`."""

    def __init__(self, store: EventStore, clock: Clock, overdue_after: timedelta,
                 cache_seconds: float) -> None:
        self._store, self._clock, self._overdue = store, clock, overdue_after
        self._ttl = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, Figures] | None = None

    def figures(self) -> Figures:
        with self._lock:
            at = time.monotonic()
            if self._cached is None or at - self._cached[0] >= self._ttl:
                self._cached = (at, read_figures(self._store, self._clock, self._overdue))
            return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        f = self.figures()
        runs = GaugeMetricFamily("ledgerflow_runs", "Runs in the store by status.",
                                 labels=["status"])
        for status, count in f.runs.items():
            runs.add_metric([status], count)
        yield runs
        depth = GaugeMetricFamily("ledgerflow_queue_depth",
                                  "Due runs waiting for a worker.", labels=["queue"])
        for queue, count in sorted({DEFAULT_QUEUE: 0, **f.queue_depths}.items()):
            depth.add_metric([queue], count)
        yield depth
        yield GaugeMetricFamily("ledgerflow_outbox_pending", "Outbox rows not yet published.",
                                value=f.outbox_pending)
        yield GaugeMetricFamily("ledgerflow_outbox_dead", "Outbox rows dead-lettered.",
                                value=f.outbox_dead)
        yield GaugeMetricFamily("ledgerflow_outbox_oldest_pending_seconds",
                                "Age of the oldest unpublished outbox row (0: none).",
                                value=f.outbox_oldest_pending_seconds)
        lag = GaugeMetricFamily("ledgerflow_projection_lag_events",
                                "Events a projection has not applied yet.",
                                labels=["projection"])
        for name, events in f.projection_lag.items():
            lag.add_metric([name], events)
        yield lag
        yield GaugeMetricFamily("ledgerflow_runs_overdue",
                                "Due runs no worker has claimed past the overdue threshold.",
                                value=f.runs_overdue)
        yield GaugeMetricFamily("ledgerflow_leases_expired",
                                "Runs whose worker's lease expired, not yet taken over.",
                                value=f.leases_expired)


class Metrics(Observer):
    """ledgerflow's metrics for one process: an `Observer` and a registry to scrape."""

    def __init__(self, store: EventStore, *, clock: Clock = utcnow,
                 overdue_after: timedelta = timedelta(seconds=60),
                 cache_seconds: float = 5.0) -> None:
        self.registry = CollectorRegistry(auto_describe=False)  # no store read at start
        own = CollectorRegistry(auto_describe=False)
        self.runs_finished = Counter(
            "ledgerflow_runs_finished", "Runs that ended in this process, by outcome.",
            ["workflow", "status"], registry=own)
        self.step_duration = Histogram(
            "ledgerflow_step_duration_seconds", "Step attempts executed in this process.",
            ["workflow", "step", "outcome"], buckets=STEP_BUCKETS, registry=own)
        self.process_families = ProcessFamilies(own)
        self.registry.register(self.process_families)
        self._steps: dict[tuple[str, str, str], Histogram] = {}
        self._runs: dict[tuple[str, str], Counter] = {}
        self.store_gauges = StoreGauges(store, clock, overdue_after, cache_seconds)
        self.registry.register(self.store_gauges)

    def step_ended(self, workflow: str, event: ev.StepCompleted | ev.StepFailed,
                   now: datetime) -> None:
        if event.started_at is None:  # seeded by a resume: not executed here
            return
        outcome = "completed" if isinstance(event, ev.StepCompleted) else "failed"
        seconds = max(0.0, (now - event.started_at).total_seconds())
        key = (workflow, event.step_id, outcome)
        series = self._steps.get(key)
        if series is None:  # `labels()` takes a lock and checks its labels: once a series
            series = self._steps[key] = self.step_duration.labels(*key)
        series.observe(seconds)

    def run_ended(self, workflow: str, status: str) -> None:
        key = (workflow, str(status))
        series = self._runs.get(key)
        if series is None:
            series = self._runs[key] = self.runs_finished.labels(*key)
        series.inc()

    def count_children(self, directory: ChildrenDirectory) -> None:
        """Add to this process's counters and histograms those of the worker children
        counting into `directory` (see `children`)."""
        self.process_families.directory = directory.path

    def render(self) -> bytes:
        """The Prometheus text exposition of every family."""
        return generate_latest(self.registry)


def serve_metrics(metrics: Metrics, port: int, host: str = "0.0.0.0") -> WSGIServer:
    """Serve `GET /metrics` on `port` from a daemon thread (worker and relay hosts);
    `.shutdown()` the returned server to stop."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
