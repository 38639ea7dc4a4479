"""`Context`: what workflow code calls. Every call is journaled or replayed.

A run re-executes its function from the top. Each call gets an op id (its name,
`name#n` for the n-th call of that name; `cursor.OpCursor` checks them against
history); an op with a journaled outcome returns it without running, a new op runs
and its outcome is recorded. Step attempts run and are journaled by
`attempts.StepAttempts`. Suspension (sleep, waits, retry back-off, children)
unwinds the function with `Park`; a later claim re-runs it from the top.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ledgerflow.domain import events as ev
from ledgerflow.runtime import agent
from ledgerflow.runtime.attempts import Rules, StepAttempts
from ledgerflow.runtime.chunks import Streams
from ledgerflow.runtime.errors import ChildFailed, StepFailed, WaitTimeout
from ledgerflow.runtime.failures import NotSerializable as NotSerializable
from ledgerflow.runtime.failures import json_roundtrip as json_roundtrip
from ledgerflow.runtime.observe import NO_OBSERVER, Observer
from ledgerflow.runtime.parallel import BranchSpec, newly_done, split
from ledgerflow.runtime.retry import Backoff, RetryPolicy
from ledgerflow.runtime.steps import RunWatch

if TYPE_CHECKING:
    from ledgerflow.runtime.journal import Journal


class Session(Protocol):
    """What a Context needs from whoever executes (or merely replays) the run."""

    @property
    def journal(self) -> Journal: ...
    def clock(self) -> datetime: ...
    def record(self, event: ev.Event) -> bool: ...  # InvalidEvent: the store refuses it
    def before_step(self) -> None: ...
    def decide_now(self, decision: list[ev.Event]) -> bool: ...
    def check_workflow(self, name: str) -> None: ...

TOKEN_NAMESPACE = uuid.UUID("6f1b3c1e-5a55-4c8e-9a4e-1d2f0b7c9e01")


class Park(BaseException):
    """Unwinds the workflow function: the run waits at `waitpoint` until `due_at`."""

    def __init__(self, waitpoint: ev.Waitpoint, due_at: datetime | None,
                 facts: list[ev.Event] | None = None, child: ChildSpec | None = None) -> None:
        self.waitpoint, self.due_at, self.facts, self.child = waitpoint, due_at, facts or [], child
        super().__init__(f"park at {waitpoint.kind} {waitpoint.name!r}")


@dataclass(frozen=True)
class ChildSpec:
    """A child run to create in the transaction that parks its parent."""

    run_id: str
    step_id: str
    workflow_id: str
    input: Any


@dataclass
class Compensation:
    """A completed step's compensator, gathered as replay passes the step."""

    step_id: str
    fn: Callable[[Any], Any]
    result: Any
    policy: RetryPolicy = field(default_factory=RetryPolicy)


def token_id_for(run_id: str, op: str) -> str:
    """A wait's token id: stable across replays of the same run."""
    return str(uuid.uuid5(TOKEN_NAMESPACE, f"{run_id}/{op}"))


def _no_faults(name: str) -> None:
    """No fault point is armed (a replay, or a host that arms none)."""


