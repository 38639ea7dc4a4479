"""The composition root: one `Ledgerflow` built from `Settings` at the edge.

Every append goes through one `EventStore` whose hooks write, in the append
transaction, the inline projections (run views, step journal) and the outbox rows.
The engine, the relay, the worker, the HTTP API and the CLI all hang off it.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from opentelemetry.trace import TracerProvider
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow._authoring import WorkflowRegistry, default_registry
from ledgerflow._serverless import HostStats, TickSchedules, host_stats
from ledgerflow.domain.errors import LedgerflowError
from ledgerflow.domain.state import RunState
from ledgerflow.eventstore import EventStore, IdempotencyKeys, create_engine
from ledgerflow.eventstore.store import Clock, utcnow
from ledgerflow.history import ArchiveFiles, Archiver, RetentionPolicy
from ledgerflow.migrations import upgrade_all
from ledgerflow.observability.metrics import Metrics
from ledgerflow.observability.tracing import Tracing
from ledgerflow.outbox import OutboxWriter, Relay, publisher_from_settings
from ledgerflow.projections import InlineProjections
from ledgerflow.remote.dispatch import RemoteRuns
from ledgerflow.runtime.engine import Engine, TriggerResult
from ledgerflow.runtime.faults import FaultPoints
from ledgerflow.runtime.observe import Observers
from ledgerflow.runtime.runner import Handled, TickResult
from ledgerflow.runtime.scheduler import Scheduler
from ledgerflow.runtime.schedules import Schedules
from ledgerflow.runtime.worker import Worker
from ledgerflow.settings import Settings


def build_store(db: SAEngine, settings: Settings, clock: Clock = utcnow) -> EventStore:
    """The event store with the inline projections and the outbox writer as hooks."""
    return EventStore(db, hooks=[InlineProjections(), OutboxWriter(topic=settings.topic)],
                      clock=clock, max_event_bytes=settings.max_event_bytes)


class WorkflowImportError(LedgerflowError):
    """A module named by `--workflows` / `LEDGERFLOW_WORKFLOWS` that does not import."""

    code = "workflow_import_failed"
    http_status = 500

    def __init__(self, module: str, error: BaseException) -> None:
        self.module = module
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        super().__init__(f"cannot import workflow module {module!r}: {reason}")


def import_workflows(modules: Iterable[str]) -> list[str]:
    """Import the modules that define workflows (`--workflows`, `LEDGERFLOW_WORKFLOWS`).

    Each is a module name, found on `sys.path` or in the current directory (as
    `python -m` finds it), or the path of a Python file (`booking.py`,
    `flows/booking.py`), imported as the module named after the file, its directory
    on `sys.path` (so it may import its neighbours). Whatever a module raises while
    it imports becomes `WorkflowImportError` naming it (the original is its cause).
    """
    imported = []
    for name in modules:
        try:
            _import(name)
        except Exception as error:
            raise WorkflowImportError(name, error) from error
        imported.append(name)
    return imported


def _import(name: str) -> None:
    if name.endswith(".py") or "/" in name or os.sep in name:
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no such file {str(path)!r}")
        _searched(path.parent)
        importlib.import_module(path.stem)
    else:
        _searched(Path.cwd())
        importlib.import_module(name)


def _searched(directory: Path) -> None:
    """Put `directory` first on `sys.path` (once)."""
    entry = str(directory)
    if entry not in sys.path:
        sys.path.insert(0, entry)
        importlib.invalidate_caches()


@dataclass
class Ledgerflow:
    """Everything one process needs, wired once from settings."""

    settings: Settings
    db: SAEngine
    store: EventStore
    engine: Engine
    keys: IdempotencyKeys
    clock: Clock = field(default=utcnow)
    metrics: Metrics | None = None
    """This process's metrics (`Ledgerflow.open` makes them; the engine counts in them)."""
    _tick_relay: Relay | None = field(default=None, init=False, repr=False)
    _tick_schedules: TickSchedules | None = field(default=None, init=False, repr=False)
    schedules: Schedules | None = None
    """The schedules' commands and queries (`Ledgerflow.open` makes them)."""

    @classmethod
    def open(cls, settings: Settings, *, registry: WorkflowRegistry | None = None,
             clock: Clock = utcnow, upgrade: bool = True,
             faults: FaultPoints | None = None,
             tracer_provider: TracerProvider | None = None) -> Ledgerflow:
        """Connect, (optionally) migrate, and wire store, hooks and engine.

        `faults` (default: those `settings.faults` arms) are the engine's and the
        relay's fault points, for crash tests. Spans go to `tracer_provider` (default:
        OpenTelemetry's global one, a no-op unless an SDK is configured)."""
        import_workflows(settings.workflow_modules())
        db = create_engine(settings.database_url)
        if upgrade:
            upgrade_all(db)
        store = build_store(db, settings, clock)
        metrics = Metrics(store, clock=clock,
                          overdue_after=timedelta(seconds=settings.doctor_overdue_warn_seconds),
                          cache_seconds=settings.metrics_cache_seconds)
        registry = registry if registry is not None else default_registry
        dispatch = None if not settings.dispatch else RemoteRuns.parse(
            settings.dispatch, settings.dispatch_secret, settings.dispatch_timeout_seconds,
            settings.dispatch_budget_seconds)
        if dispatch is not None:
            dispatch.register(registry)  # what the handlers serve: known without imports
        engine = Engine(store, registry,
                        clock=clock, lease=timedelta(seconds=settings.lease_seconds),
                        faults=faults if faults is not None else settings.fault_points(),
                        observer=Observers(metrics, Tracing(tracer_provider)), dispatch=dispatch)
        schedules = Schedules(store, engine.registry, clock)
        schedules.listeners.append(engine.wakeup.notify)  # a fire's run: claim it now
        return cls(settings=settings, db=db, store=store, engine=engine,
                   keys=IdempotencyKeys(db, clock=clock), clock=clock, metrics=metrics,
                   schedules=schedules)

    @property
    def faults(self) -> FaultPoints:
        """The fault points of this process's engine and relay (crash tests arm them)."""
        return self.engine.runtime.faults

    def relay(self, **overrides: object) -> Relay:
        """An outbox relay to Kafka, or to the JSON-lines sink when no broker is set."""
        options: dict[str, object] = {
            "max_attempts": self.settings.outbox_max_attempts,
            "dead_letter_topic": self.settings.dlq_topic,
            "on_dead": self.settings.outbox_on_dead, "clock": self.clock,
            "fault_point": self.faults, "retention": self.settings.outbox_retention(),
        }
        options.update(overrides)
        return Relay(self.db, publisher_from_settings(self.settings), **options)  # type: ignore[arg-type]

    # ------------------------------------------------------ serverless hosts

    def tick(self, max_runs: int = 100) -> TickResult:
        """For cron / serverless hosts: fire due schedules (`fired`), reap expired leases,
        execute due runs (at most `max_runs`), then relay one batch of the outbox
        (`relayed`, `dead_lettered`)."""
        if self.schedules is not None and self._tick_schedules is None:
            self._tick_schedules = TickSchedules(self.schedules)
        fired = self._tick_schedules.fire() if self._tick_schedules is not None else 0
        result = self.engine.tick(max_runs)
        result.fired = fired
        relay = self._tick_relay
        if relay is None:
            relay = self._tick_relay = self.relay()
        batch = relay.run_once()
        result.relayed, result.dead_lettered = batch.published, batch.dead
        return result

    def handle(self, run_id: str) -> Handled:
        """Execute run `run_id` now if it is due (a host woken per job); what happened
        (`Runner.handle`)."""
        return self.engine.handle(run_id)

    def stats(self) -> HostStats:
        """The counts a host reports: due, leased, executing, outbox pending, dead."""
        return host_stats(self.db, self.clock)

    def archiver(self, batch: int = 200) -> Archiver:
        """The archiver of runs past their retention (`LEDGERFLOW_RETENTION_DAYS`, the
        workflows' `retention=`) to `LEDGERFLOW_ARCHIVE_DIR`."""
        days = self.settings.retention_days
        policy = RetentionPolicy(None if days is None else timedelta(days=days),
                                 self.engine.registry.retention())
        return Archiver(self.store, ArchiveFiles(self.settings.archive_dir), policy,
                        clock=self.clock, faults=self.faults, batch=batch)

    def worker(self, threads: int = 4, poll_interval: float = 0.5,
               schedules: bool = True) -> Worker:
        """A worker of this engine; with `schedules`, it runs a `Scheduler` too (as
        `serve` and `worker` do)."""
        scheduler = Scheduler(self.schedules) if schedules and self.schedules else None
        return Worker(self.engine, threads=threads, poll_interval=poll_interval,
                      scheduler=scheduler)

    # ------------------------------------------------------- async callers

    async def trigger_async(self, workflow_id: str, input: Any = None,
                            **options: Any) -> TriggerResult:
        """`engine.trigger` for async callers (a FastAPI handler): the store I/O runs in
        a thread, the caller's event loop is not blocked."""
        return await asyncio.to_thread(self.engine.trigger, workflow_id, input, **options)

    async def signal_async(self, run_id: str, name: str, payload: Any = None,
                           **options: Any) -> None:
        """`engine.signal`, awaited (see `trigger_async`)."""
        await asyncio.to_thread(self.engine.signal, run_id, name, payload, **options)

    async def send_event_async(self, run_id: str, event_type: str, payload: Any = None,
                               **options: Any) -> None:
        """`engine.send_event`, awaited (see `trigger_async`)."""
        await asyncio.to_thread(self.engine.send_event, run_id, event_type, payload, **options)

    async def resolve_token_async(self, run_id: str, token_id: str, payload: Any = None,
                                  **options: Any) -> None:
        """`engine.resolve_token`, awaited (see `trigger_async`)."""
        await asyncio.to_thread(self.engine.resolve_token, run_id, token_id, payload,
                                **options)

    async def cancel_async(self, run_id: str, reason: str | None = None,
                           **options: Any) -> None:
        """`engine.cancel`, awaited (see `trigger_async`)."""
        await asyncio.to_thread(self.engine.cancel, run_id, reason, **options)

    async def wait_async(self, run_id: str, timeout: float = 60.0) -> RunState:
        """`engine.wait`, awaited: the run's state once it is terminal."""
        return await asyncio.to_thread(self.engine.wait, run_id, timeout)

    def close(self) -> None:
        if self._tick_relay is not None:
            self._tick_relay.publisher.close()
        self.engine.runtime.aio.close()
        if isinstance(self.engine.runtime.dispatch, RemoteRuns):
            self.engine.runtime.dispatch.close()
        self.db.dispose()
