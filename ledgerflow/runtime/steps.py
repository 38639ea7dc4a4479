"""Step attempts: what a step's code sees, how one attempt runs, and how a timeout or a
cancel reaches it.

- `current_step()`, called in a step's code, returns `StepInfo(run_id, step_id, attempt,
  cancelled, resume_data, suspended_state)` (the last two: an agent step entered again
  after it suspended, see `runtime.agent`). `cancelled` is a `threading.Event` set when
  the attempt times out or its run is canceled. Python cannot stop a thread from
  outside, so a long step checks `cancelled` (`is_set()`, or `wait(seconds)` instead of
  `time.sleep`) and returns early.
- `run_attempt` runs one attempt. Without a timeout it runs in the calling thread. With
  a timeout it runs in a daemon thread of its own, with a copy of the caller's
  contextvars. At the timeout, `cancelled` is set and the caller waits up to the grace
  period for the attempt to return. If it returns in time, `StepTimeout.late` holds what
  it returned or raised (journaled as discarded). If it does not, a warning is logged,
  `StepTimeout` is raised at once, and when the attempt returns its outcome goes to its
  watch's `on_late`. Either way, the next attempt never overlaps a previous one that
  returns within the grace period.
- `RunWatch`: the attempts in flight of one executing run. `InFlight` (on the
  `Runtime`): the watches of this process. `RunCommands.cancel` cancels a run's watch
  directly. A cancel made in another process reaches the watch through the heartbeat:
  `InFlight.poll` reads the streams of runs that have attempts in flight, past what their
  session wrote, so the delay is at most one heartbeat (lease / 3).

Interface: `Context` calls `run_attempt`. `RunSession` owns a `RunWatch` and registers
it in `Runtime.inflight` while it executes. The store is read only through the function
passed to `InFlight.poll`.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ledgerflow.domain import events as ev
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.runtime.errors import AttemptLost
from ledgerflow.runtime.failures import stack_text

log = logging.getLogger("ledgerflow.executor")


@dataclass(frozen=True)
class StepInfo:
    """The attempt a step's code is running (see `current_step`)."""

    run_id: str
    step_id: str
    attempt: int
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False,
                                       repr=False)
    """Set when this attempt timed out or its run was canceled: return soon."""
    resume_data: Any = None
    """An agent step entered again after it suspended: the payload its token was
    resolved with (the tool results); None otherwise (see `runtime.agent`)."""
    suspended_state: Any = None
    """An agent step entered again after it suspended: the `state` it suspended with."""
    emit: Callable[[str, Any], None] | None = field(default=None, compare=False, repr=False)

    def stream(self, name: str, chunk: Any) -> None:
        """Append `chunk` (any JSON value) to the run's stream `name` now, while the step
        runs (see `runtime.chunks`: a retry streams again, as its own attempt)."""
        if self.emit is None:
            raise RuntimeError("this step attempt has no run to stream to (it is not "
                               "executed by a ledgerflow worker)")
        self.emit(name, chunk)


@dataclass(frozen=True)
class Resume:
    """What an attempt of a suspended agent step is entered with: its token's payload
    and the state the step suspended with."""

    data: Any
    state: Any


_current: ContextVar[StepInfo | None] = ContextVar("ledgerflow_current_step", default=None)


def current_step() -> StepInfo:
    """The step attempt running this code (`RuntimeError` outside a step)."""
    info = _current.get()
    if info is None:
        raise RuntimeError("ledgerflow.current_step() is only available in the code of a "
                           "step (a function given to ctx.step or ctx.parallel)")
    return info


@dataclass(frozen=True)
class Late:
    """What an attempt returned (`result`) or raised (`error`) after its timeout."""

    result: Any = None
    error: BaseException | None = None


class StepTimeout(Exception):
    """A step attempt ran longer than its `timeout` (the attempt counts as failed).

    `where`: the user's frames the attempt was in when it timed out; `late`: what it
    returned within the grace period (None if it had not returned by then)."""

    def __init__(self, message: str, where: str | None = None, late: Late | None = None) -> None:
        super().__init__(message)
        self.where, self.late = where, late


LateSink = Callable[[str, int, Late], None]
"""Takes (step id, attempt, outcome) of an attempt that returned after its grace period."""


class RunWatch:
    """The attempts in flight of one executing run: a cancel sets their `cancelled`."""

    def __init__(self, run_id: str, version: int = 0, on_late: LateSink | None = None,
                 workflow: str = "") -> None:
        self.run_id, self.workflow = run_id, workflow
        self.version = version
        """The stream version the run's session has written up to (`InFlight.poll`)."""
        self.canceled = False
        self._on_late = on_late
        self._lock = threading.Lock()
        self._active: dict[int, StepInfo] = {}
        self.chunks: Callable[[str, int, str, Any], None] | None = None
        """Where its attempts' `stream` chunks go (the session's `ChunkWriter`)."""
        self.lost: list[AttemptLost] = []
        """Attempts whose outcome was lost, recorded as failed before the next attempt
        runs (`attempts.StepAttempts.lost`; set by a remote run's handler session)."""

    @property
    def busy(self) -> bool:
        """Whether an attempt is in flight."""
        return bool(self._active)

    def begin(self, step_id: str, attempt: int, resume: Resume | None = None) -> StepInfo:
        """An attempt starts (already `cancelled` if the run was canceled)."""
        resumed = resume or Resume(None, None)
        sink = self.chunks
        emit = None if sink is None else functools.partial(sink, step_id, attempt)
        info = StepInfo(self.run_id, step_id, attempt, resume_data=resumed.data,
                        suspended_state=resumed.state, emit=emit)
        with self._lock:
            if self.canceled:
                info.cancelled.set()
            self._active[id(info)] = info
        return info

    def end(self, info: StepInfo) -> None:
        with self._lock:
            self._active.pop(id(info), None)

    def cancel(self) -> None:
        """The run was canceled: set every attempt's `cancelled`, now and later."""
        with self._lock:
            self.canceled = True
            active = list(self._active.values())
        for info in active:
            info.cancelled.set()

    def late(self, step_id: str, attempt: int, outcome: Late) -> None:
        """An attempt returned after its grace period (called from its thread)."""
        if self._on_late is not None:
            self._on_late(step_id, attempt, outcome)


