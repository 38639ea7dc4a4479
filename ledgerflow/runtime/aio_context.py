"""`AsyncContext`: the `ctx` of an `async def` workflow.

The same operations as `Context`, journaled the same way (a history does not say
whether its workflow was sync or async, so replay, golden histories and non-determinism
checks are unchanged), but awaited: `await ctx.step(...)`, `await ctx.sleep(...)`,
`await ctx.wait_for_signal/event/token(...)`, `await ctx.parallel(...)`, `await
ctx.child(...)`. `ctx.now()` and `ctx.uuid()` stay plain calls. The journal's verdict
on each op comes from a `Context` it wraps; attempts run on the loop
(`aio_steps.AsyncStepAttempts`) and whatever may touch the store (a flush before a step,
a wait's timeout decision) goes through `io` (the loop's I/O threads; inline in the
`Replayer`).

Every ctx call returns an awaitable that does nothing until awaited, so a call made
without `await` leaves no trace; the next ctx call (or the workflow's return) fails the
run with `AsyncMisuse` naming it. Two ctx calls of one run may not be in flight at once
(`asyncio.gather(ctx.step(...), ctx.step(...))`): replay could not know their order;
`ctx.parallel` runs steps concurrently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Any, Protocol

from ledgerflow.runtime.aio_steps import AsyncStepAttempts, LoopWatch
from ledgerflow.runtime.attempts import Rules
from ledgerflow.runtime.context import Context, Session
from ledgerflow.runtime.errors import AsyncMisuse
from ledgerflow.runtime.observe import NO_OBSERVER, Observer
from ledgerflow.runtime.parallel import BranchSpec, split
from ledgerflow.runtime.retry import Backoff, RetryPolicy


class IO(Protocol):
    """Runs a blocking call (store I/O) off the loop and awaits it."""

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]: ...


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    """An `IO` that calls at once (the `Replayer`: no store)."""
    return fn(*args)


class _Call:
    """A ctx call: runs when awaited (once)."""

    __slots__ = ("_ctx", "_make", "label")

    def __init__(self, ctx: AsyncContext, label: str,
                 make: Callable[[], Awaitable[Any]]) -> None:
        self._ctx, self.label, self._make = ctx, label, make

    def __await__(self) -> Generator[Any, None, Any]:
        self._ctx._begin(self)
        try:
            return (yield from self._make().__await__())
        finally:
            self._ctx._busy = None


def _rules(max_attempts: int, backoff: Backoff, initial_delay: timedelta,
           max_delay: timedelta, timeout: timedelta | None, timeout_grace: timedelta | None,
           retry_on: tuple[type[BaseException], ...],
           non_retryable: tuple[type[BaseException], ...]) -> Rules:
    return Rules(RetryPolicy(max_attempts, backoff, initial_delay, max_delay), timeout,
                 retry_on, non_retryable, timeout_grace)


class AsyncContext:
    """The handle an `async def` workflow receives as `ctx` (see the module)."""

    def __init__(self, session: Session, io: IO, watch: LoopWatch | None = None,
                 threads: Executor | None = None,
                 faults: Callable[[str], None] | None = None,
                 before_step: Callable[[], Awaitable[None]] | None = None,
                 observer: Observer = NO_OBSERVER) -> None:
        """`io`: how blocking session calls are awaited; `watch` and `threads`: where
        attempts run and how a cancel reaches them (None: replay only, no attempt runs);
        `faults`: the engine's fault points; `before_step`: the session's `before_step`
        awaited (default: through `io`; a session that knows it has nothing to write
        spares the hop); `observer`: what wraps each step attempt."""
        self._ctx = Context(session, faults)
        self._session, self._io = session, io
        self._before_step = before_step or (lambda: io(session.before_step))
        self._steps = None if watch is None else AsyncStepAttempts(
            session, self._ctx._record, watch, threads, observer)
        self._faults = faults or (lambda name: None)
        self._issued: list[_Call] = []
        self._busy: _Call | None = None
        self.run_id, self.input = self._ctx.run_id, self._ctx.input
        self.workflow_id, self.workflow_version = (self._ctx.workflow_id,
                                                   self._ctx.workflow_version)
        self.tenant_meta, self.tags = self._ctx.tenant_meta, self._ctx.tags

    # ------------------------------------------------------- the sync context's

    @property
    def compensations(self) -> list[Any]:
        return self._ctx.compensations

    @property
    def diverged(self) -> Exception | None:
        return self._ctx.diverged

    @property
    def replayed_ops(self) -> int:
        return self._ctx._cursor

    def finish(self) -> None:
        """The workflow returned: every call awaited, nothing of history left unmet."""
        self.check_awaited()
        self._ctx.finish()

    def now(self) -> datetime:
        """The current time, journaled: replay returns the same value (not awaited)."""
        self.check_awaited()
        return self._ctx.now()

    def uuid(self) -> str:
        """A random UUID, journaled: replay returns the same value (not awaited)."""
        self.check_awaited()
        return self._ctx.uuid()

    # ------------------------------------------------------- awaiting discipline

    def check_awaited(self) -> None:
        """`AsyncMisuse` if a ctx call was made and never awaited."""
        if self._issued:
            label = self._issued[0].label
            raise AsyncMisuse(
                f"workflow {self.workflow_id!r} (run {self.run_id!r}) called {label} "
                "without await: in an async workflow every ctx call but now() and uuid() "
                f"must be awaited (`await {label}`)")

    def _call(self, label: str, make: Callable[[], Awaitable[Any]]) -> _Call:
        self.check_awaited()
        call = _Call(self, label, make)
        self._issued.append(call)
        return call

    def _begin(self, call: _Call) -> None:
        if call in self._issued:
            self._issued.remove(call)
        if self._busy is not None:
            raise AsyncMisuse(
                f"workflow {self.workflow_id!r} (run {self.run_id!r}) awaited {call.label} "
                f"while {self._busy.label} was still in flight: ctx calls of a run go one "
                "at a time (replay must meet them in one order); use ctx.parallel to run "
                "steps concurrently")
        self._busy = call

    # ------------------------------------------------------------------ steps

    def step(self, name: str, fn: Callable[..., Any], *args: Any, max_attempts: int = 1,
             backoff: Backoff = "exponential", initial_delay: timedelta = timedelta(seconds=1),
             max_delay: timedelta = timedelta(minutes=5), timeout: timedelta | None = None,
             timeout_grace: timedelta | None = None,
             retry_on: tuple[type[BaseException], ...] = (Exception,),
             non_retryable: tuple[type[BaseException], ...] = (),
             compensate: Callable[[Any], Any] | None = None) -> Awaitable[Any]:
        """`Context.step`, awaited: `fn` may be `async def` (runs on the loop; a timeout
        or a cancel cancels it) or plain (runs in a thread). `compensate` may be async."""
        rules = _rules(max_attempts, backoff, initial_delay, max_delay, timeout,
                       timeout_grace, retry_on, non_retryable)
        return self._call(f"ctx.step({name!r})",
                          lambda: self._step(name, lambda: fn(*args), rules, compensate))

    async def _step(self, name: str, call: Callable[[], Any], rules: Rules,
                    compensate: Callable[[Any], Any] | None) -> Any:
        ctx = self._ctx
        op = ctx._step_op(name)
        while True:
            done, result = ctx._step_due(op, compensate, rules)
            if done:
                return result
            await self._before_step()
            assert self._steps is not None
            outcome = await self._steps.attempt_async(op, call, rules)
            if outcome is not None:
                self._faults("step_executed")
                self._steps.succeeded(outcome, rules)

    def parallel(self, name: str, branches: Mapping[str, BranchSpec], *,
                 max_concurrency: int | None = None,
                 max_attempts: int = 1, backoff: Backoff = "exponential",
                 initial_delay: timedelta = timedelta(seconds=1),
                 max_delay: timedelta = timedelta(minutes=5), timeout: timedelta | None = None,
                 timeout_grace: timedelta | None = None,
                 retry_on: tuple[type[BaseException], ...] = (Exception,),
                 non_retryable: tuple[type[BaseException], ...] = ()) -> Awaitable[Any]:
        """`Context.parallel`, awaited: the branches' coroutines run concurrently on the
        loop (plain callables in threads); returns `{branch: result}`."""
        rules = _rules(max_attempts, backoff, initial_delay, max_delay, timeout,
                       timeout_grace, retry_on, non_retryable)
        return self._call(f"ctx.parallel({name!r})",
                          lambda: self._parallel(name, branches, max_concurrency, rules))

    async def _parallel(self, name: str, branches: Mapping[str, BranchSpec],
                        max_concurrency: int | None, rules: Rules) -> dict[str, Any]:
        ctx = self._ctx
        calls, undo = split(branches, max_concurrency)
        op = ctx._op(name)
        ids = ctx._branch_ids(op, branches)
        gathered: set[str] = set()
        while True:
            done, ready = ctx._branches_due(op, ids, undo, gathered, rules)
            if done is not None:
                return done
            await self._before_step()
            assert self._steps is not None
            await self._steps.branches_async(ready, calls, rules, max_concurrency)

    # ------------------------------------------------------------------ waits

    def sleep(self, name: str, duration: timedelta | None = None, *,
              until: datetime | None = None) -> Awaitable[None]:
        """`Context.sleep`, awaited (a durable timer: the run parks, no task waits)."""
        return self._call(f"ctx.sleep({name!r})", lambda: self._now(
            self._ctx.sleep, name, duration, until=until))

    def wait_for_signal(self, name: str, timeout: timedelta | None = None) -> Awaitable[Any]:
        """`Context.wait_for_signal`, awaited."""
        return self._call(f"ctx.wait_for_signal({name!r})", lambda: self._io(
            self._ctx.wait_for_signal, name, timeout))

    def wait_for_event(self, event_type: str,
                       timeout: timedelta | None = None) -> Awaitable[Any]:
        """`Context.wait_for_event`, awaited."""
        return self._call(f"ctx.wait_for_event({event_type!r})", lambda: self._io(
            self._ctx.wait_for_event, event_type, timeout))

    def wait_for_token(self, name: str, timeout: timedelta | None = None) -> Awaitable[Any]:
        """`Context.wait_for_token`, awaited."""
        return self._call(f"ctx.wait_for_token({name!r})", lambda: self._io(
            self._ctx.wait_for_token, name, timeout))

    def child(self, name: str, workflow_name: str, input: Any = None) -> Awaitable[Any]:
        """`Context.child`, awaited: the child run's result."""
        return self._call(f"ctx.child({name!r})", lambda: self._now(
            self._ctx.child, name, workflow_name, input))

    @staticmethod
    async def _now(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)
