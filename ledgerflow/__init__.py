"""ledgerflow: durable workflows for Python with an event-sourced run lifecycle.

What users import: the authoring API (`workflow`, `Context`, `AsyncContext` (the ctx
of an `async def` workflow), the registry; `Branch` for
a parallel branch with a compensator; `Suspend`, what an agent step returns to suspend
the run until its tool calls are answered), the exceptions workflow code catches
(`StepFailed`, `WaitTimeout`, `ChildFailed`, `StepTimeout`, `StepCanceled`;
`AsyncMisuse` fails a run that mixes sync and async wrongly), schedules (`Cron`,
`Every` for `@workflow(schedule=...)`; `Schedules`, `Scheduler` at run time), what a
step's code asks about itself (`current_step()`, a `StepInfo`), the engine and its
worker, the app object
`Ledgerflow` (built from `Settings`; `ledgerflow.api.create_app(app)` serves it over
HTTP) and the errors commands raise (`ConcurrencyError`, `IllegalTransition`,
`UnknownRun`, ...; `RerunNotConfirmed` for an unconfirmed rerun of a workflow declared
`rerun_safety="unsafe"`), and what a serverless host gets back from `Ledgerflow.handle`
and `.stats` (`Handled`, `HostStats`). `ledgerflow.client` holds `Client` and
`AsyncClient`, which speak to a `serve` over HTTP.
The layers underneath are `ledgerflow.domain`, `.eventstore`, `.projections` and
`.outbox`.
"""

from ledgerflow._app import Ledgerflow
from ledgerflow._authoring import (
    Cron,
    Every,
    WorkflowDef,
    WorkflowInfo,
    WorkflowRegistry,
    default_registry,
    workflow,
)
from ledgerflow._serverless import HostStats
from ledgerflow.domain.errors import (
    ConcurrencyError,
    EventTooLarge,
    IdempotencyConflict,
    IllegalTransition,
    InvalidEvent,
    InvalidInput,
    InvalidRequest,
    LedgerflowError,
    NonDeterminismError,
    NotAwaited,
    RerunNotConfirmed,
    RunConflict,
    StoreUnavailable,
    UnknownQueue,
    UnknownRun,
    UnknownSchedule,
    UnknownWorkflow,
)
from ledgerflow.flows import Flow, FlowContext, flow
from ledgerflow.remote import asgi_handler
from ledgerflow.runtime.agent import Suspend
from ledgerflow.runtime.aio_context import AsyncContext
from ledgerflow.runtime.context import Context
from ledgerflow.runtime.debounce import Debounce
from ledgerflow.runtime.engine import Engine, TriggerResult
from ledgerflow.runtime.errors import (
    AsyncMisuse,
    ChildFailed,
    StepCanceled,
    StepFailed,
    WaitTimeout,
)
from ledgerflow.runtime.parallel import Branch
from ledgerflow.runtime.queues import Queue, QueueInfo, RateLimit
from ledgerflow.runtime.retry import RetryPolicy
from ledgerflow.runtime.runner import Handled, TickResult
from ledgerflow.runtime.scheduler import Scheduler
from ledgerflow.runtime.schedules import ScheduleRecord, Schedules
from ledgerflow.runtime.steps import StepInfo, StepTimeout, current_step
from ledgerflow.runtime.worker import Worker
from ledgerflow.settings import Settings

__all__ = [
    "AsyncContext", "AsyncMisuse", "Branch", "ChildFailed", "ConcurrencyError", "Context",
    "Cron", "Debounce", "Engine", "EventTooLarge", "Every", "Flow", "FlowContext", "Handled",
    "HostStats", "IdempotencyConflict", "IllegalTransition", "InvalidEvent", "InvalidInput",
    "InvalidRequest", "Ledgerflow", "LedgerflowError", "NonDeterminismError", "NotAwaited",
    "Queue", "QueueInfo", "RateLimit", "RerunNotConfirmed", "RetryPolicy", "RunConflict",
    "ScheduleRecord", "Scheduler", "Schedules", "Settings", "StepCanceled", "StepFailed",
    "StepInfo", "StepTimeout", "StoreUnavailable", "Suspend", "TickResult", "TriggerResult",
    "UnknownQueue", "UnknownRun", "UnknownSchedule", "UnknownWorkflow", "WaitTimeout",
    "Worker", "WorkflowDef", "WorkflowInfo", "WorkflowRegistry", "asgi_handler",
    "current_step", "default_registry", "flow", "workflow",
]
