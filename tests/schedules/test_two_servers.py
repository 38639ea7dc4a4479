"""Two servers on their own engines (connection pools) and schedulers, real clock, real
PostgreSQL: an `everySeconds=1` schedule for 10 s starts exactly one run per fire time,
no gaps, no duplicates."""

from __future__ import annotations

import time
from datetime import timedelta
from itertools import pairwise

import sqlalchemy as sa
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Scheduler, Schedules
from ledgerflow.domain import schedules as sch
from ledgerflow.eventstore import EventStore, create_engine
from ledgerflow.eventstore.schema import events
from ledgerflow.eventstore.store import utcnow
from tests.schedules.conftest import make_registry


def test_two_schedulers_start_one_run_per_fire_time(pg_engine: SAEngine, pg_url: str) -> None:
    dbs = [create_engine(pg_url) for _ in range(2)]
    servers = [Schedules(EventStore(db), make_registry(), utcnow) for db in dbs]
    schedulers = [Scheduler(s, poll_interval=0.2) for s in servers]
    try:
        servers[0].create("tick", sch.ScheduleSpec(workflow_id="quick", every_seconds=1,
                                                   overlap="allow"))
        for scheduler in schedulers:
            scheduler.start()
        time.sleep(10)
    finally:
        for scheduler in schedulers:
            scheduler.stop()
    stop = utcnow()
    fired = [r.event for r in servers[1].store.read_stream(sch.stream_id("tick"))
             if isinstance(r.event, sch.ScheduleFired)]
    times = [f.fire_time for f in fired]
    assert len(times) >= 8, times  # ten seconds, on a noisy machine
    assert len(set(times)) == len(times), "a fire time started twice"
    gaps = {(b - a).total_seconds() for a, b in pairwise(times)}
    assert gaps == {1.0}, f"fire times are not consecutive seconds: {times}"
    assert times[-1] >= stop - timedelta(seconds=3)  # and none missing at the end
    with pg_engine.connect() as conn:
        runs = conn.execute(sa.select(events.c.stream_id).where(
            events.c.type == "RunCreated")).scalars().all()
    assert sorted(runs) == sorted(f.run_id for f in fired)
    assert sorted(runs) == [sch.run_id("tick", t) for t in times]
    for db in dbs:
        db.dispose()
