"""Step attempts of async workflows: run on the loop, cancelled by a timeout or a cancel.

`run_async_attempt` runs one attempt. A step function that is `async def` runs as a
task on the loop (`current_step()` works in it). Any other callable runs in a thread of
the loop's step pool through the sync `steps.run_attempt` (its timeout and grace period
as for sync workflows); if it returns an awaitable (`lambda: fetch(x)`), that is then
awaited on the loop like an async step. An async attempt that runs past its `timeout`,
or whose run is canceled, is cancelled: `CancelledError` is raised inside it at its
current `await`, so nothing after that await happens. The attempt's outcome is known
(and a retry may start) only once it has unwound, or, if it keeps running (it swallowed
the cancellation), once the grace period (default: the timeout) passed; what it returns
later is journaled as discarded, as for sync steps. A cancel of the run fails the
attempt with `StepCanceled` (not retried).

`LoopWatch` is the `RunWatch` of an async run: a cancel (from any thread: a command in
this process, or the heartbeat's poll) also cancels its tasks. `AsyncStepAttempts` is
`StepAttempts` with awaited attempts and concurrent parallel branches.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

from ledgerflow._authoring import is_async_callable
from ledgerflow.domain import events as ev
from ledgerflow.runtime import agent
from ledgerflow.runtime.attempts import Rules, StepAttempts, branch_result
from ledgerflow.runtime.errors import StepCanceled
from ledgerflow.runtime.failures import json_roundtrip, stack_text
from ledgerflow.runtime.observe import NO_OBSERVER, Observer
from ledgerflow.runtime.steps import (
    Late,
    Resume,
    RunWatch,
    StepInfo,
    StepTimeout,
    _current,
    run_attempt,
)

log = logging.getLogger("ledgerflow.executor")


class LoopWatch(RunWatch):
    """A `RunWatch` whose cancel also cancels the run's attempts running on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, run_id: str, version: int = 0,
                 on_late: Callable[[str, int, Late], None] | None = None,
                 workflow: str = "") -> None:
        super().__init__(run_id, version, on_late, workflow)
        self._loop = loop
        self._tasks: dict[int, asyncio.Task[Any]] = {}

    def track(self, info: StepInfo, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._tasks[id(info)] = task

    def untrack(self, info: StepInfo) -> None:
        with self._lock:
            self._tasks.pop(id(info), None)

    def cancel(self) -> None:
        super().cancel()
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            self._loop.call_soon_threadsafe(task.cancel)


async def run_async_attempt(watch: LoopWatch, threads: Executor | None, step_id: str, attempt: int,
                            call: Callable[[], Any], timeout: timedelta | None,
                            grace: timedelta | None, resume: Resume | None = None) -> Any:
    """Run one attempt of `step_id` (see the module's docstring)."""
    if not is_async_callable(call):
        loop = asyncio.get_running_loop()
        value = await loop.run_in_executor(
            threads, contextvars.copy_context().run, run_attempt, watch, step_id, attempt,
            call, timeout, grace, resume)
        if not inspect.isawaitable(value):
            return value
        return await _on_loop(watch, step_id, attempt, lambda: value, timeout, grace, resume)
    return await _on_loop(watch, step_id, attempt, call, timeout, grace, resume)


async def _on_loop(watch: LoopWatch, step_id: str, attempt: int,
                   call: Callable[[], Awaitable[Any]], timeout: timedelta | None,
                   grace: timedelta | None, resume: Resume | None) -> Any:
    info = watch.begin(step_id, attempt, resume)

    async def body() -> Any:
        _current.set(info)  # in the task's own copy of the context
        return await call()

    task = asyncio.ensure_future(body())
    watch.track(info, task)
    try:
        if info.cancelled.is_set():
            task.cancel()
        limit = None if timeout is None else timeout.total_seconds()
        done, _ = await asyncio.wait({task}, timeout=limit)
        if task in done:
            return _outcome(task, info)
        return await _timed_out(watch, info, task, timeout, grace)
    except asyncio.CancelledError:  # the run's own coroutine is cancelled: take the step
        task.cancel()
        raise
    finally:
        watch.untrack(info)
        watch.end(info)


def _outcome(task: asyncio.Task[Any], info: StepInfo) -> Any:
    if task.cancelled():
        raise StepCanceled(info.step_id, info.attempt)
    return task.result()


async def _timed_out(watch: LoopWatch, info: StepInfo, task: asyncio.Task[Any],
                     timeout: timedelta | None, grace: timedelta | None) -> Any:
    assert timeout is not None
    message = (f"step {info.step_id!r} did not finish within {timeout.total_seconds()}s "
               f"(attempt {info.attempt})")
    where = _where(task, f"StepTimeout: {message}\n")
    info.cancelled.set()
    task.cancel()
    wait = (timeout if grace is None else grace).total_seconds()
    done, _ = await asyncio.wait({task}, timeout=max(wait, 0.0))
    if task in done:
        if task.cancelled():
            raise StepTimeout(message, where)
        error = task.exception()
        raise StepTimeout(message, where, Late(error=error) if error is not None
                          else Late(result=task.result()))
    log.warning("run %s (workflow %s): step %r attempt %d ignored its cancellation and is "
                "still running %.3gs after its timeout; the run goes on without it and will "
                "discard what it returns", info.run_id, watch.workflow, info.step_id,
                info.attempt, wait, extra={"run_id": info.run_id, "workflow": watch.workflow,
                                           "step": info.step_id, "attempt": info.attempt})

    def late(ended: asyncio.Task[Any]) -> None:
        if not ended.cancelled():
            error = ended.exception()
            outcome = Late(error=error) if error is not None else Late(result=ended.result())
            watch.late(info.step_id, info.attempt, outcome)

    task.add_done_callback(late)
    raise StepTimeout(message, where)


def _where(task: asyncio.Task[Any], headline: str) -> str | None:
    frames = task.get_stack()
    if not frames:
        return None
    stack = traceback.StackSummary.extract((f, f.f_lineno) for f in frames)
    return stack_text(stack, headline)


class AsyncStepAttempts(StepAttempts):
    """`StepAttempts` whose attempts run on the loop (`run_async_attempt`)."""

    def __init__(self, host: Any, record: Callable[[ev.Event], None], watch: LoopWatch,
                 threads: Executor | None, observer: Observer = NO_OBSERVER) -> None:
        super().__init__(host, record, watch, observer)
        self._loop_watch, self._threads = watch, threads

    async def _run_async(self, op: str, attempt: int, call: Callable[[], Any], rules: Rules,
                         resume: Resume | None = None) -> Any:
        """One attempt of `op`, observed (`Observer.step`, current in its task)."""
        with self._observer.step(self._watch.run_id, self._host.journal.state.workflow_id,
                                 op, attempt):
            return await run_async_attempt(self._loop_watch, self._threads, op, attempt, call,
                                           rules.timeout, rules.grace, resume)

    async def attempt_async(self, op: str, call: Callable[[], Any],
                            rules: Rules) -> ev.StepCompleted | ev.StepSuspended | None:
        """As `StepAttempts.attempt`, awaited."""
        if self.lost([op], rules):
            return None
        journal = self._host.journal
        started, attempt = self._host.clock(), self._next(op)
        try:
            value = await self._run_async(op, attempt, call, rules,
                                          agent.resume_of(journal, op))
            asked = agent.suspension(value)
            if asked is not None:
                return agent.suspended(journal, op, attempt, asked, started)
            result = json_roundtrip(value, f"the result of step {op!r}")
        except Exception as exc:
            self._failed(op, attempt, exc, rules, started)
            return None
        return ev.StepCompleted(step_id=op, result=result, attempt=attempt, started_at=started)

    async def branches_async(self, ready: dict[str, str],
                             branches: Mapping[str, Callable[[], Any]], rules: Rules,
                             max_concurrency: int | None = None) -> None:
        """As `StepAttempts.branches`: the ready branches run concurrently on the loop
        (at most `max_concurrency` at once), journaled in branch order."""
        if self.lost(list(ready.values()), rules):
            return
        started = self._host.clock()
        attempts = {branch: self._next(step_id) for branch, step_id in ready.items()}
        gate = asyncio.Semaphore(max_concurrency or len(ready))

        async def one(branch: str) -> Any:
            async with gate:
                value = await self._run_async(ready[branch], attempts[branch],
                                              branches[branch], rules)
            return branch_result(value, ready[branch])

        outcomes = await asyncio.gather(*(one(b) for b in ready), return_exceptions=True)
        for (branch, step_id), out in zip(ready.items(), outcomes, strict=True):
            if isinstance(out, Exception):
                self._failed(step_id, attempts[branch], out, rules, started)
            elif isinstance(out, BaseException):
                raise out
            else:
                self.succeeded(ev.StepCompleted(step_id=step_id, result=out,
                                                started_at=started, attempt=attempts[branch]),
                               rules)
