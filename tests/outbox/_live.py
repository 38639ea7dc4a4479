"""A ledgerflow as `serve` runs it (a worker and a relay in this process) on PostgreSQL
and the session's broker, for the outage and failover tests."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledgerflow import Context, WorkflowRegistry
from ledgerflow._app import Ledgerflow
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore.schema import events
from ledgerflow.settings import Settings


def checkout_registry(step_seconds: float = 0.0) -> WorkflowRegistry:
    """One workflow of three steps (each taking `step_seconds`): six events per run."""
    registry = WorkflowRegistry()

    def work(result: Any) -> Any:
        time.sleep(step_seconds)
        return result

    @registry.workflow("checkout")
    def checkout(ctx: Context, data: Any) -> Any:
        reserved = ctx.step("reserve", work, {"order": data["order"]})
        paid = ctx.step("pay", work, {"paid": True})
        return ctx.step("ship", work, {**reserved, **paid})

    return registry


def live_settings(pg_url: str, bootstrap: str, **overrides: Any) -> Settings:
    """Settings of a ledgerflow on `pg_url` relaying to a fresh topic of `bootstrap`."""
    topic = f"lf-live-{uuid.uuid4().hex[:10]}"
    return Settings(database_url=pg_url, kafka_bootstrap=bootstrap, topic=topic,
                    dlq_topic=f"{topic}.dlq", **overrides)


@contextmanager
def running(settings: Settings, step_seconds: float = 0.0,
            **relay_options: Any) -> Iterator[Ledgerflow]:
    """A worker (two threads) and a relay thread, stopped when the block ends."""
    lf = Ledgerflow.open(settings, registry=checkout_registry(step_seconds), upgrade=False)
    relay = lf.relay(idle_wait=0.02, **relay_options)
    stop = threading.Event()
    relaying = threading.Thread(target=relay.run_forever, args=(stop,), name="test-relay")
    worker = lf.worker(threads=2, poll_interval=0.2).start()
    relaying.start()
    try:
        yield lf
    finally:
        stop.set()
        worker.stop()
        relaying.join(timeout=60)
        relay.publisher.close()
        lf.close()
    assert not relaying.is_alive(), "the relay did not stop"


def trigger_and_complete(lf: Ledgerflow, n: int, timeout_s: float = 60.0) -> list[str]:
    """Trigger `n` runs and wait until each completed; their ids."""
    runs = [lf.engine.trigger("checkout", {"order": i}).run_id for i in range(n)]
    for run_id in runs:
        state = lf.engine.wait(run_id, timeout=timeout_s, poll=0.1)
        assert state.status is RunStatus.COMPLETED, (run_id, state.status)
    return runs


def event_ids(engine: Engine, runs: list[str]) -> list[str]:
    """The recorded event ids of `runs`."""
    with engine.connect() as conn:
        return list(conn.execute(sa.select(events.c.event_id)
                                 .where(events.c.stream_id.in_(runs))).scalars())
