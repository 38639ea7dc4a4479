"""Idempotency keys are honoured in the command's own transaction (both backends).

A key's result commits with the command's events: a crash right after the commit
(fault point `command_committed`) leaves the key kept, so the retry replays the
first result and appends nothing. Before, the key was completed in a second
transaction, and a crash between the two made the retry deliver twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from ledgerflow import Context, Engine, WorkflowRegistry
from ledgerflow.domain.errors import IdempotencyConflict, IllegalTransition
from ledgerflow.eventstore import IdempotencyInProgress, IdempotencyKey, IdempotencyKeys
from ledgerflow.eventstore.schema import idempotency_keys
from ledgerflow.runtime.faults import InjectedFault
from tests._concurrency import at_once


@pytest.fixture
def waiting(engine: Engine, registry: WorkflowRegistry) -> str:
    """A run parked on signal "go"."""
    @registry.workflow("waits")
    def waits(ctx: Context, _input: Any) -> Any:
        return ctx.wait_for_signal("go")

    run_id = engine.trigger("waits", {}).run_id
    engine.run_due()
    return run_id


class Recorder:
    """A key whose `remember` and `recall` say when they ran."""

    def __init__(self) -> None:
        self.remembered: list[Any] = []
        self.recalled: list[Any] = []

    def key(self, key: str = "k-1", fingerprint: str = "fp") -> IdempotencyKey[None]:
        def remember(conn: sa.Connection, _outcome: None) -> Any:
            count = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
            self.remembered.append({"events": count})
            return {"events": count}

        return IdempotencyKey("test", key, fingerprint, remember=remember,
                              recall=self.recalled.append)


def types(engine: Engine, run_id: str) -> Counter[str]:
    return Counter(r.type for r in engine.history(run_id))


def test_a_crash_right_after_a_signal_commits_leaves_nothing_to_deliver_twice(
        engine: Engine, waiting: str) -> None:
    keys = Recorder()
    engine.runtime.faults.arm("command_committed")
    with pytest.raises(InjectedFault):
        engine.signal(waiting, "go", "first", idempotency_key=keys.key())
    assert types(engine, waiting)["SignalReceived"] == 1  # committed, with its key
    engine.signal(waiting, "go", "first", idempotency_key=keys.key())  # the client's retry
    assert types(engine, waiting)["SignalReceived"] == 1
    assert types(engine, waiting)["RunWoken"] == 1
    assert len(keys.remembered) == 1 and keys.recalled == keys.remembered  # replayed
    # the remembered result was read inside the command's transaction, events included
    assert keys.remembered[0]["events"] == len(engine.history(waiting))


def test_each_command_on_a_run_runs_once_per_key(engine: Engine, waiting: str) -> None:
    keys = Recorder()
    for _ in range(2):
        engine.send_event(waiting, "paid", {"n": 1}, idempotency_key=keys.key("e"))
        engine.signal(waiting, "later", idempotency_key=keys.key("s"))
    assert types(engine, waiting)["EventReceived"] == 1
    assert types(engine, waiting)["SignalReceived"] == 1
    for _ in range(2):
        engine.cancel(waiting, "enough", idempotency_key=keys.key("c"))
    assert types(engine, waiting)["RunCanceled"] == 1
    assert len(keys.remembered) == 3 and len(keys.recalled) == 3


def test_a_failed_command_keeps_no_key(engine: Engine, waiting: str) -> None:
    keys = Recorder()
    engine.cancel(waiting)
    for _ in range(2):  # not replayed: refused again, each time
        with pytest.raises(IllegalTransition):
            engine.cancel(waiting, idempotency_key=keys.key())
    with engine.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)
                            ).scalar_one() == 0
    assert keys.remembered == keys.recalled == []


def test_a_key_with_another_fingerprint_or_held_in_two_steps_is_refused(
        engine: Engine, waiting: str) -> None:
    keys = Recorder()
    engine.signal(waiting, "late", idempotency_key=keys.key("k", "one"))
    with pytest.raises(IdempotencyConflict, match="'k'"):
        engine.signal(waiting, "late", idempotency_key=keys.key("k", "two"))
    IdempotencyKeys(engine.store.engine, clock=engine.clock).acquire("test", "held", "fp")
    with pytest.raises(IdempotencyInProgress, match="still being processed"):
        engine.signal(waiting, "late", idempotency_key=keys.key("held", "fp"))
    assert types(engine, waiting)["SignalReceived"] == 1


def test_a_crash_right_after_a_keyed_trigger_commits_returns_the_same_run(
        engine: Engine, registry: WorkflowRegistry) -> None:
    registry.register("w", lambda ctx, data: data)
    engine.runtime.faults.arm("command_committed")
    with pytest.raises(InjectedFault):
        engine.trigger("w", {"x": 1}, idempotency_key="order-7")
    again = engine.trigger("w", {"x": 1}, idempotency_key="order-7")
    assert not again.created and again.recorded == ()
    assert engine.run_due().claimed == 1  # one run was created, and it is that one
    assert engine.state(again.run_id).result == {"x": 1}
    with pytest.raises(IdempotencyConflict, match="order-7"):
        engine.trigger("w", {"x": 2}, idempotency_key="order-7")
    assert engine.run_due().claimed == 0


def test_a_trigger_key_is_kept_forever_in_the_one_key_table(
        engine: Engine, registry: WorkflowRegistry) -> None:
    registry.register("w", lambda ctx, data: data)
    first = engine.trigger("w", {"x": 1}, idempotency_key="k")
    with engine.store.engine.connect() as conn:
        row = conn.execute(sa.select(idempotency_keys)).mappings().one()
        tables = set(sa.inspect(conn).get_table_names())
    assert (row["scope"], row["key"], row["status"]) == ("trigger", "k", "completed")
    assert row["result"] == {"runId": first.run_id}
    assert row["expires_at"].year == 9999
    assert "run_keys" not in tables
    assert engine.history(first.run_id)[0].metadata["idempotency_key"] == "k"


def test_concurrent_duplicates_deliver_once(engine: Engine, waiting: str) -> None:
    keys = Recorder()
    results = at_once(lambda: engine.signal(waiting, "late", idempotency_key=keys.key()), 4)
    assert results == [False] * 4  # buffered (the run waits for another signal), or replayed
    assert types(engine, waiting)["SignalReceived"] == 1
    assert len(keys.remembered) == 1 and len(keys.recalled) == 3
