"""Benchmark (not a test): rebuild every projection from 100k and 1M run events.

For each size, one child process bulk-loads the events into a fresh PostgreSQL
database with COPY (a fast loader, not the engine: 10 events per run, runs
interleaved in waves of 500 as concurrent runs would be), and another child
measures, in the same process, a bare `read_all` with decoding over all events
and then `projections.rebuild` of all projections, reporting its peak RSS
(VmHWM), so the RSS figure of each size is its own.

    bash bench/run projections            # or, with LEDGERFLOW_BENCH_DATABASE_URL set:
    /work/venv/bin/python bench/projections.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import EventStore, create_engine
from ledgerflow.eventstore.database import create_database
from ledgerflow.migrations import upgrade_all
from ledgerflow.projections import default_projections, rebuild

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/ledgerflow_bench_proj"
WAVE = 500
BATCH = 5000  # events per read_all call, for the bare read and the rebuild alike
START = datetime(2024, 1, 1, tzinfo=UTC)


def _url() -> str:
    """The bench database: dropped and recreated per size, so never the shared one
    (`..._proj` is appended to the name bench/run exports)."""
    url = sa.engine.make_url(os.environ.get("LEDGERFLOW_BENCH_DATABASE_URL", DEFAULT_URL))
    name = url.database or "ledgerflow_bench"
    if not name.endswith("_proj"):
        url = url.set(database=name + "_proj")
    return url.render_as_string(hide_password=False)


def _run_events(run_id: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    wake = (START + timedelta(seconds=n)).isoformat()
    error = {"type": "TimeoutError", "message": "gateway timed out", "step_id": "charge",
             "details": {}}
    return [
        ("RunCreated", {"workflow_id": f"wf-{n % 7}", "workflow_version": "1",
                        "input": {"bookingId": n, "amount": n % 997, "currency": "EUR"},
                        "tenant_meta": {"tenantId": f"tenant-{n % 13}"},
                        "tags": ["bench", f"shard-{n % 5}"], "parent_run_id": None,
                        "parent_step_id": None, "rerun_of": None, "resumed_from": None,
                        "resume_from_step": None, "seed_results": {}, "priority": 0,
                        "not_before": None}),
        ("RunStarted", {"worker": "worker-1"}),
        ("StepCompleted", {"step_id": "reserve", "result": {"reservation": n},
                           "attempt": 1, "started_at": None}),
        ("StepFailed", {"step_id": "charge", "attempt": 1, "error": error, "final": False,
                        "started_at": None}),
        ("RetryScheduled", {"step_id": "charge", "attempt": 2, "due_at": wake}),
        ("StepCompleted", {"step_id": "charge", "result": {"charged": n % 997},
                           "attempt": 2, "started_at": None}),
        ("RunSuspended", {"waitpoint": {"kind": "sleep", "name": "cool-off", "token_id": None,
                                        "wake_at": wake, "timeout_at": None}}),
        ("RunWoken", {"reason": "timer", "name": "cool-off"}),
        ("StepCompleted", {"step_id": "notify", "result": None, "attempt": 1,
                           "started_at": None}),
        ("RunCompleted", {"result": {"ok": True, "bookingId": n}}),
    ]


_SCHEMA = {"RunCreated": 2}


def _rows(events: int) -> Iterator[tuple[Any, ...]]:
    runs = events // 10
    moment = START
    for wave_start in range(0, runs, WAVE):
        wave = [(str(uuid.uuid4()), n) for n in range(wave_start, min(runs, wave_start + WAVE))]
        scripts = [_run_events(run_id, n) for run_id, n in wave]
        metas = [json.dumps(run_metadata(f"wf-{n % 7}", "1", f"tenant-{n % 13}",
                                         correlation_id=run_id, actor="worker-1"))
                 for run_id, n in wave]
        for index in range(10):
            for (run_id, _n), script, meta in zip(wave, scripts, metas, strict=True):
                moment += timedelta(microseconds=50)
                type_name, data = script[index]
                yield (run_id, index + 1, str(uuid.uuid4()), type_name,
                       _SCHEMA.get(type_name, 1), json.dumps(data), meta, moment)


def load(events: int) -> None:
    """Fresh database, migrated, with `events` run events loaded by COPY."""
    url = sa.engine.make_url(_url())
    engine = create_engine(create_database(_url(), str(url.database), replace=True))
    upgrade_all(engine)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy("COPY events (stream_id, version, event_id, type, schema_version,"  # type: ignore[attr-defined]
                      " data, metadata, recorded_at) FROM STDIN") as copy:
            for row in _rows(events):
                copy.write_row(row)
        cur.execute("ANALYZE events")
        raw.commit()
    finally:
        raw.close()
    engine.dispose()


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure() -> dict[str, float]:
    """Bare read_all with decoding, then a rebuild of every projection, in one process."""
    store = EventStore(create_engine(_url()))
    started, position, count = time.perf_counter(), 0, 0
    while batch := store.read_all(position, BATCH):
        count += len(batch)
        position = batch[-1].position
    read_s = time.perf_counter() - started
    report = rebuild(store, default_projections(), batch_size=BATCH)
    return {"events": count, "read_eps": count / read_s, "rebuild_eps":
            report.events / report.seconds, "rebuild_s": report.seconds,
            "peak_rss_mb": _peak_rss_mb()}


def _child(*args: str) -> str:
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                          text=True)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--load", type=int)
    parser.add_argument("--measure", action="store_true")
    args = parser.parse_args()
    if args.load:
        load(args.load)
        return
    if args.measure:
        print(json.dumps(measure()))
        return
    results: dict[int, dict[str, float]] = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        t0 = time.perf_counter()
        _child("--load", str(size))
        print(f"loaded {size:,} events in {time.perf_counter() - t0:.1f}s", flush=True)
        results[size] = json.loads(_child("--measure").strip().splitlines()[-1])
        r = results[size]
        print(f"{size:>9,} events: read_all+decode {r['read_eps']:,.0f} ev/s; rebuild "
              f"{r['rebuild_eps']:,.0f} ev/s ({r['rebuild_s']:.1f}s); "
              f"rebuild/read {r['rebuild_eps'] / r['read_eps']:.2f}; "
              f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    small, large = min(results), max(results)
    big = results[large]
    print(f"BENCH rebuild_eps {big['rebuild_eps']:.0f}")
    print(f"BENCH rebuild_vs_read {big['rebuild_eps'] / big['read_eps']:.3f}")
    print(f"BENCH rebuild_peak_rss_mb {big['peak_rss_mb']:.1f}")
    print(f"BENCH rebuild_rss_growth {big['peak_rss_mb'] / results[small]['peak_rss_mb']:.3f}")


if __name__ == "__main__":
    main()
