"""ledgerflow: durable workflows for Python with an event-sourced run lifecycle.

What users import: the authoring API (`workflow`, `Context`, the registry; `Branch` for
a parallel branch with a compensator; `Suspend`, what an agent step returns to suspend
the run until its tool calls are answered), the exceptions workflow code catches
(`StepFailed`, `WaitTimeout`, `ChildFailed`, `StepTimeout`), what a step's code asks
about itself (`current_step()`, a `StepInfo`), the engine and its worker, the app object
`Ledgerflow` (built from `Settings`; `ledgerflow.api.create_app(app)` serves it over
HTTP) and the errors commands raise (`ConcurrencyError`, `IllegalTransition`,
`UnknownRun`, ...).
The layers underneath are `ledgerflow.domain`, `.eventstore`, `.projections` and
`.outbox`.
"""

from ledgerflow._app import Ledgerflow
from ledgerflow._authoring import (
    WorkflowDef,
    WorkflowInfo,
    WorkflowRegistry,
    default_registry,
    workflow,
)
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
    RunConflict,
    StoreUnavailable,
    UnknownQueue,
    UnknownRun,
    UnknownWorkflow,
)
from ledgerflow.flows import Flow, FlowContext, flow
from ledgerflow.runtime.agent import Suspend
from ledgerflow.runtime.context import Context
from ledgerflow.runtime.debounce import Debounce
from ledgerflow.runtime.engine import Engine, TriggerResult
from ledgerflow.runtime.errors import ChildFailed, StepFailed, WaitTimeout
from ledgerflow.runtime.parallel import Branch
from ledgerflow.runtime.queues import Queue, QueueInfo, RateLimit
from ledgerflow.runtime.retry import RetryPolicy
from ledgerflow.runtime.runner import TickResult
from ledgerflow.runtime.steps import StepInfo, StepTimeout, current_step
from ledgerflow.runtime.worker import Worker
from ledgerflow.settings import Settings

__all__ = [
    "Branch", "ChildFailed", "ConcurrencyError", "Context", "Debounce", "Engine",
    "EventTooLarge", "Flow", "FlowContext", "IdempotencyConflict", "IllegalTransition",
    "InvalidEvent", "InvalidInput", "InvalidRequest", "Ledgerflow", "LedgerflowError",
    "NonDeterminismError", "NotAwaited", "Queue", "QueueInfo", "RateLimit", "RetryPolicy",
    "RunConflict", "Settings", "StepFailed", "StepInfo", "StepTimeout", "StoreUnavailable",
    "Suspend", "TickResult", "TriggerResult", "UnknownQueue", "UnknownRun", "UnknownWorkflow",
    "WaitTimeout", "Worker", "WorkflowDef", "WorkflowInfo", "WorkflowRegistry", "current_step",
    "default_registry", "flow", "workflow",
]
