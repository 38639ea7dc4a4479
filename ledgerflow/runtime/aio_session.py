"""Executing a claimed run of an `async def` workflow: a coroutine on the worker
process's loop (`Runtime.aio`).

`AsyncRunSession` is the `RunSession` of an async run: the same journal, buffered
facts, merged writes, conflicts, outcomes and fault points (it is one), driving an
`AsyncContext` instead of a `Context`. Its store I/O (a flush before a step, the
transaction that parks, completes or fails the run) runs through the loop's I/O threads
(`AsyncLoop.io`), so the loop never waits on the database. Compensators may be `async
def` (awaited on the loop) or plain (run in a step thread).

`execute_async(rt, claimed, broke_off)` is how `Runner.execute` runs an async run: on
the loop without waiting while a `Worker` serves it (the worker thread goes on claiming;
returns "handed"), else to the end (`run_due`, `tick`; returns the outcome).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from ledgerflow._authoring import is_async_callable
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import NonDeterminismError, StoreUnavailable, UnknownWorkflow
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.state import Cancel, Rollback, decide
from ledgerflow.runtime.aio_context import AsyncContext
from ledgerflow.runtime.aio_steps import LoopWatch
from ledgerflow.runtime.compensation import outcome_note
from ledgerflow.runtime.context import Compensation, Park
from ledgerflow.runtime.executor import (
    Abandon,
    CancelRequested,
    Compensated,
    Replay,
    RunSession,
    StopRequested,
    failure_info,
)
from ledgerflow.runtime.failures import error_info, json_roundtrip
from ledgerflow.runtime.handoff import Claimed
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.journal import Journal
from ledgerflow.runtime.observe import OpenedRun, execution_of

log = logging.getLogger("ledgerflow.executor")


def runs_async(rt: Runtime, journal: Journal) -> bool:
    """Whether the run's workflow is `async def` (an unknown one: no, the sync session
    fails it)."""
    state = journal.state
    try:
        return rt.registry.get(state.workflow_id, state.workflow_version).is_async
    except UnknownWorkflow:
        return False


def execute_async(rt: Runtime, claimed: Claimed, broke_off: Callable[[str], None]) -> str:
    """Run an async run on the loop (see the module); `broke_off(run_id)` if its
    execution breaks off with an error."""
    session = AsyncRunSession(rt, claimed.journal, claimed.opened)
    if not rt.aio.serving:
        return rt.aio.run(session.run_async())

    def done(future: Future[str]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("run %s: execution broke off", claimed.run_id,
                      exc_info=future.exception(), extra={"run_id": claimed.run_id})
            broke_off(claimed.run_id)

    rt.aio.start(session.run_async(), done)
    return "handed"


class AsyncRunSession(RunSession):
    """One execution of one claimed async run, as a coroutine on the loop."""

    def __init__(self, rt: Runtime, journal: Journal, opened: OpenedRun | None = None) -> None:
        super().__init__(rt, journal, opened=opened)
        self.loop_watch = LoopWatch(rt.aio.loop, self.run_id, self.committed, self._late,
                                    journal.state.workflow_id)
        self.watch = self.loop_watch
        self._io = rt.aio.io

    async def run_async(self) -> str:
        """Execute until the run completes, fails, parks or is given back."""
        self.rt.inflight.add(self.watch)
        try:
            with execution_of(self.rt.observer, self.opened, self.run_id,
                              self.journal.state.workflow_id, self.journal.base_metadata):
                while True:
                    try:
                        return await self._run_once_async()
                    except Replay:
                        continue
                    except Abandon:
                        return "abandoned"
        finally:
            self.rt.inflight.remove(self.watch)

    async def _run_once_async(self) -> str:
        state = self.journal.state
        try:
            definition = self.rt.registry.get(state.workflow_id, state.workflow_version)
        except UnknownWorkflow as error:
            return await self._io(self.fail, error_info(error), "none")
        ctx = AsyncContext(self, self._io, self.loop_watch, self.rt.aio.threads, self.rt.faults,
                           self.before_step_async, self.rt.observer)
        try:
            result = await definition.call_async(ctx, ctx.input)
            ctx.finish()
            result = json_roundtrip(result, "the workflow's result")
            self.check(ev.RunCompleted(result=result))  # too large: rolls back, fails
        except Park as park:
            if self.canceling:
                return await self.cancel_async(ctx)
            return await self._io(self.park, park)
        except CancelRequested:
            return await self.cancel_async(ctx)
        except StopRequested:
            await self._io(self.flush, (), self._give_back)
            return "released"
        except NonDeterminismError as error:
            return await self._io(self.fail, error_info(error), "none")
        except StoreUnavailable:
            raise
        except Exception as error:
            if ctx.diverged is not None:
                return await self._io(self.fail, error_info(ctx.diverged), "none")
            return await self.rollback_async(ctx, error)
        if ctx.diverged is not None:
            return await self._io(self.fail, error_info(ctx.diverged), "none")
        if self.canceling:
            return await self.cancel_async(ctx)
        return await self._io(self.complete, result)

    async def before_step_async(self) -> None:
        """`before_step`: through the I/O threads only when it has facts to write."""
        if self.pending:
            await self._io(self.before_step)
        else:
            self.before_step()

    async def rollback_async(self, ctx: AsyncContext, error: Exception) -> str:
        """`RunSession.rollback`, with compensators awaited."""
        if self.canceling:
            return await self.cancel_async(ctx)
        info = failure_info(error)
        comps = ctx.compensations
        if not comps:
            return await self._io(self.fail, info, "none")
        if self.journal.state.status is not RunStatus.COMPENSATING:
            await self._io(self.flush, decide(self.journal.state, Rollback(error=info)))
        failed = await self._undo(comps)
        outcome: Compensated = "partial" if failed else "completed"
        final = info.model_copy(update={
            "message": f"{info.message}; {outcome_note(len(comps), failed)}",
            "details": {**info.details, "compensation": outcome, "compensationFailed": failed}})
        return await self._io(self.fail, final, outcome)

    async def cancel_async(self, ctx: AsyncContext) -> str:
        """`RunSession.cancel`, with compensators awaited."""
        await self._undo(ctx.compensations)
        state = self.journal.state
        reason = state.error.message if state.error is not None else None
        error = ev.ErrorInfo(type="Canceled", message=reason or "canceled")
        await self._io(self.flush, decide(state, Cancel(reason=reason)),
                       self._ending("canceled", None, error))
        self._nudge_parent()
        return "canceled"

    async def _undo(self, compensations: Sequence[Compensation]) -> list[str]:
        """`compensation.undo`: compensators not journaled yet, last step first."""
        done, failed = self.journal.compensated, []
        for comp in reversed(compensations):
            ok = done.get(comp.step_id)
            if ok is None:
                ok = await self._compensate(comp)
            if not ok:
                failed.append(comp.step_id)
        return failed

    async def _compensate(self, comp: Compensation) -> bool:
        attempts = max(3, comp.policy.max_attempts)
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            if self.pending:
                await self._io(self.flush)
            try:
                value = await self._call(comp.fn, comp.result)
                out = json_roundtrip(value, f"compensator of {comp.step_id!r}")
            except Exception as exc:
                last = exc
                continue
            self.record(ev.CompensationCompleted(step_id=comp.step_id, attempt=attempt,
                                                 result=out))
            return True
        assert last is not None
        self.record(ev.CompensationFailed(step_id=comp.step_id, attempt=attempts,
                                          error=error_info(last, comp.step_id)))
        return False

    async def _call(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        """`fn(arg)`: awaited on the loop if async, else in a step thread."""
        if is_async_callable(fn):
            return await fn(arg)
        value = await asyncio.get_running_loop().run_in_executor(self.rt.aio.threads, fn, arg)
        return await value if inspect.isawaitable(value) else value
