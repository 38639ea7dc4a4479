"""PostgreSQL notifications: a run made due by another process is claimed at once,
not at the next poll (the workers here poll once a minute)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Engine, Worker, WorkflowRegistry
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore import EventStore
from ledgerflow.runtime.listen import RUNS_CHANNEL, Listener, announce

SLOW_POLL = 60.0


def _registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()

    @registry.workflow("echo")
    def echo(ctx: Context, data: Any) -> Any:
        return ctx.step("echo", lambda: data)

    @registry.workflow("approve")
    def approve(ctx: Context, data: Any) -> Any:
        return ctx.wait_for_signal("approved")

    return registry


def test_runs_made_due_by_another_process_start_without_waiting_for_a_poll(
        pg_engine: SAEngine) -> None:
    registry = _registry()
    store = EventStore(pg_engine)
    here = Engine(store, registry, worker_id="worker-here")
    elsewhere = Engine(store, registry, worker_id="api-elsewhere")  # no worker of its own
    worker = Worker(here, threads=2, poll_interval=SLOW_POLL).start()
    try:
        assert worker.listener is not None and worker.listener.wait_listening(10)
        run = elsewhere.trigger("echo", {"n": 1}).run_id
        assert elsewhere.wait(run, timeout=15, poll=0.05).result == {"n": 1}

        waiting = elsewhere.trigger("approve", {}).run_id
        deadline = time.monotonic() + 15
        while elsewhere.state(waiting).status is not RunStatus.SUSPENDED:
            assert time.monotonic() < deadline, elsewhere.state(waiting)
            time.sleep(0.05)
        elsewhere.signal(waiting, "approved", {"by": "ops"})
        assert elsewhere.wait(waiting, timeout=15, poll=0.05).result == {"by": "ops"}
    finally:
        worker.stop()


def test_listener_hears_committed_notices_of_other_senders_only(pg_engine: SAEngine) -> None:
    heard = threading.Semaphore(0)
    count = {"n": 0}

    def nudge() -> None:
        count["n"] += 1
        heard.release()

    store = EventStore(pg_engine)
    listener = Listener(pg_engine, "me", nudge).start()
    try:
        assert listener.wait_listening(10)
        with store.transaction() as tx:
            announce(tx, "me")  # this process's own notice: nudged in memory instead
        with pytest.raises(ZeroDivisionError), store.transaction() as tx:
            announce(tx, "other")
            raise ZeroDivisionError  # rolled back: never delivered
        with store.transaction() as tx:
            announce(tx, "other")
            tx.notify(RUNS_CHANNEL, "other")  # the same notice twice: sent once
        assert heard.acquire(timeout=10)
        assert not heard.acquire(timeout=0.5)
        assert count["n"] == 1
    finally:
        listener.stop()


def test_listener_reconnects_after_its_connection_is_killed(pg_engine: SAEngine) -> None:
    heard = threading.Semaphore(0)
    store = EventStore(pg_engine)
    listener = Listener(pg_engine, "me", heard.release, retry=0.1).start()
    try:
        assert listener.wait_listening(10)
        with pg_engine.connect() as conn:  # the server drops the listening session
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                f" WHERE query = 'LISTEN {RUNS_CHANNEL}' AND pid <> pg_backend_pid()"
                " AND datname = current_database()"
            ).scalar_one()
        assert killed == 1
        deadline = time.monotonic() + 15
        while True:  # notices sent while it was away are lost; polling covers those
            with store.transaction() as tx:
                announce(tx, "other")
            if heard.acquire(timeout=0.2):
                break
            assert time.monotonic() < deadline, "the listener did not come back"
    finally:
        listener.stop()


def test_listener_connects_as_the_engine_does(pg_url: str) -> None:
    """The engine's connect_args (here an application name) reach the listening session."""
    from ledgerflow.eventstore import create_engine

    engine = create_engine(pg_url, connect_args={"application_name": "lf-listener-check"})
    listener = Listener(engine, "me", lambda: None).start()
    try:
        assert listener.wait_listening(10)
        with engine.connect() as conn:
            found = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                f" 'lf-listener-check' AND query = 'LISTEN {RUNS_CHANNEL}'").scalar_one()
        assert found == 1
    finally:
        listener.stop()
        engine.dispose()
