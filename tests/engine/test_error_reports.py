"""Errors a user can act on: the stored error carries the traceback of the user's code
(ledgerflow's own frames left out), and each failed attempt is logged with its run,
workflow, step and attempt."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest

from ledgerflow import Context, Engine, StepFailed, WorkflowRegistry
from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.testing import run_to_completion


def lookup(order: dict[str, Any]) -> Any:
    return order["id"]  # the line a user must find


def _frames(trace: str) -> list[str]:
    """The files of a traceback's frames."""
    return [line.split('"')[1] for line in trace.splitlines()
            if line.startswith('  File "')]


def _step_failures(engine: Engine, run_id: str) -> list[ev.StepFailed]:
    return [r.event for r in engine.history(run_id) if isinstance(r.event, ev.StepFailed)]


def test_a_failed_steps_error_carries_the_users_traceback_and_so_does_the_run(
        engine: Engine, registry: WorkflowRegistry) -> None:
    @registry.workflow("orders")
    def orders(ctx: Context, data: Any) -> Any:
        return ctx.step("lookup", lookup, data)

    run = engine.trigger("orders", {"no": "id"}).run_id
    state = run_to_completion(engine, run)
    (failed,) = _step_failures(engine, run)
    trace = failed.error.traceback
    assert (failed.error.type, failed.error.message) == ("KeyError", "'id'")
    assert trace is not None and trace.startswith("Traceback (most recent call last):")
    assert "test_error_reports.py" in trace and "in lookup" in trace
    assert 'return order["id"]' in trace and trace.rstrip().endswith("KeyError: 'id'")
    assert _frames(trace) == [__file__]  # ledgerflow's own frames are left out
    assert state.status is RunStatus.FAILED and state.error is not None
    assert state.error.traceback == trace  # the run failed because of that step
    assert state.error.details["cause"]["traceback"] == trace


def test_an_error_in_workflow_code_carries_its_traceback(
        engine: Engine, registry: WorkflowRegistry) -> None:
    @registry.workflow("raises")
    def raises(ctx: Context, data: Any) -> Any:
        value = ctx.step("fetch", lambda: {"total": 1})
        return value["missing"]

    run = engine.trigger("raises", None).run_id
    error = run_to_completion(engine, run).error
    assert error is not None and error.type == "KeyError"
    assert error.traceback is not None and "in raises" in error.traceback
    assert 'value["missing"]' in error.traceback and _frames(error.traceback) == [__file__]


def test_a_timed_out_step_shows_where_it_was(engine: Engine,
                                             registry: WorkflowRegistry) -> None:
    release = threading.Event()

    def waits_for_the_bank() -> bool:
        return release.wait(30)

    @registry.workflow("bank")
    def bank(ctx: Context, data: Any) -> Any:
        try:
            return ctx.step("pay", waits_for_the_bank, timeout=timedelta(milliseconds=50))
        except StepFailed as failure:
            return failure.error.model_dump()

    run = engine.trigger("bank", None).run_id
    error = run_to_completion(engine, run).result
    release.set()
    assert error["type"] == "StepTimeout"
    assert "in waits_for_the_bank" in error["traceback"]
    assert "release.wait(30)" in error["traceback"]


def test_each_failed_attempt_is_logged_with_run_workflow_step_and_attempt(
        engine: Engine, registry: WorkflowRegistry, caplog: pytest.LogCaptureFixture) -> None:
    @registry.workflow("flaky-orders")
    def flaky_orders(ctx: Context, data: Any) -> Any:
        return ctx.step("lookup", lookup, data, max_attempts=2, initial_delay=timedelta(0))

    run = engine.trigger("flaky-orders", {}).run_id
    with caplog.at_level(logging.WARNING, logger="ledgerflow.executor"):
        run_to_completion(engine, run)
    failed = [r for r in caplog.records if r.name == "ledgerflow.executor"]
    assert [(r.levelno, r.run_id, r.workflow, r.step, r.attempt)  # type: ignore[attr-defined]
            for r in failed] == [(logging.WARNING, run, "flaky-orders", "lookup", 1),
                                 (logging.WARNING, run, "flaky-orders", "lookup", 2)]
    message = failed[0].getMessage()
    assert run in message and "'lookup'" in message and "attempt 1" in message
    assert "KeyError" in message and "\n" not in message


def test_errors_stored_before_tracebacks_still_decode() -> None:
    old = ev.decode("StepFailed", 1, {"step_id": "a", "attempt": 1,
                                      "error": {"type": "KeyError", "message": "'id'"}})
    assert isinstance(old, ev.StepFailed) and old.error.traceback is None
