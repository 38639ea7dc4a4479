"""Queues in one process, on both backends: limits held by the claim, pause, rate limit,
priority, fairness between keys, debounce, audited changes and bad input.

The clock is fake: a rate limit's period and a debounce window pass when the test says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from ledgerflow import (
    Context,
    Debounce,
    Engine,
    InvalidRequest,
    Queue,
    RateLimit,
    UnknownQueue,
    WorkflowRegistry,
)
from ledgerflow.domain import events as ev
from ledgerflow.eventstore.store import Transaction
from ledgerflow.runtime import queue
from ledgerflow.runtime.executor import claim_next
from ledgerflow.runtime.handoff import Claimed
from ledgerflow.runtime.limits import queue_keys, queue_limits
from ledgerflow.testing import FakeClock

Started = list[Any]


@pytest.fixture
def started() -> Started:
    return []


@pytest.fixture
def flows(registry: WorkflowRegistry, started: Started) -> WorkflowRegistry:
    def record(data: Any) -> Any:
        started.append(data)
        return data

    @registry.workflow("job", queue=Queue("jobs"))
    def job(ctx: Context, data: Any) -> Any:
        return ctx.step("work", record, data)

    @registry.workflow("waits", queue="jobs")
    def waits(ctx: Context, data: Any) -> Any:
        ctx.step("work", record, data)
        return ctx.wait_for_signal("go")

    return registry


def claim(engine: Engine) -> Claimed | None:
    found = claim_next(engine.runtime)
    assert found is not False
    return found


def counts(engine: Engine) -> tuple[int, dict[str, int]]:
    with engine.store.engine.connect() as conn:
        executing = conn.execute(sa.select(queue_limits.c.executing).where(
            queue_limits.c.name == "jobs")).scalar_one()
        keys = dict(conn.execute(sa.select(queue_keys.c.key, queue_keys.c.executing)).all())
    return int(executing), {str(k): int(v) for k, v in keys.items()}


def test_a_key_at_its_limit_waits_until_its_run_parks(engine: Engine,
                                                     flows: WorkflowRegistry) -> None:
    engine.queues.change("jobs", {"per_key_concurrency": 1, "concurrency": 5})
    first = engine.trigger("waits", 1, concurrency_key="k", eager=False).run_id
    second = engine.trigger("waits", 2, concurrency_key="k", eager=False).run_id
    other = engine.trigger("waits", 3, concurrency_key="other", eager=False).run_id
    a = claim(engine)
    b = claim(engine)
    assert a is not None and b is not None and a.held and b.held
    assert {a.run_id, b.run_id} == {first, other}
    assert claim(engine) is None  # key "k" holds its one slot
    assert counts(engine) == (2, {"k": 1, "other": 1})
    assert engine.execute(a) == "parked"  # waits for a signal: the slot comes back
    assert counts(engine) == (1, {"k": 0, "other": 1})
    c = claim(engine)
    assert c is not None and c.run_id == second
    engine.execute(b)
    engine.execute(c)
    assert counts(engine) == (0, {"k": 0, "other": 0})


def test_queue_concurrency_counts_every_key(engine: Engine, flows: WorkflowRegistry) -> None:
    engine.queues.change("jobs", {"concurrency": 2})
    for n in range(4):
        engine.trigger("job", n, concurrency_key=f"k{n}", eager=False)
    held = [claim(engine), claim(engine)]
    assert all(h is not None for h in held)
    assert claim(engine) is None
    engine.queues.change("jobs", {"concurrency": 3})  # raised at run time: applies at once
    third = claim(engine)
    assert third is not None and claim(engine) is None
    for h in [*held, third]:
        assert h is not None and engine.execute(h) == "completed"
    assert engine.run_due(10).completed == 1
    assert counts(engine)[0] == 0


def test_pause_holds_every_run_and_resume_releases_them(engine: Engine,
                                                       flows: WorkflowRegistry,
                                                       started: Started) -> None:
    engine.queues.pause("jobs")
    ids = [engine.trigger("job", n).run_id for n in range(3)]
    assert engine.run_due(10).claimed == 0
    assert [q.depth for q in engine.queues.list() if q.name == "jobs"] == [3]
    engine.queues.resume("jobs")
    assert engine.run_due(10).completed == 3
    assert sorted(started) == [0, 1, 2]
    assert all(engine.state(i).is_terminal for i in ids)


def test_a_rate_limit_never_starts_more_than_its_limit_in_any_period(
        engine: Engine, flows: WorkflowRegistry, clock: FakeClock) -> None:
    engine.queues.change("jobs", {"rate_limit": RateLimit(10, 1.0)})
    for n in range(35):
        engine.trigger("job", n, eager=False)
    starts: list[float] = []
    for _ in range(20):  # 5 s in steps of 0.25 s
        done = engine.run_due(100).claimed
        starts += [clock().timestamp()] * done
        clock.advance(timedelta(seconds=0.25))
    assert len(starts) == 35
    for at in starts:
        assert sum(1 for t in starts if at <= t < at + 1.0) <= 10


def test_higher_priority_is_claimed_first(engine: Engine, flows: WorkflowRegistry,
                                          started: Started) -> None:
    for n, priority in enumerate([0, 5, -1, 9, 5]):
        engine.trigger("job", n, priority=priority, eager=False)
    while engine.run_due(1).claimed:
        pass
    assert started == [3, 1, 4, 0, 2]


def test_a_key_with_many_waiting_runs_does_not_starve_a_key_with_one(
        engine: Engine, flows: WorkflowRegistry, started: Started) -> None:
    for n in range(30):
        engine.trigger("job", f"big-{n}", concurrency_key="big", eager=False)
    engine.trigger("job", "small", concurrency_key="small", eager=False)
    engine.run_due(3)
    assert "small" in started[:2]


def test_debounce_collapses_quick_triggers_into_one_run_with_the_last_input(
        engine: Engine, flows: WorkflowRegistry, clock: FakeClock, started: Started) -> None:
    ids = set()
    for n in range(10):
        ids.add(engine.trigger("job", {"n": n}, debounce=Debounce("user-1", 5)).run_id)
        clock.advance(timedelta(seconds=1))
        assert engine.run_due(10).claimed == 0  # the window has not closed
    assert len(ids) == 1
    clock.advance(timedelta(seconds=5))
    assert engine.run_due(10).completed == 1
    (run_id,) = ids
    assert started == [{"n": 9}]
    state = engine.state(run_id)
    assert state.result == {"n": 9} and state.input == {"n": 9}
    after = engine.trigger("job", {"n": 10}, debounce=Debounce("user-1", 5)).run_id
    assert after != run_id  # that run started: a later trigger makes a new one


def test_every_change_is_an_event_on_the_queue_stream(engine: Engine,
                                                       flows: WorkflowRegistry) -> None:
    engine.queues.change("payments", {"concurrency": 5}, actor="alice")
    engine.queues.change("payments", {"concurrency": 8, "rate_limit": RateLimit(3, 2.0)},
                         actor="bob")
    engine.queues.pause("payments", actor="carol")
    history = engine.store.read_stream("queue:payments")
    changes = [r.event for r in history]
    assert all(isinstance(e, ev.QueueChanged) for e in changes)
    assert [r.metadata.get("actor") for r in history] == ["alice", "bob", "carol"]
    first, second, third = changes
    assert isinstance(first, ev.QueueChanged) and first.old is None
    assert isinstance(second, ev.QueueChanged) and second.old is not None
    assert (second.old.concurrency, second.new.concurrency) == (5, 8)
    assert (second.new.rate_limit, second.new.rate_period_seconds) == (3, 2.0)
    assert isinstance(third, ev.QueueChanged) and third.new.paused
    (info,) = [q for q in engine.queues.list() if q.name == "payments"]
    assert (info.concurrency, info.rate_limit, info.paused) == (
        8, {"limit": 3, "periodSeconds": 2.0}, True)


@pytest.mark.parametrize("change", [
    {"concurrency": 0}, {"concurrency": -3}, {"per_key_concurrency": 0},
    {"rate_limit": RateLimit(0, 1.0)}, {"rate_limit": RateLimit(5, 0)}, {"nonsense": 1},
])
def test_limits_that_are_not_positive_are_refused(engine: Engine,
                                                  change: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        engine.queues.change("q", change)
    assert engine.store.read_stream("queue:q") == []


@pytest.mark.parametrize("act", [
    lambda e: e.trigger("job", 1, queue="nope"),
    lambda e: e.queues.pause("nope"),
    lambda e: e.queues.resume("nope"),
])
def test_an_unknown_queue_is_named_with_the_queues_that_exist(
        engine: Engine, flows: WorkflowRegistry, act: Callable[[Engine], Any]) -> None:
    with pytest.raises(UnknownQueue) as raised:
        act(engine)
    assert "'nope'" in str(raised.value) and "default" in str(raised.value)
    assert "jobs" in str(raised.value)
    assert engine.store.read_stream("queue:nope") == []


def test_a_crashed_workers_slots_come_back_when_its_lease_is_reaped(
        engine: Engine, flows: WorkflowRegistry, clock: FakeClock) -> None:
    engine.queues.change("jobs", {"concurrency": 1})
    engine.trigger("job", 1, eager=False)
    engine.trigger("job", 2, eager=False)
    assert claim(engine) is not None  # then the worker "dies"
    clock.advance(engine.lease + timedelta(seconds=1))
    assert claim(engine) is None  # its slot is still held
    assert engine.reap() == 1
    assert counts(engine)[0] == 0
    assert engine.run_due(10).completed == 2
    assert counts(engine)[0] == 0


def test_a_trigger_may_name_another_queue_and_a_start_time(
        engine: Engine, flows: WorkflowRegistry, clock: FakeClock) -> None:
    engine.queues.change("slow", {"concurrency": 1})
    run_id = engine.trigger("job", 1, queue="slow",
                            start_at=clock() + timedelta(seconds=30)).run_id
    assert engine.run_due(10).claimed == 0
    clock.advance(timedelta(seconds=31))
    assert engine.run_due(10).completed == 1
    created = engine.history(run_id)[0].event
    assert isinstance(created, ev.RunCreated) and created.queue == "slow"


def test_a_queue_without_its_limits_row_is_claimed_as_one_without_limits(
        engine: Engine, flows: WorkflowRegistry, started: Started) -> None:
    """The claim looks the queue's row up but does not need it: a row deleted by hand
    (or tables emptied) leaves its runs claimable, holding no slots."""
    engine.queues.change("jobs", {"per_key_concurrency": 1})
    engine.trigger("job", 1, eager=False, concurrency_key="k")
    engine.trigger("job", 2, eager=False)
    with engine.store.transaction() as tx:
        tx.conn.execute(sa.delete(queue_limits))
    assert engine.run_due(10).completed == 2
    assert sorted(started) == [1, 2]
    with engine.store.engine.connect() as conn:
        assert conn.execute(sa.select(queue_keys.c.executing)).scalars().all() == [0]


def test_a_lease_ended_twice_at_once_gives_its_slots_back_once(
        engine: Engine, flows: WorkflowRegistry, clock: FakeClock) -> None:
    """A cancel and the run's own end race (each a park or a delete of the row): the
    second ending waits on the first's lock on the row, then finds no slots left."""
    engine.queues.change("jobs", {"per_key_concurrency": 1, "concurrency": 5})

    def end(tx: Transaction, how: str, run_id: str) -> None:
        if how == "park":
            queue.park(tx, run_id, clock() + timedelta(hours=1), held=True)
        else:
            queue.remove(tx, run_id, held=True)

    def end_then(how: str, run_id: str, done: threading.Event) -> None:
        with engine.store.transaction() as tx:
            end(tx, how, run_id)
        done.set()

    for first, second in (("remove", "park"), ("park", "remove"), ("park", "park")):
        engine.trigger("job", first, eager=False, concurrency_key="k")
        claimed = claim(engine)
        assert claimed is not None and claimed.held
        assert counts(engine) == (1, {"k": 1})
        ended = threading.Event()
        other = threading.Thread(target=end_then, args=(second, claimed.run_id, ended))
        with engine.store.transaction() as tx:
            end(tx, first, claimed.run_id)
            other.start()
            assert not ended.wait(0.3)  # waits for the first ending
        other.join(10)
        assert ended.is_set()
        assert counts(engine) == (0, {"k": 0}), (first, second)