_ENDING = (ev.RunCanceled, ev.RunCompensating)
"""Events another party appends when it cancels a run (plainly, or compensating)."""


class InFlight:
    """The runs executing in this process, for a cancel to reach their steps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, list[RunWatch]] = {}

    def add(self, watch: RunWatch) -> None:
        with self._lock:
            self._watches.setdefault(watch.run_id, []).append(watch)

    def remove(self, watch: RunWatch) -> None:
        with self._lock:
            watches = self._watches.get(watch.run_id, [])
            if watch in watches:
                watches.remove(watch)
            if not watches:
                self._watches.pop(watch.run_id, None)

    def cancel(self, run_id: str) -> bool:
        """Cancel the steps of `run_id` executing here; False if it executes nowhere here."""
        with self._lock:
            watches = list(self._watches.get(run_id, ()))
        for watch in watches:
            watch.cancel()
        return bool(watches)

    def poll(self, read: Callable[[str, int], Sequence[RecordedEvent]]) -> list[str]:
        """Cancel the steps of runs another process canceled; returns their ids.

        `read(run_id, from_version)` reads a stream; only runs with an attempt in flight
        are read, from the version after what their session wrote."""
        with self._lock:
            busy = [w for ws in self._watches.values() for w in ws
                    if w.busy and not w.canceled]
        canceled: list[str] = []
        for watch in busy:
            if any(isinstance(r.event, _ENDING) for r in read(watch.run_id, watch.version + 1)):
                watch.cancel()
                canceled.append(watch.run_id)
        return canceled


# -------------------------------------------------------------------- attempts


def run_attempt(watch: RunWatch, step_id: str, attempt: int, call: Callable[[], Any],
                timeout: timedelta | None, grace: timedelta | None,
                resume: Resume | None = None) -> Any:
    """Run one attempt of step `step_id` (`current_step()` tells its code which, and
    what it `resume`s with); with a `timeout`, `StepTimeout` once it passes (see the
    module's docstring). `grace` defaults to `timeout`."""
    info = watch.begin(step_id, attempt, resume)
    try:
        if timeout is None:
            token = _current.set(info)
            try:
                return call()
            finally:
                _current.reset(token)
        return _with_timeout(watch, info, call, timeout, timeout if grace is None else grace)
    finally:
        watch.end(info)


def _with_timeout(watch: RunWatch, info: StepInfo, call: Callable[[], Any],
                  timeout: timedelta, grace: timedelta) -> Any:
    box = _Box(info, call)
    thread = threading.Thread(target=contextvars.copy_context().run, args=(box.run,),
                              name=f"ledgerflow-step-{info.step_id}", daemon=True)
    thread.start()
    if box.done.wait(timeout.total_seconds()):
        return box.value()
    message = (f"step {info.step_id!r} did not finish within {timeout.total_seconds()}s "
               f"(attempt {info.attempt})")
    where = _where(thread, f"StepTimeout: {message}\n")
    info.cancelled.set()
    if box.done.wait(max(grace.total_seconds(), 0.0)):
        raise StepTimeout(message, where, box.outcome)
    log.warning("run %s (workflow %s): step %r attempt %d is still running %.3gs after its "
                "timeout; the run goes on without it and will discard what it returns",
                info.run_id, watch.workflow, info.step_id, info.attempt,
                grace.total_seconds(), extra={"run_id": info.run_id, "workflow": watch.workflow,
                                              "step": info.step_id, "attempt": info.attempt})
    box.then(lambda late: watch.late(info.step_id, info.attempt, late))
    raise StepTimeout(message, where)


def _where(thread: threading.Thread, headline: str) -> str | None:
    frame = sys._current_frames().get(thread.ident or -1)
    return None if frame is None else stack_text(traceback.extract_stack(frame), headline)


class _Box:
    """One attempt's outcome, handed from its thread to whoever waits or comes later."""

    def __init__(self, info: StepInfo, call: Callable[[], Any]) -> None:
        self.info, self.call = info, call
        self.done = threading.Event()
        self.outcome: Late | None = None
        self._lock = threading.Lock()
        self._then: list[Callable[[Late], None]] = []

    def run(self) -> None:
        _current.set(self.info)  # in the thread's own copy of the caller's context
        try:
            outcome = Late(result=self.call())
        except BaseException as exc:  # handed to the caller, raised there
            outcome = Late(error=exc)
        with self._lock:
            self.outcome, then = outcome, list(self._then)
            self.done.set()
        for callback in then:
            try:
                callback(outcome)
            except Exception:
                log.exception("run %s: could not record the late outcome of step %r",
                              self.info.run_id, self.info.step_id)

    def value(self) -> Any:
        assert self.outcome is not None
        if self.outcome.error is not None:
            raise self.outcome.error
        return self.outcome.result

    def then(self, callback: Callable[[Late], None]) -> None:
        """Call `callback(outcome)` once the attempt returns (at once if it has)."""
        with self._lock:
            if self.outcome is None:
                self._then.append(callback)
                return
            outcome = self.outcome
        callback(outcome)
