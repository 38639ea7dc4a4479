"""Testing kit: an in-process engine, a fake clock, run-to-completion, history export,
and a `Replayer` that replays an exported history against current code."""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledgerflow._authoring import WorkflowRegistry, default_registry
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import NonDeterminismError
from ledgerflow.domain.state import RunState
from ledgerflow.eventstore.database import create_engine
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.eventstore.store import AppendHook, EventStore
from ledgerflow.migrations import upgrade_all
from ledgerflow.runtime.context import Context, Park, json_roundtrip
from ledgerflow.runtime.engine import Engine
from ledgerflow.runtime.journal import Journal

__all__ = ["FakeClock", "ReplayReport", "Replayer", "export_history", "load_history",
           "open_test_engine", "run_to_completion"]


class FakeClock:
    """A clock that only moves when told; due timers fire once it passes them."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move time forward by `delta`; returns the new now."""
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


def open_test_engine(url: str | None = None, *, registry: WorkflowRegistry | None = None,
                     clock: Any = None, hooks: Sequence[AppendHook] = (),
                     lease: timedelta = timedelta(seconds=30)) -> Engine:
    """An engine on `url` (default: a fresh temporary SQLite file), migrated, with
    `clock` (default: a `FakeClock`) and extra append hooks (projections, outbox)."""
    if url is None:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='ledgerflow-test-')}/ledgerflow.db"
    sa_engine = create_engine(url)
    upgrade_all(sa_engine)
    clock = clock if clock is not None else FakeClock()
    store = EventStore(sa_engine, hooks=hooks, clock=clock)
    return Engine(store, registry, clock=clock, lease=lease)


def run_to_completion(engine: Engine, run_id: str, *, max_rounds: int = 1000) -> RunState:
    """Run everything due until `run_id` is terminal or nothing more is due; its state."""
    for _ in range(max_rounds):
        state = engine.state(run_id)
        if state.is_terminal:
            return state
        if engine.run_due(100).claimed == 0:
            return engine.state(run_id)
    return engine.state(run_id)


def export_history(engine: Engine, run_id: str) -> dict[str, Any]:
    """A run's history as JSON-ready data (wire shape, plus `schemaVersion`)."""
    return {"runId": run_id, "events": [_entry(rec) for rec in engine.history(run_id)]}


def _entry(rec: RecordedEvent) -> dict[str, Any]:
    return {"eventId": rec.event_id, "position": rec.position, "version": rec.version,
            "type": rec.type, "schemaVersion": rec.schema_version, "data": rec.data,
            "metadata": rec.metadata, "recordedAt": rec.recorded_at.isoformat()}


def load_history(source: str | Path | dict[str, Any]) -> list[RecordedEvent]:
    """Decode an exported history (a dict, or a path to its JSON file)."""
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text())
    run_id = data["runId"]
    return [
        RecordedEvent(e["position"], run_id, e["version"], e["eventId"], e["type"],
                      e.get("schemaVersion", 1),
                      ev.decode(e["type"], e.get("schemaVersion", 1), e["data"]),
                      e["metadata"], datetime.fromisoformat(e["recordedAt"]))
        for e in data["events"]
    ]


@dataclass(frozen=True)
class ReplayReport:
    """Outcome of a replay: `divergence` says where code and history first disagree."""

    run_id: str
    divergence: str | None
    replayed_ops: int

    @property
    def ok(self) -> bool:
        return self.divergence is None


class _HistoryEnd(BaseException):
    """Replay reached the point where history stops; nothing diverged."""


class _ReplaySession:
    def __init__(self, journal: Journal, now: datetime, registry: WorkflowRegistry) -> None:
        self.journal, self._now, self._registry = journal, now, registry

    def clock(self) -> datetime:
        return self._now

    def record(self, event: ev.Event) -> bool:
        if isinstance(event, ev.ValueRecorded):
            return self.journal.add(event)
        raise _HistoryEnd()

    def before_step(self) -> None:
        raise _HistoryEnd()

    def decide_now(self, decision: list[ev.Event]) -> bool:
        raise _HistoryEnd()

    def check_workflow(self, name: str) -> None:
        self._registry.get(name)


class Replayer:
    """Replays exported histories against the workflows of `registry`, side-effect free."""

    def __init__(self, registry: WorkflowRegistry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry

    def replay(self, history: str | Path | dict[str, Any]) -> ReplayReport:
        """Re-run the workflow over the history; report the first divergence."""
        recorded = load_history(history)
        run_id = recorded[0].stream_id
        full = Journal.build(run_id, recorded)
        state = full.state
        definition = self.registry.get(state.workflow_id, state.workflow_version)
        session = _ReplaySession(full, recorded[-1].recorded_at, self.registry)
        ctx = Context(session)
        divergence = None
        try:
            result = definition.fn(ctx, ctx.input)
            ctx.finish()
            divergence = _compare_result(state, json_roundtrip(result, "the result"))
        except (_HistoryEnd, Park):
            pass
        except NonDeterminismError as error:
            divergence = str(error)
        except Exception as error:
            if ctx.diverged is not None:
                divergence = str(ctx.diverged)
            elif state.status.value == "completed":
                divergence = (f"history completed the run, but the code now raises "
                              f"{type(error).__name__}: {error}")
        return ReplayReport(run_id, divergence, ctx._cursor)


def _compare_result(state: RunState, result: Any) -> str | None:
    if state.status.value == "completed" and state.result != result:
        return f"history completed with {state.result!r}, the code now returns {result!r}"
    if state.status.value in ("failed", "compensating"):
        return "history failed the run, but the code now returns normally"
    return None
