"""Run streams: `ctx.stream` and `current_step().stream` append chunks once, in order,
through replays, retries and a crash, on both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Engine, WorkflowRegistry, current_step
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore import EventStore
from ledgerflow.projections import queries
from ledgerflow.runtime.faults import FaultPoints, InjectedFault
from ledgerflow.testing import FakeClock, Replayer, export_history


def _chunks(engine: Engine, run_id: str) -> list[ev.StreamChunk]:
    return [r.event for r in engine.history(run_id) if isinstance(r.event, ev.StreamChunk)]


def _words(ctx: Context, data: Any) -> Any:
    ctx.stream("progress", {"stage": "start"})

    def generate() -> str:
        for word in ("hello", " ", "world"):
            current_step().stream("tokens", word)
        return "hello world"

    text = ctx.step("generate", generate)
    ctx.stream("progress", {"stage": "generated"})
    ctx.sleep("pause", timedelta(minutes=1))
    ctx.stream("progress", {"stage": "done"})
    return text


def test_chunks_are_appended_once_through_replays(engine: Engine, registry: WorkflowRegistry,
                                                  clock: FakeClock) -> None:
    registry.register("words", _words)
    run = engine.trigger("words", None).run_id
    assert engine.run_due().parked == 1
    clock.advance(timedelta(minutes=2))
    assert engine.run_due().completed == 1  # re-executed from the top: no chunk again
    chunks = _chunks(engine, run)
    assert [(c.name, c.chunk) for c in chunks] == [
        ("progress", {"stage": "start"}), ("tokens", "hello"), ("tokens", " "),
        ("tokens", "world"), ("progress", {"stage": "generated"}),
        ("progress", {"stage": "done"})]
    tokens = [c for c in chunks if c.name == "tokens"]
    assert [(c.step_id, c.attempt, c.seq) for c in tokens] == [
        ("generate", 1, 1), ("generate", 1, 2), ("generate", 1, 3)]
    assert [c.op for c in chunks if c.name == "progress"] == [
        "$stream:progress", "$stream:progress#2", "$stream:progress#3"]
    assert engine.state(run).status is RunStatus.COMPLETED


def test_a_retried_step_streams_again_as_its_next_attempt(
        engine: Engine, registry: WorkflowRegistry, clock: FakeClock) -> None:
    tries: list[int] = []

    def flaky() -> str:
        tries.append(current_step().attempt)
        current_step().stream("log", f"try {len(tries)}")
        if len(tries) == 1:
            raise RuntimeError("first try fails")
        return "ok"

    @registry.workflow("flaky")
    def flow(ctx: Context, data: Any) -> Any:
        return ctx.step("work", flaky, max_attempts=2, initial_delay=timedelta(seconds=1))

    run = engine.trigger("flaky", None).run_id
    engine.run_due()
    clock.advance(timedelta(seconds=5))
    engine.run_due()
    assert engine.state(run).status is RunStatus.COMPLETED
    assert [(c.chunk, c.attempt, c.seq) for c in _chunks(engine, run)] == [
        ("try 1", 1, 1), ("try 2", 2, 1)]


def test_an_attempt_run_again_after_a_crash_skips_the_chunks_already_written(
        any_engine: SAEngine, clock: FakeClock) -> None:
    registry = WorkflowRegistry()
    calls: list[str] = []

    @registry.workflow("three")
    def three(ctx: Context, data: Any) -> Any:
        def work() -> int:
            calls.append("work")
            for n in (1, 2, 3):
                current_step().stream("n", n)
            return 3
        return ctx.step("work", work)

    armed = FaultPoints()
    armed.arm("step_executed")  # dies after the step ran, before its result is written
    store = EventStore(any_engine, clock=clock)
    crashing = Engine(store, registry, clock=clock, faults=armed)
    run = crashing.trigger("three", None).run_id
    with pytest.raises(InjectedFault):
        crashing.run_due()
    clock.advance(timedelta(minutes=1))  # the crashed worker's lease expires
    assert Engine(store, registry, clock=clock).run_due().completed == 1
    assert calls == ["work", "work"]  # the step ran twice (at least once) ...
    assert [(c.chunk, c.attempt, c.seq) for c in _chunks(crashing, run)] == [
        (1, 1, 1), (2, 1, 2), (3, 1, 3)]  # ... its chunks are stored once


def test_a_chunk_must_be_json(engine: Engine, registry: WorkflowRegistry) -> None:
    @registry.workflow("bad-chunk")
    def bad(ctx: Context, data: Any) -> Any:
        ctx.stream("x", object())
        return None

    run = engine.trigger("bad-chunk", None).run_id
    engine.run_due()
    state = engine.state(run)
    assert state.status is RunStatus.FAILED
    assert state.error is not None and "chunk of stream 'x'" in state.error.message
    assert _chunks(engine, run) == []


def test_streamed_runs_replay_and_read_as_entries(engine: Engine, registry: WorkflowRegistry,
                                                  clock: FakeClock) -> None:
    registry.register("words", _words)
    run = engine.trigger("words", None).run_id
    engine.run_due()
    clock.advance(timedelta(minutes=2))
    engine.run_due()
    assert Replayer(registry).replay(export_history(engine, run)).ok
    read = queries.stream_after(engine.store, run, 0)
    assert read.ended == "completed"
    assert [e.chunk for e in read.chunks][:2] == [{"stage": "start"}, "hello"]
    later = queries.stream_after(engine.store, run, read.chunks[2].version)
    assert [e.chunk for e in later.chunks] == ["world", {"stage": "generated"},
                                               {"stage": "done"}]
    wire = read.chunks[1].to_wire()
    assert wire["stepId"] == "generate" and wire["attempt"] == 1 and wire["seq"] == 1
    assert wire["version"] == read.chunks[1].version
