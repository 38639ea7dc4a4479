"""PostgreSQL drops every connection of the database in the middle of load (as a
restart or a failover does): the worker and the relay carry on without a restart,
every run completes and every event reaches the topic."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import pytest
from sqlalchemy.engine import Engine

from ledgerflow.domain.errors import StoreUnavailable
from ledgerflow.domain.lifecycle import RunStatus
from tests._broker import read_topic
from tests.outbox._live import event_ids, live_settings, running
from tests.outbox._support import header, status_counts, wait_until

RUNS = 30
KILLS = 5
T = TypeVar("T")


_OTHERS = ("FROM pg_stat_activity WHERE datname = current_database()"
           " AND pid <> pg_backend_pid()")


def _terminate_every_other_session(engine: Engine) -> int:
    """`pg_terminate_backend` on every session of the database but this one (the
    test's), once the product has connected again after the last time.

    Each poll is its own transaction: PostgreSQL reads `pg_stat_activity` once per
    transaction, so polling inside one would see the first answer forever."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        wait_until(lambda: conn.exec_driver_sql(f"SELECT count(*) {_OTHERS}").scalar_one() > 0,
                   timeout_s=120, what="the product to connect again")
        killed: int = conn.exec_driver_sql(
            f"SELECT count(pg_terminate_backend(pid)) {_OTHERS}").scalar_one()
    return killed


def _as_a_client(call: Callable[[], T]) -> T:
    """`call()`, again when the store did not answer (the first use of a pooled
    connection the server dropped fails, as an API client sees a 503 once)."""
    for _ in range(4):
        try:
            return call()
        except StoreUnavailable:
            time.sleep(0.5)
    return call()


@pytest.mark.slow  # 11-15 s: 33 runs of three 50 ms steps, five rounds of kills
def test_every_connection_killed_mid_load_loses_and_sticks_nothing(
        pg_engine: Engine, pg_url: str, kafka_bootstrap: str) -> None:
    settings = live_settings(pg_url, kafka_bootstrap)
    with running(settings, step_seconds=0.05) as lf:
        runs = [lf.engine.trigger("checkout", {"order": i}).run_id for i in range(RUNS)]
        killed = []
        for _ in range(KILLS):  # while the worker executes them and the relay publishes
            time.sleep(0.3)
            killed.append(_terminate_every_other_session(pg_engine))
        for run_id in runs:
            state = _as_a_client(partial(lf.engine.wait, run_id, timeout=120, poll=0.2))
            assert state.status is RunStatus.COMPLETED, (run_id, state.status, state.error)
        more = [f"after-{i}-{runs[0]}" for i in range(3)]  # and it goes on working
        for i, run_id in enumerate(more):  # by run id: a retried trigger is the same run
            _as_a_client(partial(lf.engine.trigger, "checkout", {"order": i}, run_id=run_id))
        for run_id in more:
            state = _as_a_client(partial(lf.engine.wait, run_id, timeout=60, poll=0.1))
            assert state.status is RunStatus.COMPLETED, (run_id, state.status)
        runs += more
        total = 6 * len(runs)
        wait_until(lambda: status_counts(pg_engine) == {"published": total}, timeout_s=120,
                   what="the relay to publish every event")
    assert all(n > 0 for n in killed), killed  # each time, the product had connections

    expected = event_ids(pg_engine, runs)
    records = read_topic(kafka_bootstrap, settings.topic, len(expected))
    assert {header(r, "idempotency-key") for r in records} == set(expected)
    versions: dict[str, list[int]] = defaultdict(list)
    for record in records:  # a batch whose mark was lost is sent again: at least once
        version = int(header(record, "stream-version"))
        if version not in versions[record.key.decode()]:
            versions[record.key.decode()].append(version)
    assert all(v == [1, 2, 3, 4, 5, 6] for v in versions.values())
