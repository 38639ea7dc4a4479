"""Serverless hosts: `handle(run_id)` executes one due run, `tick()` also relays a batch
of the outbox, `stats()` gives the counts a host reports; both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Context, Ledgerflow, Settings, UnknownRun, WorkflowRegistry
from ledgerflow.runtime import queue
from ledgerflow.testing import FakeClock


def _registry() -> WorkflowRegistry:
    registry = WorkflowRegistry()

    @registry.workflow("greet")
    def greet(ctx: Context, name: Any) -> Any:
        return ctx.step("greet", lambda: f"hello {name}")

    @registry.workflow("waits")
    def waits(ctx: Context, data: Any) -> Any:
        return ctx.wait_for_signal("go")

    @registry.workflow("naps")
    def naps(ctx: Context, data: Any) -> Any:
        ctx.sleep("nap", timedelta(minutes=5))
        return "rested"

    return registry


@pytest.fixture
def lf(any_engine: SAEngine, tmp_path: Path, clock: FakeClock) -> Iterator[Ledgerflow]:
    url = any_engine.url.render_as_string(hide_password=False)
    app = Ledgerflow.open(Settings(database_url=url, sink_path=str(tmp_path / "sink.jsonl")),
                          registry=_registry(), clock=clock, upgrade=False)
    yield app
    app.close()


def test_handle_executes_the_run_it_names_and_says_what_happened(
        lf: Ledgerflow, clock: FakeClock) -> None:
    other = lf.engine.trigger("greet", "other", eager=False).run_id
    run = lf.engine.trigger("greet", "named", eager=False).run_id
    handled = lf.handle(run)
    assert (handled.run_id, handled.outcome, handled.executed) == (run, "completed", True)
    assert lf.engine.state(run).status.value == "completed"
    assert lf.engine.state(other).status.value == "pending"  # only the named run ran
    again = lf.handle(run)
    assert (again.outcome, again.status, again.executed) == ("finished", "completed", False)


def test_handle_executes_nothing_for_a_waiting_or_leased_run(lf: Ledgerflow,
                                                             clock: FakeClock) -> None:
    waiting = lf.engine.trigger("waits", None, eager=False).run_id
    assert lf.handle(waiting).outcome == "parked"
    parked = lf.handle(waiting)
    assert (parked.outcome, parked.status, parked.due_at) == ("not_due", "suspended", None)
    napping = lf.engine.trigger("naps", None, eager=False).run_id
    assert lf.handle(napping).outcome == "parked"
    asleep = lf.handle(napping)
    assert asleep.outcome == "not_due" and asleep.due_at == clock() + timedelta(minutes=5)
    clock.advance(timedelta(minutes=6))
    assert lf.handle(napping).outcome == "completed"
    held = lf.engine.trigger("greet", "held", eager=False).run_id
    with lf.db.begin() as conn:  # another worker holds it
        assert queue.claim_run(conn, held, "elsewhere", clock(), clock() + timedelta(minutes=1))
    assert lf.handle(held).outcome == "leased"
    assert lf.engine.state(held).status.value == "pending"
    with pytest.raises(UnknownRun):
        lf.handle("no-such-run")


def test_tick_relays_a_batch_and_stats_count_what_a_host_reports(
        lf: Ledgerflow, clock: FakeClock, tmp_path: Path) -> None:
    for name in ("a", "b"):
        lf.engine.trigger("greet", name, eager=False)
    lf.engine.trigger("waits", None, eager=False)
    before = lf.stats()
    assert (before.due, before.leased, before.executing, before.dead) == (3, 0, 0, 0)
    assert before.outbox_pending == 3  # one RunCreated each
    result = lf.tick()
    assert (result.claimed, result.completed, result.parked) == (3, 2, 1)
    assert result.relayed == before.outbox_pending + 2 * 3 + 2  # started, step, completed
    sink = [json.loads(line) for line in (tmp_path / "sink.jsonl").read_text().splitlines()]
    assert len(sink) == result.relayed
    after = lf.stats()
    assert (after.due, after.leased, after.outbox_pending, after.dead) == (0, 0, 0, 0)