class StepCursor(Streams):
    """What the journal says about a run's steps and parallel branches: completed (and
    their compensators gathered), failed for good, waiting, or due for an attempt. Shared
    by `Context` and the async context (`runtime.aio_context`), which run the attempts."""

    def __init__(self, session: Session) -> None:
        super().__init__(session, session.journal.state.run_id)
        self._session = session
        self.compensations: list[Compensation] = []

    def _step_op(self, name: str) -> str:
        op = self._op(name)
        self._enter(op, "step")
        self._seed(op)
        return op

    def _step_due(self, op: str, compensate: Callable[[Any], Any] | None,
                  rules: Rules) -> tuple[bool, Any]:
        """(True, result) if step `op` completed; (False, None) if an attempt is due;
        raises `StepFailed` (failed for good) or `Park` (waits for a retry or a token)."""
        j = self._j
        if op in j.results:
            return True, self._completed(op, j.results[op], compensate, rules.policy)
        if op in j.failures:
            failed = j.failures[op]
            raise StepFailed(op, failed.error, failed.attempt)
        suspended = agent.waiting(j, op)
        if suspended is not None:  # an agent step waits for its tool results
            raise Park(suspended, None)
        due = j.retry_due.get(op)
        if due is not None and due > self._session.clock():
            raise Park(ev.Waitpoint(kind="retry", name=op, wake_at=due), due)
        return False, None

    def _seed(self, op: str) -> None:
        """A step of a resumed run with a seeded result: journal the seed, do not run."""
        j = self._j
        if op not in j.attempts and op not in j.results and op in j.seeds:
            self._record(ev.StepCompleted(step_id=op, result=j.seeds[op], attempt=0))

    def _completed(self, op: str, result: Any, compensate: Callable[[Any], Any] | None,
                   policy: RetryPolicy) -> Any:
        if compensate is not None:
            self.compensations.append(Compensation(op, compensate, result, policy))
        return result

    def _branches_due(self, op: str, ids: dict[str, str],
                      undo: Mapping[str, Callable[[Any], Any]], gathered: set[str],
                      rules: Rules) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """({branch: result}, {}) once every branch of parallel `op` completed, else
        (None, {branch: step id} of those due now); raises `StepFailed` (a branch failed
        for good) or `Park` (every branch left waits for a retry)."""
        j = self._j
        for step_id, fn, result in newly_done(ids, undo, j.results, gathered):
            self._completed(step_id, result, fn, rules.policy)
        for step_id in ids.values():
            if step_id in j.failures:
                failed = j.failures[step_id]
                raise StepFailed(step_id, failed.error, failed.attempt)
        todo = {b: i for b, i in ids.items() if i not in j.results}
        if not todo:
            return {branch: j.results[step_id] for branch, step_id in ids.items()}, {}
        now = self._session.clock()
        ready = {b: i for b, i in todo.items() if j.retry_due.get(i, now) <= now}
        if not ready:
            due = min(j.retry_due[i] for i in todo.values())
            raise Park(ev.Waitpoint(kind="retry", name=op, wake_at=due), due)
        return None, ready

    def _branch_ids(self, op: str, branches: Mapping[str, Any]) -> dict[str, str]:
        """{branch: step id} of parallel `op`, its journaled branches met, seeds applied."""
        ids = {branch: f"{op}/{branch}" for branch in branches}
        recorded = {i for i in ids.values() if i in self._j.attempts}
        for _ in recorded:
            self._enter_any(recorded, f"parallel {op!r} branch")
        for step_id in ids.values():
            self._seed(step_id)
        return ids


