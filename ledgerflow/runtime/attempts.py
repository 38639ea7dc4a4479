"""Journaling step attempts: run one (`steps.run_attempt`) and record what came of it.

`StepAttempts` is what `Context.step` and `Context.parallel` use once the journal says
an attempt is due. They record StepCompleted (unless the store would refuse it: then
the step fails with that error), or StepFailed (final, or followed by RetryScheduled),
and then StepResultDiscarded for anything a timed-out attempt returned within its
grace period. A step's attempt may instead return a suspension
(StepSuspended, see `runtime.agent`); a parallel branch's may not. Before the first
attempt it runs, a remote run's session may hand over attempts whose outcome was lost
(`RunWatch.lost`: requests to the workflow handler that failed); they are recorded as
failed attempts of the step (of each ready branch), retried by its policy. Each failed
attempt is logged as one WARNING line on logger `ledgerflow.executor`, naming the run, workflow,
step, attempt and error. `run_id`, `workflow`, `step` and `attempt` are also passed as
`extra` fields, so a structured formatter can read them, and so is `traceback` (the
stored one, the user's frames only). The text of the line stays one line.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import InvalidEvent
from ledgerflow.runtime import agent
from ledgerflow.runtime.errors import AsyncMisuse, AttemptLost, StepCanceled
from ledgerflow.runtime.failures import NotSerializable, error_info, json_roundtrip
from ledgerflow.runtime.observe import NO_OBSERVER, Observer
from ledgerflow.runtime.retry import RetryPolicy
from ledgerflow.runtime.steps import Late, Resume, RunWatch, StepTimeout, run_attempt

if TYPE_CHECKING:
    from ledgerflow.runtime.journal import Journal

log = logging.getLogger("ledgerflow.executor")


class Host(Protocol):
    """What recording attempts needs from the session executing the run."""

    @property
    def journal(self) -> Journal: ...
    def clock(self) -> datetime: ...


class CannotSuspend(Exception):
    """A parallel branch returned a suspension (only a step of its own may suspend)."""


@dataclass(frozen=True)
class Rules:
    """How a step's attempts go: retry policy, per-attempt timeout and its grace
    period, what is retried."""

    policy: RetryPolicy
    timeout: timedelta | None
    retry_on: tuple[type[BaseException], ...]
    non_retryable: tuple[type[BaseException], ...]
    grace: timedelta | None = None

    def __post_init__(self) -> None:
        if self.grace is not None and self.grace < timedelta(0):
            raise ValueError(f"timeout_grace must not be negative, got {self.grace}")

    def retryable(self, exc: Exception) -> bool:
        if isinstance(exc, AttemptLost):
            return True
        return (isinstance(exc, self.retry_on) and not isinstance(exc, self.non_retryable)
                and not isinstance(exc, NotSerializable | CannotSuspend | InvalidEvent | AsyncMisuse
                                       | StepCanceled))


def discarded(step_id: str, attempt: int, late: Late) -> ev.StepResultDiscarded:
    """The journal's record of what a timed-out attempt returned or raised."""
    if late.error is not None:
        return ev.StepResultDiscarded(step_id=step_id, attempt=attempt,
                                      error=error_info(late.error, step_id))
    try:
        result = json_roundtrip(late.result, f"the late result of step {step_id!r}")
    except NotSerializable as exc:
        return ev.StepResultDiscarded(step_id=step_id, attempt=attempt,
                                      error=error_info(exc, step_id))
    return ev.StepResultDiscarded(step_id=step_id, attempt=attempt, result=result)


def sync_value(value: Any, step_id: str) -> Any:
    """What a step of a sync workflow returned; `AsyncMisuse` for an awaitable (an `async
    def` step: only an async workflow can await it)."""
    if inspect.isawaitable(value):
        if inspect.iscoroutine(value):
            value.close()
        raise AsyncMisuse(
            f"step {step_id!r} returned {type(value).__name__} to await, but its workflow "
            "is a plain `def`, which cannot await: declare the workflow `async def` and "
            f"`await ctx.step(...)`, or make the step a plain function")
    return value


def branch_result(value: Any, step_id: str) -> Any:
    """A parallel branch's result, as journaled (a suspension is refused)."""
    if agent.suspension(value) is not None:
        raise CannotSuspend(f"branch {step_id!r} returned a suspension, but a parallel branch "
                            "cannot suspend the run: make the agent a step of its own")
    return json_roundtrip(value, f"branch {step_id!r}")


