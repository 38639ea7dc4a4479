"""Testing kit: an in-process app wired as the product wires it, a fake clock,
run-to-completion, the read models and outbox as consumers would see them, history
export, and a `Replayer` that replays an exported history against current code.

`open_test_app()` is `Ledgerflow.open` on a fresh temporary SQLite database (or a
given URL) with the JSON-lines sink in the same directory and a `FakeClock`: every
append writes the inline projections (run views, step journal) and the outbox rows in
its transaction, exactly as in production. `run_view`, `step_journal` and
`outbox_rows` read them; `relay_to_sink` runs the product's relay and returns the
messages a consumer would receive. `open_test_engine()` is the same app's engine.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledgerflow._app import Ledgerflow
from ledgerflow._authoring import WorkflowRegistry, default_registry
from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import NonDeterminismError, UnknownRun
from ledgerflow.domain.state import RunState
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.eventstore.store import AppendHook
from ledgerflow.outbox import outbox
from ledgerflow.projections import queries
from ledgerflow.runtime.aio_context import AsyncContext, inline
from ledgerflow.runtime.context import Context, Park, json_roundtrip
from ledgerflow.runtime.engine import Engine
from ledgerflow.runtime.faults import FaultPoints
from ledgerflow.runtime.journal import Journal
from ledgerflow.settings import Settings

__all__ = ["FakeClock", "ReplayReport", "Replayer", "export_history", "load_history",
           "open_test_app", "open_test_engine", "outbox_rows", "relay_to_sink",
           "run_to_completion", "run_view", "step_journal"]


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


def open_test_app(url: str | None = None, *, registry: WorkflowRegistry | None = None,
                  clock: Any = None, settings: Settings | None = None,
                  faults: FaultPoints | None = None,
                  lease: timedelta | None = None) -> Ledgerflow:
    """`Ledgerflow.open` as the product does it (migrated; inline projections and outbox
    writer on every append), on `url` or else `settings.database_url` or else a fresh
    temporary SQLite file, with `clock` (default: a `FakeClock`) and `faults` (default:
    those the `faults` setting arms). Without `settings`, the relay writes to a
    JSON-lines sink in a temporary directory (never to a broker). Close it when done."""
    if settings is None:
        directory = Path(tempfile.mkdtemp(prefix="ledgerflow-test-"))
        settings = Settings(database_url=f"sqlite:///{directory}/ledgerflow.db",
                            sink_path=str(directory / "events.jsonl"), kafka_bootstrap=None)
    updates: dict[str, Any] = {} if url is None else {"database_url": url}
    if lease is not None:
        updates["lease_seconds"] = lease.total_seconds()
    return Ledgerflow.open(settings.model_copy(update=updates), registry=registry,
                           clock=clock if clock is not None else FakeClock(), faults=faults)


def open_test_engine(url: str | None = None, *, registry: WorkflowRegistry | None = None,
                     clock: Any = None, hooks: Sequence[AppendHook] = (),
                     lease: timedelta = timedelta(seconds=30)) -> Engine:
    """The engine of `open_test_app(url, registry=, clock=, lease=)`, with `hooks`
    added after the product's own (projections, outbox)."""
    engine = open_test_app(url, registry=registry, clock=clock, lease=lease).engine
    for hook in hooks:
        engine.store.add_hook(hook)
    return engine


def run_view(app: Ledgerflow, run_id: str) -> queries.RunRecord:
    """The run's row of the run views, as the API serves it (`UnknownRun` if none)."""
    with app.db.connect() as conn:
        record = queries.get_run(conn, run_id)
    if record is None:
        raise UnknownRun(run_id)
    return record


def step_journal(app: Ledgerflow, run_id: str) -> list[queries.JournalEntry]:
    """The run's step journal, as the API serves it."""
    with app.db.connect() as conn:
        return queries.get_journal(conn, run_id)


def outbox_rows(app: Ledgerflow) -> list[dict[str, Any]]:
    """Every outbox row in id order, its `headers` and `payload` decoded from JSON."""
    with app.db.connect() as conn:
        rows = conn.execute(sa.select(outbox).order_by(outbox.c.id)).all()
    return [{**row._asdict(), "headers": dict(json.loads(row.headers)),
             "payload": json.loads(row.payload)} for row in rows]


def relay_to_sink(app: Ledgerflow, *, max_batches: int = 1000) -> list[dict[str, Any]]:
    """Relay every due outbox row with the product's relay to the JSON-lines sink; the
    messages this call wrote there (`topic`, `key`, `value`, `headers`), in order."""
    if app.settings.kafka_bootstrap:
        raise ValueError("relay_to_sink needs the JSON-lines sink (no LEDGERFLOW_KAFKA_BOOTSTRAP)")
    sink = Path(app.settings.sink_path)
    start = sink.stat().st_size if sink.exists() else 0
    relay = app.relay()
    try:
        for _ in range(max_batches):
            if relay.run_once().claimed == 0:
                break
    finally:
        relay.publisher.close()
    if not sink.exists():
        return []
    with sink.open("rb") as lines:
        lines.seek(start)
        return [json.loads(line) for line in lines if line.strip()]


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
    """A run's history as JSON-ready data: the API's history entries (`queries.
    HistoryEntry`), each with its `schemaVersion` too."""
    return {"runId": run_id, "events": [
        {**queries.HistoryEntry.from_recorded(rec).to_wire(), "schemaVersion": rec.schema_version}
        for rec in engine.history(run_id)]}


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
        ctx: Context | AsyncContext = (AsyncContext(session, inline) if definition.is_async
                                       else Context(session))
        divergence = None
        try:
            if isinstance(ctx, AsyncContext):
                result = asyncio.run(definition.call_async(ctx, ctx.input))
            else:
                result = definition.call(ctx, ctx.input)
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
        ops = ctx.replayed_ops if isinstance(ctx, AsyncContext) else ctx._cursor
        return ReplayReport(run_id, divergence, ops)


def _compare_result(state: RunState, result: Any) -> str | None:
    if state.status.value == "completed" and state.result != result:
        return f"history completed with {state.result!r}, the code now returns {result!r}"
    if state.status.value in ("failed", "compensating"):
        return "history failed the run, but the code now returns normally"
    return None