class Context(StepCursor):
    """The handle a workflow function receives as `ctx`."""

    def __init__(self, session: Session, faults: Callable[[str], None] | None = None,
                 watch: RunWatch | None = None, observer: Observer = NO_OBSERVER) -> None:
        """`faults`: the engine's fault points (crash tests arm `step_executed`);
        `watch`: how a cancel reaches this run's step attempts (the executor's);
        `observer`: what wraps each step attempt (the runtime's: spans, see `observe`)."""
        state = session.journal.state
        super().__init__(session)
        self._faults = faults or _no_faults
        self.workflow_id: str = state.workflow_id
        self.workflow_version: str = state.workflow_version
        self.input: Any = state.input
        self.tenant_meta: dict[str, Any] = dict(state.tenant_meta)
        self.tags: tuple[str, ...] = state.tags
        self._items: dict[tuple[str, str], int] = {}
        self._steps = StepAttempts(session, self._record,
                                   watch if watch is not None else RunWatch(state.run_id),
                                   observer)

    def now(self) -> datetime:
        """The current time, journaled: replay returns the same value."""
        op = self._op("$now")
        self._enter(op, "ctx.now()")
        if op in self._j.values:
            return datetime.fromisoformat(self._j.values[op])
        value = self._session.clock()
        self._record(ev.ValueRecorded(key=op, value=value.isoformat()))
        return value

    def uuid(self) -> str:
        """A random UUID, journaled: replay returns the same value."""
        op = self._op("$uuid")
        self._enter(op, "ctx.uuid()")
        if op in self._j.values:
            return str(self._j.values[op])
        value = str(uuid.uuid4())
        self._record(ev.ValueRecorded(key=op, value=value))
        return value

    # --------------------------------------------------------------------- steps

    def step(self, name: str, fn: Callable[..., Any], *args: Any, max_attempts: int = 1,
             backoff: Backoff = "exponential", initial_delay: timedelta = timedelta(seconds=1),
             max_delay: timedelta = timedelta(minutes=5), timeout: timedelta | None = None,
             timeout_grace: timedelta | None = None,
             retry_on: tuple[type[BaseException], ...] = (Exception,),
             non_retryable: tuple[type[BaseException], ...] = (),
             compensate: Callable[[Any], Any] | None = None) -> Any:
        """Run `fn(*args)` at least once until it succeeds; its result is journaled.

        Failures are retried up to `max_attempts` (back-off delays are durable due
        times, not sleeps); the last failure raises `StepFailed`. `compensate(result)`
        runs if the run later rolls back. An attempt running past `timeout` fails with
        `StepTimeout` and its `current_step().cancelled` is set; the run waits up to
        `timeout_grace` (default: `timeout`) for it to return before it goes on (what
        it returns then is journaled as discarded, never used).
        """
        rules = Rules(RetryPolicy(max_attempts, backoff, initial_delay, max_delay), timeout,
                      retry_on, non_retryable, timeout_grace)
        op = self._step_op(name)
        while True:  # the journal says where the step is; run an attempt if it is due
            done, result = self._step_due(op, compensate, rules)
            if done:
                return result
            self._session.before_step()
            self._attempt(op, lambda: fn(*args), rules)

    def _attempt(self, op: str, call: Callable[[], Any], rules: Rules) -> None:
        """One attempt of step `op`, journaled: StepCompleted (or StepSuspended), or
        StepFailed (final, or with RetryScheduled for the next attempt). The caller reads
        the journal."""
        outcome = self._steps.attempt(op, call, rules)
        if outcome is None:
            return
        self._faults("step_executed")
        self._steps.succeeded(outcome, rules)

    def parallel(self, name: str, branches: Mapping[str, BranchSpec], *,
                 max_concurrency: int | None = None,
                 max_attempts: int = 1, backoff: Backoff = "exponential",
                 initial_delay: timedelta = timedelta(seconds=1),
                 max_delay: timedelta = timedelta(minutes=5), timeout: timedelta | None = None,
                 timeout_grace: timedelta | None = None,
                 retry_on: tuple[type[BaseException], ...] = (Exception,),
                 non_retryable: tuple[type[BaseException], ...] = ()) -> dict[str, Any]:
        """Run each branch (a no-argument callable, or a `Branch(fn, compensate=undo)`)
        concurrently, at most `max_concurrency` at once (default: all), each journaled
        as step `name/branch` with `ctx.step`'s retry options; returns `{branch: result}`.

        Each round runs the branches that are due; failed ones with attempts left are
        retried in a later round (after a back-off: the run parks until the earliest).
        A branch's last failure raises `StepFailed` once its round is journaled (pending
        retries of the others are then dropped). A completed branch's compensator runs,
        like a step's, if the run rolls back.
        """
        rules = Rules(RetryPolicy(max_attempts, backoff, initial_delay, max_delay), timeout,
                      retry_on, non_retryable, timeout_grace)
        calls, undo = split(branches, max_concurrency)
        op = self._op(name)
        ids = self._branch_ids(op, branches)
        gathered: set[str] = set()
        while True:
            done, ready = self._branches_due(op, ids, undo, gathered, rules)
            if done is not None:
                return done
            self._session.before_step()
            self._steps.branches(ready, calls, rules, max_concurrency)

    # --------------------------------------------------------------------- waits

    def sleep(self, name: str, duration: timedelta | None = None, *,
              until: datetime | None = None) -> None:
        """Wait durably for `duration`, or until `until` (a due time in the run queue)."""
        if (duration is None) == (until is None):
            raise ValueError("ctx.sleep needs exactly one of duration or until=")
        op = self._op(name)
        self._enter(op, "sleep")
        j = self._j
        if op in j.fired:
            return
        wp = j.waits.get(op)
        if wp is None:
            wake = until if until is not None else self._session.clock() + (duration or
                                                                            timedelta(0))
            wp = ev.Waitpoint(kind="sleep", name=op, wake_at=wake)
        assert wp.wake_at is not None
        if wp.wake_at <= self._session.clock():
            self._record(ev.TimerFired(name=op))
            return
        raise Park(wp, wp.wake_at)

    def wait_for_signal(self, name: str, timeout: timedelta | None = None) -> Any:
        """The payload of the next signal `name` (buffered if it came earlier)."""
        return self._wait_item("signal", name, timeout)

    def wait_for_event(self, event_type: str, timeout: timedelta | None = None) -> Any:
        """The payload of the next external event of `event_type`."""
        return self._wait_item("event", event_type, timeout)

    def _wait_item(self, kind: Literal["signal", "event"], name: str,
                   timeout: timedelta | None) -> Any:
        index = self._items.get((kind, name), 0)
        self._items[(kind, name)] = index + 1
        item = self._j.pending_item(kind, name, index)
        if item is not None:
            if item.timed_out:
                raise WaitTimeout(kind, name)
            return item.payload
        wp = self._j.item_waits.get((kind, name, index))
        if wp is None:
            at = None if timeout is None else self._session.clock() + timeout
            wp = ev.Waitpoint(kind=kind, name=name, timeout_at=at)
        self._park_or_time_out(wp)
        raise AssertionError("unreachable")

    def wait_for_token(self, name: str, timeout: timedelta | None = None) -> Any:
        """Wait until the run's token for this wait is resolved; returns its payload.

        The token id is on the run's waitpoint (`tokenId`) while it waits."""
        op = self._op(name)
        self._enter(op, "token wait")
        j = self._j
        token = token_id_for(self.run_id, op)
        if token in j.tokens:
            return j.tokens[token]
        if op in j.timed_out:
            raise WaitTimeout("token", name)
        wp = j.waits.get(op)
        if wp is None:
            at = None if timeout is None else self._session.clock() + timeout
            wp = ev.Waitpoint(kind="token", name=op, token_id=token, timeout_at=at)
        self._park_or_time_out(wp)
        raise AssertionError("unreachable")

    def _park_or_time_out(self, wp: ev.Waitpoint) -> None:
        if wp.timeout_at is not None and wp.timeout_at <= self._session.clock():
            if self._session.decide_now([ev.WaitTimedOut(kind=wp.kind, name=wp.name)]):
                self._cursor += 1
            raise WaitTimeout(wp.kind, wp.name)
        raise Park(wp, wp.timeout_at)

    def child(self, name: str, workflow_name: str, input: Any = None) -> Any:
        """Start child run `workflow_name(input)` and return its result (`ChildFailed`
        if it fails or is canceled)."""
        op = self._op(name)
        self._enter(op, "child")
        j = self._j
        done = j.child_done.get(op)
        if done is not None:
            if done.status == "completed":
                return done.result
            raise ChildFailed(op, done.child_run_id, done.status, done.error)
        wp = ev.Waitpoint(kind="child", name=op)
        if op in j.children:
            raise Park(wp, None)
        child_id = token_id_for(self.run_id, op)
        self._session.check_workflow(workflow_name)
        started = ev.ChildStarted(step_id=op, child_run_id=child_id, workflow_id=workflow_name)
        spec = ChildSpec(child_id, op, workflow_name,
                         json_roundtrip(input, f"the input of child {op!r}"))
        raise Park(wp, None, [started], spec)