class StepAttempts:
    """Runs due attempts of one run's steps and records their outcomes."""

    def __init__(self, host: Host, record: Callable[[ev.Event], None], watch: RunWatch,
                 observer: Observer = NO_OBSERVER) -> None:
        self._host, self._record, self._watch = host, record, watch
        self._observer = observer

    def _run(self, op: str, attempt: int, call: Callable[[], Any], rules: Rules,
             resume: Resume | None = None) -> Any:
        """One attempt of `op`, observed (`Observer.step`: in the thread running it)."""
        with self._observer.step(self._watch.run_id, self._host.journal.state.workflow_id,
                                 op, attempt):
            return run_attempt(self._watch, op, attempt, call, rules.timeout, rules.grace,
                               resume)

    def _next(self, op: str) -> int:
        return self._host.journal.attempts.get(op, 0) + 1

    def attempt(self, op: str, call: Callable[[], Any],
                rules: Rules) -> ev.StepCompleted | ev.StepSuspended | None:
        """Run the next attempt of step `op`. Returns its completion (or its suspension:
        an agent step, see `runtime.agent`), which the caller records; a failure is
        recorded here (None)."""
        if self.lost([op], rules):
            return None
        journal = self._host.journal
        started, attempt = self._host.clock(), self._next(op)
        try:
            value = sync_value(self._run(op, attempt, call, rules,
                                         agent.resume_of(journal, op)), op)
            asked = agent.suspension(value)
            if asked is not None:
                return agent.suspended(journal, op, attempt, asked, started)
            result = json_roundtrip(value, f"the result of step {op!r}")
        except Exception as exc:
            self._failed(op, attempt, exc, rules, started)
            return None
        return ev.StepCompleted(step_id=op, result=result, attempt=attempt, started_at=started)

    def branches(self, ready: dict[str, str], branches: Mapping[str, Callable[[], Any]],
                 rules: Rules, max_concurrency: int | None = None) -> None:
        """One attempt of each ready branch, at most `max_concurrency` at once (default:
        all); journaled in branch order."""
        if self.lost(list(ready.values()), rules):
            return
        started = self._host.clock()
        attempts = {branch: self._next(step_id) for branch, step_id in ready.items()}
        with ThreadPoolExecutor(max_workers=min(len(ready), max_concurrency or len(ready))) \
                as pool:
            futures = {b: pool.submit(contextvars.copy_context().run, self._run, ready[b],
                                      attempts[b], branches[b], rules) for b in ready}
            outcomes: dict[str, Any] = {}
            for branch, future in futures.items():
                try:
                    outcomes[branch] = branch_result(sync_value(future.result(), ready[branch]),
                                                     ready[branch])
                except Exception as exc:
                    outcomes[branch] = exc
        for branch, step_id in ready.items():
            out = outcomes[branch]
            if isinstance(out, Exception):
                self._failed(step_id, attempts[branch], out, rules, started)
            else:
                self.succeeded(ev.StepCompleted(step_id=step_id, result=out,
                                                started_at=started, attempt=attempts[branch]),
                               rules)

    def lost(self, ops: list[str], rules: Rules) -> bool:
        """Record the run's lost attempts (`RunWatch.lost`, taken) as failed attempts of
        each of `ops` (a step, or the branches that were due together), until one fails
        for good; whether there were any: the caller then reads the journal again."""
        lost = self._watch.lost
        if not lost:  # every inline attempt: nothing to take
            return False
        self._watch.lost = []
        for op in ops:
            for exc in lost:
                if op in self._host.journal.failures:
                    break
                self._failed(op, self._next(op), exc, rules, exc.started_at)
        return True

    def succeeded(self, outcome: ev.StepCompleted | ev.StepSuspended, rules: Rules) -> None:
        """Record an attempt's completion (or suspension). One the store refuses
        (`InvalidEvent`: larger than `LEDGERFLOW_MAX_EVENT_BYTES`) fails the step instead,
        with that error, and is not retried (the same result would be refused again)."""
        try:
            self._record(outcome)
        except InvalidEvent as exc:
            self._failed(outcome.step_id, outcome.attempt, exc, rules,
                         outcome.started_at or self._host.clock())

    def _failed(self, op: str, attempt: int, exc: Exception, rules: Rules,
                started: datetime) -> None:
        tried = attempt - agent.round_base(self._host.journal, op)  # in this round
        final = not rules.retryable(exc) or tried >= rules.policy.max_attempts
        timeout = exc if isinstance(exc, StepTimeout) else None
        info = error_info(exc, op, where=None if timeout is None else timeout.where)
        self._log(op, attempt, final, info)
        self._record(ev.StepFailed(step_id=op, attempt=attempt, error=info, final=final,
                                   started_at=started))
        if timeout is not None and timeout.late is not None:
            self._record(discarded(op, attempt, timeout.late))
        delay = rules.policy.delay_after(tried)
        if not final and delay > timedelta(0):  # no delay: the caller retries at once
            due = self._host.clock() + delay
            self._record(ev.RetryScheduled(step_id=op, attempt=attempt + 1, due_at=due))

    def _log(self, op: str, attempt: int, final: bool, error: ev.ErrorInfo) -> None:
        state = self._host.journal.state
        log.warning("run %s (workflow %s): step %r attempt %d failed%s: %s: %s",
                    state.run_id, state.workflow_id, op, attempt,
                    "" if final else ", will retry", error.type, error.message,
                    extra={"run_id": state.run_id, "workflow": state.workflow_id,
                           "step": op, "attempt": attempt, "traceback": error.traceback})
