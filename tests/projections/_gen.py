"""Hypothesis strategies: random runs as legal event sequences, appended through the store."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import NEXT_STATUS, RunStatus, Trigger
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.eventstore import EventStore, NewEvent, StreamAppend

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TAGS = ["vip", "eu", "batch", "retry"]
TENANTS = ["acme", "globex", None]
WORKFLOWS = ["checkout", "refund", "reminder"]


class TickingClock:
    """A fake clock: every reading is 1 ms after the previous one."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class RunScript:
    """One run's appends (each a list of events), plus its parent link."""

    run_id: str
    appends: list[list[ev.Event]] = field(default_factory=list)
    workflow_id: str = "checkout"
    tenant: str | None = None


_ERROR = ev.ErrorInfo(type="ValueError", message="boom")

# The store refuses NUL and unpaired surrogates (tests/eventstore/contract.py).
_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=5)
_json = st.one_of(st.none(), st.integers(-5, 5), _text,
                  st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2))
_times = st.one_of(st.none(), st.integers(0, 10_000).map(lambda s: START + timedelta(seconds=s)))
_waitpoints = st.builds(
    ev.Waitpoint, kind=st.sampled_from(["sleep", "signal", "event", "token", "child"]),
    name=st.sampled_from(["cool-off", "approval"]), token_id=st.none() | st.just("tok-1"),
    wake_at=_times, timeout_at=_times)

_TRIGGER_EVENT: dict[Trigger, Any] = {
    Trigger.BEGIN: lambda d: ev.RunStarted(worker="w1"),
    Trigger.SUSPEND: lambda d: ev.RunSuspended(waitpoint=d.draw(_waitpoints)),
    Trigger.WAKE: lambda d: ev.RunWoken(reason="timer"),
    Trigger.COMPLETE: lambda d: ev.RunCompleted(result=d.draw(_json)),
    Trigger.ROLLBACK: lambda d: ev.RunCompensating(error=_ERROR),
    Trigger.FAIL: lambda d: ev.RunFailed(error=_ERROR, compensation=d.draw(
        st.sampled_from(["none", "completed", "partial"]))),
    Trigger.CANCEL: lambda d: ev.RunCanceled(reason="user"),
}

def _step_events(data: st.DataObject, status: RunStatus, run: RunScript,
                 others: list[RunScript]) -> list[ev.Event]:
    """A few non-lifecycle events legal in `status`."""
    step = data.draw(st.sampled_from(["a", "b", "c"]))
    if status is RunStatus.COMPENSATING:
        if data.draw(st.booleans()):
            return [ev.CompensationCompleted(step_id=step, result=data.draw(_json))]
        return [ev.CompensationFailed(step_id=step, attempt=2, error=_ERROR)]
    choice = data.draw(st.sampled_from(["done", "retry", "final", "child", "signal", "value"]))
    if choice == "done":
        return [ev.StepCompleted(step_id=step, result=data.draw(_json),
                                 attempt=data.draw(st.integers(1, 3)), started_at=START)]
    if choice == "retry":
        return [ev.StepFailed(step_id=step, attempt=1, error=_ERROR, started_at=START),
                ev.RetryScheduled(step_id=step, attempt=2, due_at=START)]
    if choice == "final":
        return [ev.StepFailed(step_id=step, attempt=3, error=_ERROR, final=True)]
    if choice == "child" and others:
        child = data.draw(st.sampled_from(others))
        return [ev.ChildStarted(step_id=step, child_run_id=child.run_id,
                                workflow_id=child.workflow_id)]
    if choice == "signal":
        return [ev.SignalReceived(name="approval", payload=data.draw(_json))]
    return [ev.ValueRecorded(key="now", value=data.draw(_json))]


def draw_run(data: st.DataObject, others: list[RunScript]) -> RunScript:
    """A run: created, then a legal walk of the lifecycle with step events in between."""
    run = RunScript(run_id=str(uuid.uuid4()), workflow_id=data.draw(st.sampled_from(WORKFLOWS)),
                    tenant=data.draw(st.sampled_from(TENANTS)))
    parent, rerun, resumed = (
        data.draw(st.none() | st.sampled_from(others)) if others else None for _ in range(3))
    created = ev.RunCreated(
        workflow_id=run.workflow_id, workflow_version="1", input=data.draw(_json),
        tenant_meta={"tenantId": run.tenant} if run.tenant else {},
        tags=data.draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True)),
        parent_run_id=parent.run_id if parent else None,
        parent_step_id="spawn" if parent else None,
        rerun_of=rerun.run_id if rerun else None,
        resumed_from=resumed.run_id if resumed else None,
        priority=data.draw(st.integers(-2, 2)))
    run.appends.append([created])
    status = RunStatus.PENDING
    for _ in range(data.draw(st.integers(0, 8))):
        if status.is_terminal:
            break
        triggers = [t for t in Trigger if (status, t) in NEXT_STATUS]
        if status in (RunStatus.RUNNING, RunStatus.COMPENSATING) and data.draw(st.booleans()):
            events = _step_events(data, status, run, others)
        else:
            trigger = data.draw(st.sampled_from(triggers))
            events = [_TRIGGER_EVENT[trigger](data)]
            status = NEXT_STATUS[(status, trigger)]
        if len(run.appends) > 1 and data.draw(st.booleans()):
            run.appends[-1].extend(events)  # several events in one append
        else:
            run.appends.append(events)
    return run


def draw_runs(data: st.DataObject, max_runs: int = 6) -> list[RunScript]:
    runs: list[RunScript] = []
    for _ in range(data.draw(st.integers(1, max_runs))):
        runs.append(draw_run(data, runs))
    return runs


def append_interleaved(store: EventStore, data: st.DataObject, runs: list[RunScript]) -> int:
    """Append every run's appends, runs interleaved at random; sometimes two runs per
    transaction. Returns the number of events appended."""
    queues = [list(r.appends) for r in runs]
    count = 0
    while any(queues):
        live = [i for i, q in enumerate(queues) if q]
        picked = data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=2, unique=True))
        appends = []
        for i in picked:
            run = runs[i]
            events = queues[i].pop(0)
            meta = run_metadata(run.workflow_id, "1", run.tenant, actor="test",
                                correlation_id=run.run_id)
            appends.append(StreamAppend(run.run_id, [NewEvent(e, metadata=meta)
                                                     for e in events]))
            count += len(events)
        store.append(*appends)
    return count
