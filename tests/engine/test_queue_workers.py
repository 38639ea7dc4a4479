"""Queue limits across worker PROCESSES on PostgreSQL: 3 processes, 200 runs over 20
keys, per-key limit 2 and queue limit 5, raised to 8 while the runs execute. The
steps record their execution intervals; at no instant do more overlap than the limit
in force (per key: 2; per queue: 5 before the change was committed, 8 after), and
every run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Engine
from ledgerflow.eventstore import EventStore
from ledgerflow.projections import InlineProjections
from ledgerflow.projections._schema import run_views
from tests.engine import queue_proc

ROOT = Path(__file__).resolve().parents[2]
Interval = tuple[str, float, float]


def _intervals(out: Path) -> list[Interval]:
    found: list[Interval] = []
    for path in out.glob("intervals-*"):
        for line in path.read_text().splitlines():
            key, start, end = line.split()
            found.append((key, float(start), float(end)))
    return found


def _most_at_once(intervals: list[Interval]) -> int:
    """The largest number of intervals that overlap at one instant."""
    edges = sorted([(s, 1) for _, s, _ in intervals] + [(e, -1) for _, _, e in intervals],
                   key=lambda edge: (edge[0], edge[1]))  # an end before a start at a tie
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _completed(db: SAEngine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(run_views).where(
            run_views.c.status == "completed")).scalar_one())


def test_three_worker_processes_keep_queue_and_key_limits(pg_engine: SAEngine,
                                                          tmp_path: Path) -> None:
    url = pg_engine.url.render_as_string(hide_password=False)
    engine = Engine(EventStore(pg_engine, hooks=[InlineProjections()]), queue_proc.registry)
    engine.queues.known(fresh=True)  # the code's queue "limited" exists before any worker
    for n in range(200):
        engine.trigger("limited", {"key": f"k{n % 20}"}, concurrency_key=f"k{n % 20}",
                       eager=False)
    procs = [subprocess.Popen([sys.executable, "-m", "tests.engine.queue_proc", url,
                               str(tmp_path)], cwd=ROOT, env=dict(os.environ))
             for _ in range(3)]
    try:
        deadline = time.monotonic() + 240
        while len(_intervals(tmp_path)) < 40:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.05)
        raised_at = time.time()
        engine.queues.change("limited", {"concurrency": 8}, actor="test")
        changed_at = time.time()
        while _completed(pg_engine) < 200:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.1)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
    intervals = _intervals(tmp_path)
    assert len(intervals) == 200  # each run's step once: all complete
    for key in {k for k, _, _ in intervals}:
        assert _most_at_once([i for i in intervals if i[0] == key]) <= 2
    before = [i for i in intervals if i[1] < raised_at]
    after = [i for i in intervals if i[1] > changed_at]
    assert _most_at_once(before) <= 5
    assert _most_at_once(intervals) <= 8
    assert _most_at_once(after) > 5  # the raised limit applied without a restart
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT executing FROM queue_limits WHERE name = 'limited'")
                            ).scalar_one() == 0
        assert conn.execute(sa.text("SELECT max(executing) FROM queue_keys")).scalar_one() == 0
